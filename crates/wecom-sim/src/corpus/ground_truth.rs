//! Ground truth of the items generated so far (`/_sim/truth`, `/_sim/stats`).

use super::{Conv, Corpus, Kind};
use crate::truth::TruthItem;

impl Corpus {
    /// Ground truth of every item up to the visible end (including items below the retention floor).
    pub(crate) fn truth(&self) -> Vec<TruthItem> {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return Vec::new();
        };
        (0..st.items.len() as u64)
            .map(|i| {
                let meta = st.items[i as usize];
                // Oversized texts and markdowns have no media: don't build megabytes for nothing.
                let media = if meta.plan.oversized && meta.plan.kind != Kind::ChatRecord {
                    Vec::new()
                } else {
                    self.message(i, &st.items).1
                };
                TruthItem {
                    seq: meta.seq,
                    msgid: self.msgid(i, &meta),
                    msgtype: meta.plan.kind.msgtype().map(str::to_owned),
                    action: match meta.plan.kind {
                        Kind::Revoke => "recall",
                        Kind::Switch => "switch",
                        _ => "send",
                    }
                    .to_owned(),
                    roomid: match meta.plan.conv {
                        Conv::Room(r) => Some(self.rooms[r as usize].id.clone()),
                        Conv::Single { .. } => None,
                    },
                    room_seq: (meta.room_seq > 0).then_some(meta.room_seq),
                    msgtime_ms: meta.msgtime_ms,
                    key_version: meta.plan.key_version,
                    fate: meta.plan.fate,
                    control_chars: meta.plan.control_chars,
                    media,
                    oversized: meta.plan.oversized,
                    sdk_crash: meta.plan.sdk_crash,
                }
            })
            .collect()
    }

    /// (count, newest seq, newest msgtime) of the items servable now.
    pub(crate) fn newest(&self) -> (u64, u64, i64) {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return (0, 0, 0);
        };
        let last = st.items.last();
        (
            st.items.len() as u64,
            last.map_or(0, |m| m.seq),
            last.map_or(0, |m| m.msgtime_ms),
        )
    }
}
