//! The conversation list: one summary per conversation (kind, name, participants, counts, last message),
//! kept in memory, rebuilt from the index's fast fields at start and updated after every commit.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::msg::Msg;

/// Participants remembered per conversation (a room of 2,000 members lists the first ones).
const MAX_PARTICIPANTS: usize = 50;
/// Characters of the last message kept for the list.
const LAST_TEXT_CHARS: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvKind {
    Room,
    Single,
    Other,
}

impl ConvKind {
    pub fn of(conversation_id: &str) -> ConvKind {
        // The forms of `wecom_model::record::conversation_id`: a room id, `single:a|b`, `switch:u`, `msg:id`.
        if conversation_id.starts_with("single:") {
            ConvKind::Single
        } else if conversation_id.starts_with("switch:") || conversation_id.starts_with("msg:") {
            ConvKind::Other
        } else {
            ConvKind::Room
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConvKind::Room => "room",
            ConvKind::Single => "single",
            ConvKind::Other => "other",
        }
    }
}

/// The last message of a conversation, for the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastMessage {
    pub msgid: String,
    pub time_ms: u64,
    pub speaker: String,
    pub msgtype: String,
    pub text: String,
    #[serde(skip)]
    pub ingest: u64,
}

/// One conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConvSummary {
    pub id: String,
    pub kind: ConvKind,
    /// The room's name when a record carried it.
    pub name: Option<String>,
    pub member_count: Option<u32>,
    pub participants: BTreeSet<String>,
    pub messages: u64,
    pub media_messages: u64,
    /// Any message with an external contact.
    pub external: bool,
    pub first_time_ms: u64,
    pub last: Option<LastMessage>,
}

impl ConvSummary {
    fn new(id: &str) -> Self {
        ConvSummary {
            id: id.to_owned(),
            kind: ConvKind::of(id),
            name: None,
            member_count: None,
            participants: BTreeSet::new(),
            messages: 0,
            media_messages: 0,
            external: false,
            first_time_ms: u64::MAX,
            last: None,
        }
    }

    pub fn last_time_ms(&self) -> u64 {
        self.last.as_ref().map_or(0, |l| l.time_ms)
    }

    /// A title for people: the room name, the two parties of a 1:1 chat, or the id.
    pub fn title(&self) -> String {
        if let Some(n) = self.name.as_deref().filter(|n| !n.is_empty()) {
            return n.to_owned();
        }
        match self.id.strip_prefix("single:") {
            Some(pair) => pair.replace('|', " ↔ "),
            None => self.id.clone(),
        }
    }

    /// Counts one message whose stored fields are known (the start-up scan).
    pub(crate) fn count(
        &mut self,
        sender: Option<&str>,
        time_ms: u64,
        media: bool,
        external: bool,
    ) {
        self.messages += 1;
        if media {
            self.media_messages += 1;
        }
        self.external |= external;
        self.first_time_ms = self.first_time_ms.min(time_ms);
        if let Some(s) = sender.filter(|s| !s.is_empty()) {
            if self.participants.len() < MAX_PARTICIPANTS {
                self.participants.insert(s.to_owned());
            }
        }
    }

    /// Takes `m` as the last message if it is newer (by time, then ingest order) than the current one,
    /// and the room's name and size from it when it carries them.
    pub(crate) fn consider_last(&mut self, m: &Msg) {
        let r = &m.record;
        let time = r.msgtime_ms.unwrap_or(0);
        let newer = self
            .last
            .as_ref()
            .is_none_or(|l| (time, m.ingest) >= (l.time_ms, l.ingest));
        if let Some(room) = &r.room {
            if newer || self.name.is_none() {
                self.name = Some(room.name.clone()).filter(|n| !n.is_empty());
                self.member_count = Some(room.member_count);
            }
        }
        if newer {
            self.last = Some(LastMessage {
                msgid: r.msgid.clone(),
                time_ms: time,
                speaker: m.speaker().to_owned(),
                msgtype: m.msgtype().to_owned(),
                text: r.text.chars().take(LAST_TEXT_CHARS).collect(),
                ingest: m.ingest,
            });
        }
    }
}

/// Every conversation of the index.
#[derive(Debug, Default)]
pub struct Conversations {
    map: HashMap<String, ConvSummary>,
}

/// Which conversations a list shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KindFilter {
    #[default]
    All,
    Rooms,
    Single,
}

impl Conversations {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&ConvSummary> {
        self.map.get(id)
    }

    pub(crate) fn entry(&mut self, id: &str) -> &mut ConvSummary {
        if !self.map.contains_key(id) {
            self.map.insert(id.to_owned(), ConvSummary::new(id));
        }
        self.map.get_mut(id).expect("inserted above")
    }

    /// A message that was just indexed.
    pub fn observe(&mut self, m: &Msg) {
        let r = &m.record;
        let c = self.entry(&r.conversation_id);
        c.count(
            r.from.as_deref(),
            r.msgtime_ms.unwrap_or(0),
            !r.media.is_empty(),
            r.external,
        );
        c.consider_last(m);
    }

    /// The conversations that match, newest last message first; `text` filters on the title, id and
    /// participants (case-insensitive). Returns the page and the number that matched.
    pub fn list(
        &self,
        kind: KindFilter,
        text: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> (Vec<ConvSummary>, usize) {
        let needle = text.map(str::to_lowercase).filter(|t| !t.is_empty());
        let mut hits: Vec<&ConvSummary> = self
            .map
            .values()
            .filter(|c| match kind {
                KindFilter::All => true,
                KindFilter::Rooms => c.kind == ConvKind::Room,
                KindFilter::Single => c.kind == ConvKind::Single,
            })
            .filter(|c| match &needle {
                None => true,
                Some(n) => {
                    c.title().to_lowercase().contains(n)
                        || c.id.to_lowercase().contains(n)
                        || c.participants.iter().any(|p| p.to_lowercase().contains(n))
                }
            })
            .collect();
        hits.sort_by(|a, b| {
            b.last_time_ms()
                .cmp(&a.last_time_ms())
                .then_with(|| a.id.cmp(&b.id))
        });
        let total = hits.len();
        let page = hits.into_iter().skip(offset).take(limit).cloned().collect();
        (page, total)
    }
}
