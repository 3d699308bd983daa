//! The scans over simulated partitions: offsets that are never delivered (transaction markers, aborted records
//! of another producer) at the tail, in the middle and filling whole windows, and tansu's way of serving whole
//! batches with its quirky high watermark. A read that neither delivers nor ends fails the test through the
//! scan's idle timeout instead of hanging it.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// One offset: a record carrying a value, or a gap that is never delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Data(u64),
    Gap,
}

/// How the simulated broker serves fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broker {
    /// Apache Kafka: a fetch at `o` delivers every record at or after `o`; the watermark is the end of the log.
    Kafka,
    /// tansu 0.6: a fetch at `o` delivers from the first batch *starting* at or after `o` (nothing, and no end
    /// of partition, from inside the last batch); the watermark is the last batch's base offset + 1.
    Tansu,
}

#[derive(Clone)]
struct Layout {
    broker: Broker,
    /// Offset of `slots[0]` (records below were deleted by retention).
    lo: i64,
    slots: Vec<Slot>,
    /// Base offsets of the batches, increasing; the first is `lo`.
    batches: Vec<i64>,
}

/// Runs of gaps and records, e.g. `Kafka lo 0 batches [0, 10] D5 G3 D2`.
impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} lo {} batches {:?}",
            self.broker, self.lo, self.batches
        )?;
        let mut runs: Vec<(bool, usize)> = Vec::new();
        for s in &self.slots {
            let gap = *s == Slot::Gap;
            match runs.last_mut() {
                Some((g, n)) if *g == gap => *n += 1,
                _ => runs.push((gap, 1)),
            }
        }
        for (gap, n) in runs {
            write!(f, " {}{n}", if gap { 'G' } else { 'D' })?;
        }
        Ok(())
    }
}

impl Layout {
    fn end(&self) -> i64 {
        self.lo + self.slots.len() as i64
    }

    /// Every value, newest first: what a complete backward scan must see.
    fn newest_first(&self) -> Vec<u64> {
        self.slots
            .iter()
            .rev()
            .filter_map(|s| match s {
                Slot::Data(v) => Some(*v),
                Slot::Gap => None,
            })
            .collect()
    }
}

struct SimLog {
    layout: Layout,
    queue: VecDeque<Polled<u64>>,
    assigns: usize,
}

impl SimLog {
    fn new(layout: Layout) -> Self {
        SimLog {
            layout,
            queue: VecDeque::new(),
            assigns: 0,
        }
    }

    fn append(&mut self, slots: &[Slot]) {
        self.layout.batches.push(self.layout.end());
        self.layout.slots.extend_from_slice(slots);
    }
}

impl PartitionLog for SimLog {
    type Item = u64;

    fn topic(&self) -> &str {
        "sim"
    }

    fn partition(&self) -> i32 {
        0
    }

    fn watermarks(&mut self) -> Result<(i64, i64), KafkaError> {
        let l = &self.layout;
        let hi = match (l.broker, l.batches.last()) {
            (Broker::Tansu, Some(&base)) if !l.slots.is_empty() => base + 1,
            _ => l.end(),
        };
        Ok((l.lo, hi))
    }

    fn assign(&mut self, from: ReadFrom) -> Result<(), KafkaError> {
        self.assigns += 1;
        let l = &self.layout;
        let from = match from {
            ReadFrom::Offset(o) => o,
            ReadFrom::Beginning => l.lo,
        };
        let first = match l.broker {
            Broker::Kafka => Some(from.max(l.lo)),
            Broker::Tansu => l.batches.iter().copied().find(|&b| b >= from),
        };
        self.queue.clear();
        match first {
            Some(first) => {
                for offset in first..l.end() {
                    if let Slot::Data(v) = l.slots[(offset - l.lo) as usize] {
                        self.queue.push_back(Polled::Record {
                            offset,
                            item: Some(v),
                        });
                    }
                }
                self.queue.push_back(Polled::End);
            }
            // tansu at the end of the log: an empty fetch at the high watermark
            None if from == l.end() => self.queue.push_back(Polled::End),
            // tansu inside the last batch: empty fetches, never at the high watermark
            None => {}
        }
        Ok(())
    }

    fn poll(&mut self, _timeout: Duration) -> Polled<u64> {
        self.queue.pop_front().unwrap_or(Polled::Idle)
    }
}

const IDLE: Duration = Duration::from_millis(200);

/// Scans the whole layout backwards and checks it saw every record, newest first.
fn check_back(layout: Layout) {
    let expected = layout.newest_first();
    let mut log = SimLog::new(layout.clone());
    let mut seen = Vec::new();
    let outcome = scan_back(&mut log, u64::MAX, IDLE, |_, v| {
        seen.push(v);
        Step::Continue
    })
    .unwrap_or_else(|e| panic!("{e} on {layout:?}"));
    assert_eq!(seen, expected, "{layout:?}");
    assert!(!outcome.bound_hit && !outcome.stopped, "{layout:?}");
}

/// Values `1..` at data slots; `gaps` are offsets (relative to `lo`) that are never delivered.
fn layout(broker: Broker, lo: i64, len: usize, gaps: &[usize], batch: usize) -> Layout {
    let mut v = 0;
    let slots = (0..len)
        .map(|i| {
            if gaps.contains(&i) {
                Slot::Gap
            } else {
                v += 1;
                Slot::Data(v)
            }
        })
        .collect();
    Layout {
        broker,
        lo,
        slots,
        batches: (0..len).step_by(batch).map(|i| lo + i as i64).collect(),
    }
}

#[test]
fn partition_ending_in_transaction_markers() {
    // a commit marker, or an aborted transaction of another producer and its abort marker
    check_back(layout(Broker::Kafka, 0, 101, &[100], 10));
    check_back(layout(Broker::Kafka, 0, 104, &[100, 101, 102, 103], 10));
    check_back(layout(
        Broker::Kafka,
        5,
        1_000,
        &(700..1_000).collect::<Vec<_>>(),
        50,
    ));
}

#[test]
fn gaps_in_the_middle_and_at_window_edges() {
    let end = 2_000;
    // the top read starts at end - 1; windows end at what it delivered and double from 256
    let edges = [end - 2, end - 257, end - 258, end - 513, end - 1_026, 0, 1];
    check_back(layout(Broker::Kafka, 0, end, &edges, 7));
}

#[test]
fn whole_windows_of_gaps() {
    let gaps: Vec<usize> = (10..3_000).collect();
    check_back(layout(Broker::Kafka, 0, 3_010, &gaps, 100));
    // nothing but gaps
    check_back(layout(
        Broker::Kafka,
        0,
        600,
        &(0..600).collect::<Vec<_>>(),
        100,
    ));
}

#[test]
fn tansu_serves_whole_batches_and_reports_the_last_base_plus_one() {
    check_back(layout(Broker::Tansu, 0, 30, &[], 10));
    check_back(layout(Broker::Tansu, 0, 1, &[], 10));
    check_back(layout(Broker::Tansu, 0, 5_000, &[], 1_000));
    check_back(layout(Broker::Tansu, 0, 2_345, &[], 333));
}

#[test]
fn empty_partition_costs_no_read() {
    let mut log = SimLog::new(layout(Broker::Kafka, 7, 0, &[], 1));
    let out = scan_back(&mut log, u64::MAX, IDLE, |_, _| Step::Continue).unwrap();
    assert_eq!((out.read, log.assigns), (0, 0));
}

#[test]
fn the_scan_stops_where_visit_says_and_at_its_bound() {
    let l = layout(Broker::Kafka, 0, 1_000, &[999], 10);
    let mut log = SimLog::new(l.clone());
    let mut seen = Vec::new();
    let out = scan_back(&mut log, u64::MAX, IDLE, |_, v| {
        seen.push(v);
        if v <= 990 {
            Step::Stop
        } else {
            Step::Continue
        }
    })
    .unwrap();
    assert!(out.stopped);
    assert_eq!(seen, (990..=999).rev().collect::<Vec<_>>());

    let mut log = SimLog::new(l);
    let mut seen = 0;
    let out = scan_back(&mut log, 300, IDLE, |_, _| {
        seen += 1;
        Step::Continue
    })
    .unwrap();
    assert!(out.bound_hit && !out.stopped);
    assert!((299..=300).contains(&seen), "{seen}");
}

#[test]
fn a_read_that_never_ends_fails_instead_of_hanging() {
    // tansu, assigned inside its last batch: no record, no end of partition
    let mut log = SimLog::new(layout(Broker::Tansu, 0, 30, &[], 10));
    let err = scan_forward(&mut log, ReadFrom::Offset(25), IDLE, |_, _| Step::Continue)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("partition 0") && err.contains("offset 25"),
        "{err}"
    );
}

#[test]
fn true_end_and_forward_scan_from_it() {
    for broker in [Broker::Kafka, Broker::Tansu] {
        for l in [
            layout(broker, 0, 30, &[], 10),
            layout(broker, 3, 0, &[], 10),
            layout(Broker::Kafka, 0, 30, &[28, 29], 10),
        ] {
            let mut log = SimLog::new(l.clone());
            let end = true_end(&mut log, IDLE).unwrap();
            assert_eq!(end, l.end(), "{l:?}");
            // nothing published since: the forward scan ends at once
            let n =
                scan_forward(&mut log, ReadFrom::Offset(end), IDLE, |_, _| Step::Continue).unwrap();
            assert_eq!(n, 0);
            // published since: exactly those
            log.append(&[Slot::Data(1_000), Slot::Gap, Slot::Data(1_001)]);
            log.append(&[Slot::Data(1_002)]);
            let mut seen = Vec::new();
            scan_forward(&mut log, ReadFrom::Offset(end), IDLE, |_, v| {
                seen.push(v);
                Step::Continue
            })
            .unwrap();
            assert_eq!(seen, vec![1_000, 1_001, 1_002], "{l:?}");
        }
    }
}

fn arb_layout() -> impl Strategy<Value = Layout> {
    (
        prop_oneof![Just(Broker::Kafka), Just(Broker::Tansu)],
        0i64..50,
        prop::collection::vec((1usize..300, 0u8..10), 0..40),
    )
        .prop_map(|(broker, lo, batches)| {
            let mut l = Layout {
                broker,
                lo,
                slots: Vec::new(),
                batches: Vec::new(),
            };
            let mut v = 0;
            for (len, kind) in batches {
                l.batches.push(l.end());
                for i in 0..len {
                    // Kafka: some batches are aborted (all gaps), some end in a marker, some have gaps
                    let gap = broker == Broker::Kafka
                        && match kind {
                            0 => true,
                            1 => i == len - 1,
                            2 => i % 3 == 0,
                            _ => false,
                        };
                    l.slots.push(if gap {
                        Slot::Gap
                    } else {
                        v += 1;
                        Slot::Data(v)
                    });
                }
            }
            l
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn backward_scan_sees_every_record_newest_first(l in arb_layout()) {
        check_back(l);
    }

    #[test]
    fn forward_scan_from_any_batch_sees_the_rest(l in arb_layout(), pick in any::<prop::sample::Index>()) {
        prop_assume!(!l.batches.is_empty());
        let from = l.batches[pick.index(l.batches.len())];
        let expected: Vec<u64> = l.slots[(from - l.lo) as usize..]
            .iter()
            .filter_map(|s| match s { Slot::Data(v) => Some(*v), Slot::Gap => None })
            .collect();
        let mut log = SimLog::new(l);
        let mut seen = Vec::new();
        scan_forward(&mut log, ReadFrom::Offset(from), IDLE, |_, v| { seen.push(v); Step::Continue }).unwrap();
        prop_assert_eq!(seen, expected);
    }
}
