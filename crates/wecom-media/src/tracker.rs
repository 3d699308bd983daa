//! Acknowledgement bookkeeping: media jobs finish out of order, the committed position may only
//! pass a record once every job of it and of every record before it has finished.
//!
//! Records are numbered in the order they are read (their *ordinal*); the committed position is
//! the end of the last record of the longest finished prefix. Pure, no I/O.

use std::collections::BTreeMap;

use crate::tail::Position;

#[derive(Debug, Clone)]
struct Entry {
    remaining: usize,
    /// Where reading resumes after this record.
    end: Position,
    seq: u64,
    msgtime_ms: Option<u64>,
}

/// What may be committed: a read position and the highest record seq at or before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committable {
    pub position: Position,
    pub max_seq: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct AckTracker {
    next_ordinal: u64,
    entries: BTreeMap<u64, Entry>,
    committable: Option<Committable>,
}

impl AckTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a record read up to `end` with `jobs` media jobs; returns its ordinal.
    pub fn push(&mut self, end: Position, seq: u64, msgtime_ms: Option<u64>, jobs: usize) -> u64 {
        let ordinal = self.next_ordinal;
        self.next_ordinal += 1;
        self.entries.insert(
            ordinal,
            Entry {
                remaining: jobs,
                end,
                seq,
                msgtime_ms,
            },
        );
        self.advance();
        ordinal
    }

    /// One job of record `ordinal` finished. Returns true when the committable position moved.
    pub fn done(&mut self, ordinal: u64) -> bool {
        match self.entries.get_mut(&ordinal) {
            Some(e) if e.remaining > 0 => e.remaining -= 1,
            _ => panic!("media job of record ordinal {ordinal} acknowledged twice"),
        }
        self.advance()
    }

    fn advance(&mut self) -> bool {
        let mut moved = false;
        while let Some(entry) = self.entries.first_entry() {
            if entry.get().remaining > 0 {
                break;
            }
            let e = entry.remove();
            let max_seq = self
                .committable
                .as_ref()
                .map_or(e.seq, |c| c.max_seq.max(e.seq));
            self.committable = Some(Committable {
                position: e.end,
                max_seq,
            });
            moved = true;
        }
        moved
    }

    /// The latest position that may be committed.
    pub fn committable(&self) -> Option<&Committable> {
        self.committable.as_ref()
    }

    /// Records read but not yet passed by the committable position.
    pub fn window(&self) -> usize {
        self.entries.len()
    }

    /// Unfinished jobs.
    pub fn pending_jobs(&self) -> usize {
        self.entries.values().map(|e| e.remaining).sum()
    }

    /// The smallest msgtime of a record with unfinished jobs.
    pub fn oldest_pending_msgtime_ms(&self) -> Option<u64> {
        self.entries
            .values()
            .filter(|e| e.remaining > 0)
            .filter_map(|e| e.msgtime_ms)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(n: u64) -> Position {
        Position {
            segment: "seg-00000000000000000001.ndjson".into(),
            offset: n,
        }
    }

    /// Random operation sequences compared with a trivially correct model: committed = the end of
    /// the longest prefix of records whose jobs are all done.
    #[test]
    fn matches_a_simple_model() {
        use rand::{Rng, SeedableRng};
        for seed in 0..200u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut t = AckTracker::new();
            let mut model: Vec<(usize, usize)> = Vec::new(); // (jobs, done)
            let mut open: Vec<u64> = Vec::new(); // one entry per unfinished job
            for _ in 0..200 {
                if open.is_empty() || rng.gen_bool(0.5) {
                    let jobs = rng.gen_range(0..4);
                    let ord = t.push(
                        pos(model.len() as u64 + 1),
                        model.len() as u64 * 3,
                        Some(7),
                        jobs,
                    );
                    assert_eq!(ord as usize, model.len());
                    model.push((jobs, 0));
                    open.extend(std::iter::repeat_n(ord, jobs));
                } else {
                    let i = rng.gen_range(0..open.len());
                    let ord = open.swap_remove(i);
                    t.done(ord);
                    model[ord as usize].1 += 1;
                }
                let prefix = model.iter().take_while(|(j, d)| j == d).count();
                let expected = (prefix > 0).then(|| pos(prefix as u64));
                assert_eq!(
                    t.committable().map(|c| c.position.clone()),
                    expected,
                    "seed {seed}"
                );
                if prefix > 0 {
                    assert_eq!(t.committable().unwrap().max_seq, (prefix as u64 - 1) * 3);
                }
                assert_eq!(t.pending_jobs(), open.len());
            }
        }
    }

    #[test]
    fn oldest_pending() {
        let mut t = AckTracker::new();
        let a = t.push(pos(1), 1, Some(100), 1);
        let _b = t.push(pos(2), 2, Some(50), 0);
        let c = t.push(pos(3), 3, Some(200), 1);
        assert_eq!(t.oldest_pending_msgtime_ms(), Some(100));
        t.done(a);
        assert_eq!(t.oldest_pending_msgtime_ms(), Some(200));
        t.done(c);
        assert_eq!(t.oldest_pending_msgtime_ms(), None);
        assert_eq!(t.window(), 0);
    }
}
