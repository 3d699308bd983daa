//! Consent: whether each external contact agreed to have their chats archived, per internal user they
//! talk to (`check_single_agree`) and per room they are a member of (`check_room_agree`).
//!
//! The histories are written by the corpus's `agree` / `disagree` items: every change is an item sent
//! by the external contact at the change's time (1:1 to the user, or in the room), so what a client
//! recorded from the stream and what the APIs answer must agree. A consent item's subject is drawn with
//! the item's plan; whether it agrees or disagrees follows from the subject's status before it, so
//! statuses change over time (agree, later disagree, later agree again). Some externals never answer:
//! their subjects get no item and are absent from both APIs. Some subjects are `Default_Agree` from
//! before the corpus (from when the contact was added or the member joined), which no item records.

use rand::Rng as _;
use rand_chacha::ChaCha8Rng;

use crate::rng::{mix, D_CONSENT};
use crate::truth::AgreeStatus;

/// Every `SILENT_EVERY`-th external contact (at offset `SILENT_EVERY - 1`) never answers.
const SILENT_EVERY: u32 = 4;
const DAY_MS: i64 = 86_400_000;

/// What a consent is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// 1:1 chats of the external contact with this internal user.
    Pair { user: u32 },
    /// The external contact as a member of this room.
    Room { room: u32 },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject {
    pub(crate) external: u32,
    pub(crate) scope: Scope,
    /// `Default_Agree` since this time (before the corpus), if so.
    pub(crate) default_since_ms: Option<i64>,
}

/// The fixed part: who can consent to what. Built once from the seed.
pub(crate) struct ConsentModel {
    subjects: Vec<Subject>,
    /// Subjects whose external answers (the only ones consent items are about).
    answering: Vec<u32>,
}

impl ConsentModel {
    /// `room_externals[r]` = (external, join time in seconds) of room `r`'s external members.
    pub(crate) fn new(
        seed: u64,
        users: u32,
        externals: u32,
        room_externals: &[Vec<(u32, i64)>],
        history_start_ms: i64,
    ) -> Self {
        let mut subjects = Vec::new();
        let silent = |e: u32| e % SILENT_EVERY == SILENT_EVERY - 1;
        let default_since = |index: usize, fallback_ms: i64, silent: bool| {
            let h = mix(seed, D_CONSENT, 1 << 32 | index as u64);
            (!silent && h.is_multiple_of(3)).then_some(fallback_ms)
        };
        for e in 0..externals {
            // One or two internal users per external contact.
            let n = 1 + mix(seed, D_CONSENT, u64::from(e)) % 2;
            let mut picked: Vec<u32> = Vec::new();
            for k in 0..n {
                let u =
                    (mix(seed, D_CONSENT, u64::from(e) << 8 | (k + 1)) % u64::from(users)) as u32;
                if !picked.contains(&u) {
                    picked.push(u);
                }
            }
            for user in picked {
                let index = subjects.len();
                let h = mix(seed, D_CONSENT, 2 << 32 | index as u64);
                let since = history_start_ms - DAY_MS - (h % DAY_MS as u64) as i64;
                subjects.push(Subject {
                    external: e,
                    scope: Scope::Pair { user },
                    default_since_ms: default_since(index, since, silent(e)),
                });
            }
        }
        for (room, members) in room_externals.iter().enumerate() {
            for &(e, joined_s) in members {
                let index = subjects.len();
                subjects.push(Subject {
                    external: e,
                    scope: Scope::Room { room: room as u32 },
                    default_since_ms: default_since(index, joined_s * 1000, silent(e)),
                });
            }
        }
        let answering = (0..subjects.len() as u32)
            .filter(|&s| !silent(subjects[s as usize].external))
            .collect();
        Self {
            subjects,
            answering,
        }
    }

    pub(crate) fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    pub(crate) fn subject(&self, s: u32) -> Subject {
        self.subjects[s as usize]
    }

    /// The subject of a new consent item, when any external answers.
    pub(crate) fn pick(&self, r: &mut ChaCha8Rng) -> Option<u32> {
        (!self.answering.is_empty()).then(|| self.answering[r.gen_range(0..self.answering.len())])
    }

    /// Subjects matching `pred`, in model order.
    pub(crate) fn find(&self, pred: impl Fn(&Subject) -> bool) -> Vec<u32> {
        (0..self.subjects.len() as u32)
            .filter(|&s| pred(&self.subjects[s as usize]))
            .collect()
    }
}

/// One change written by a consent item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) time_ms: i64,
    pub(crate) status: AgreeStatus,
    /// Index of the item that records it.
    pub(crate) item: u32,
}

/// The sequential part: the changes so far, per subject. Grows with the corpus metadata.
#[derive(Default)]
pub(crate) struct ConsentLog {
    events: Vec<Vec<Event>>,
}

impl ConsentLog {
    /// Records a consent item about `subject` and returns its status. `agree` (the item's drawn
    /// msgtype) decides only a first answer; after that the status flips.
    pub(crate) fn record(
        &mut self,
        model: &ConsentModel,
        subject: u32,
        agree: bool,
        time_ms: i64,
        item: u32,
    ) -> AgreeStatus {
        let s = subject as usize;
        if self.events.len() < model.subjects.len() {
            self.events.resize(model.subjects.len(), Vec::new());
        }
        let before = self.events[s].last().map(|e| e.status).or(model.subjects[s]
            .default_since_ms
            .map(|_| AgreeStatus::DefaultAgree));
        let status = match before {
            Some(AgreeStatus::Agree | AgreeStatus::DefaultAgree) => AgreeStatus::Disagree,
            Some(AgreeStatus::Disagree) => AgreeStatus::Agree,
            None if agree => AgreeStatus::Agree,
            None => AgreeStatus::Disagree,
        };
        self.events[s].push(Event {
            time_ms,
            status,
            item,
        });
        status
    }

    /// The changes of `subject` so far, oldest first.
    pub(crate) fn events(&self, subject: u32) -> &[Event] {
        self.events
            .get(subject as usize)
            .map_or(&[][..], Vec::as_slice)
    }

    /// (status, change time ms) of `subject` at `at_ms`; `None` when it has not answered by then.
    pub(crate) fn status_at(
        &self,
        model: &ConsentModel,
        subject: u32,
        at_ms: i64,
    ) -> Option<(AgreeStatus, i64)> {
        if let Some(e) = self
            .events(subject)
            .iter()
            .rev()
            .find(|e| e.time_ms <= at_ms)
        {
            return Some((e.status, e.time_ms));
        }
        model.subjects[subject as usize]
            .default_since_ms
            .filter(|t| *t <= at_ms)
            .map(|t| (AgreeStatus::DefaultAgree, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::fast_rng;

    fn model() -> ConsentModel {
        ConsentModel::new(
            3,
            10,
            8,
            &[vec![(1, 1_000), (3, 2_000)], vec![]],
            10 * DAY_MS,
        )
    }

    #[test]
    fn silent_externals_are_never_picked_and_others_are() {
        let m = model();
        let mut r = fast_rng(1, 1, 1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let s = m.pick(&mut r).unwrap();
            let subject = m.subject(s);
            assert_ne!(subject.external % SILENT_EVERY, SILENT_EVERY - 1);
            seen.insert(s);
        }
        assert_eq!(seen.len(), m.answering.len());
        // Room subjects exist for both external members; the silent one never defaults either.
        let rooms = m.find(|s| matches!(s.scope, Scope::Room { room: 0 }));
        assert_eq!(rooms.len(), 2);
        assert!(m.subject(rooms[1]).default_since_ms.is_none());
    }

    #[test]
    fn statuses_flip_after_the_first_answer() {
        let m = model();
        let s = m.find(|s| s.default_since_ms.is_none() && s.external == 0)[0];
        let mut log = ConsentLog::default();
        assert_eq!(log.status_at(&m, s, i64::MAX), None);
        assert_eq!(log.record(&m, s, false, 100, 0), AgreeStatus::Disagree);
        assert_eq!(log.record(&m, s, false, 200, 1), AgreeStatus::Agree);
        assert_eq!(log.record(&m, s, true, 300, 2), AgreeStatus::Disagree);
        assert_eq!(log.status_at(&m, s, 99), None);
        assert_eq!(log.status_at(&m, s, 250), Some((AgreeStatus::Agree, 200)));
        assert_eq!(
            log.status_at(&m, s, 300),
            Some((AgreeStatus::Disagree, 300))
        );
    }
}
