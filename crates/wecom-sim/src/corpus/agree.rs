//! What `check_single_agree`, `check_room_agree` and `/_sim/truth/consent` answer, from the consent
//! model and the log that the corpus's agree / disagree items wrote.

use super::{now_ms, Corpus};
use crate::consent::Scope;
use crate::truth::{AgreeStatus, ConsentChange, ConsentTruth, PairConsent, RoomConsent};

impl Corpus {
    /// `check_single_agree`: (userid, external, status, change time s) of each answered pair, in
    /// request order, as of now. Pairs that never answered (or are unknown) are left out.
    pub(crate) fn single_agree(
        &self,
        pairs: &[(String, String)],
    ) -> Vec<(String, String, AgreeStatus, i64)> {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return Vec::new();
        };
        let now = now_ms();
        pairs
            .iter()
            .filter_map(|(userid, external)| {
                let u = *self.user_index.get(userid)?;
                let e = *self.external_index.get(external)?;
                let subject = self
                    .consent
                    .find(|s| s.external == e && s.scope == Scope::Pair { user: u })
                    .first()
                    .copied()?;
                let (status, at) = st.consent.status_at(&self.consent, subject, now)?;
                Some((
                    userid.clone(),
                    external.clone(),
                    status,
                    at.div_euclid(1000),
                ))
            })
            .collect()
    }

    /// `check_room_agree`: (external, status, change time s) of each answered external member of
    /// `room`, as of now.
    pub(crate) fn room_agree(&self, room: u32) -> Vec<(String, AgreeStatus, i64)> {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return Vec::new();
        };
        let now = now_ms();
        self.consent
            .find(|s| s.scope == Scope::Room { room })
            .into_iter()
            .filter_map(|subject| {
                let (status, at) = st.consent.status_at(&self.consent, subject, now)?;
                let e = self.consent.subject(subject).external;
                Some((
                    self.externals[e as usize].clone(),
                    status,
                    at.div_euclid(1000),
                ))
            })
            .collect()
    }

    /// Every agreement history up to the visible end.
    pub(crate) fn consent_truth(&self) -> ConsentTruth {
        self.extend_to(self.visible_count());
        let Ok(st) = self.state.read() else {
            return ConsentTruth::default();
        };
        let mut out = ConsentTruth::default();
        for (s, subject) in self.consent.subjects().iter().enumerate() {
            let mut changes: Vec<ConsentChange> = subject
                .default_since_ms
                .map(|t| ConsentChange {
                    status: AgreeStatus::DefaultAgree,
                    time_ms: t,
                    seq: None,
                })
                .into_iter()
                .collect();
            changes.extend(st.consent.events(s as u32).iter().map(|e| ConsentChange {
                status: e.status,
                time_ms: e.time_ms,
                seq: Some(st.items[e.item as usize].seq),
            }));
            let external = self.externals[subject.external as usize].clone();
            match subject.scope {
                Scope::Pair { user } => out.pairs.push(PairConsent {
                    userid: self.users[user as usize].clone(),
                    external,
                    changes,
                }),
                Scope::Room { room } => out.rooms.push(RoomConsent {
                    roomid: self.rooms[room as usize].id.clone(),
                    external,
                    changes,
                }),
            }
        }
        out
    }
}
