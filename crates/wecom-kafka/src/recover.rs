//! Exactly once without transactions: finding what an interrupted run already published past the cursor.
//!
//! The argument: the pipeline publishes pages in seq order and awaits each `publish` before the next, and the
//! idempotent producer keeps each partition in send order, so within one partition of one topic the records of
//! one `(corp_id, stream)` appear in increasing seq order. The cursor only moves after a page is acknowledged,
//! so every record with seq <= cursor is acknowledged and anything past it is a tail. Reading a partition from
//! its end down, the records of the stream seen before the first one with seq <= cursor are exactly that
//! partition's tail.
//!
//! **The messages topic and the dead-letter topic are recovered apart** ([`Recovered`]): a seq dead-lettered
//! before a crash may be a record after the restart (the missing key was added), and must then be published
//! as one; only the topic a line goes to says whether it is already there.
//!
//! **Redriven records do not stop the scan.** `redrive` publishes records of old seqs (below the cursor) after
//! the live tail; they carry the [`HEADER_REDRIVEN`](crate::HEADER_REDRIVEN) header, and the scan counts them
//! when they are past the cursor but never stops at them, so a redrive between a crash and the restart hides
//! nothing of the live tail.
//!
//! Bound: at most `recover_max_records_per_partition` offsets below the end are read per partition. Past it the
//! scan stops with a warning, assuming the stream's tail is newer than that (the tail is at most the pages in
//! flight at the crash; only heavy traffic of other streams in between could push it deeper).

use std::collections::BTreeSet;
use std::time::Instant;

use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;

use crate::scan::{partitions, reader, scan_back, KafkaLog, Step, IDLE_TIMEOUT};
use crate::sink::{run_blocking, KafkaSink, LineKind};
use crate::{HEADER_CORP_ID, HEADER_REDRIVEN, HEADER_SEQ, HEADER_STREAM};

/// The seqs past the cursor an interrupted run already published, per topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// In the messages topic: skip these records.
    pub records: BTreeSet<u64>,
    /// In the dead-letter topic: skip these dead letters (a seq here is *not* a published record).
    pub dead_letters: BTreeSet<u64>,
}

impl Recovered {
    /// Whether a line of `kind` with `seq` is already in its topic (media events are not recovered: false).
    pub fn contains(&self, kind: LineKind, seq: u64) -> bool {
        match kind {
            LineKind::Record => self.records.contains(&seq),
            LineKind::DeadLetter => self.dead_letters.contains(&seq),
            LineKind::MediaEvent | LineKind::Recall => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.dead_letters.is_empty()
    }
}

/// A record of the stream, as the scans see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamRecord {
    pub seq: u64,
    /// Published by `redrive`, out of the live seq order.
    pub redriven: bool,
}

/// The `seq` header of a record whose `corp_id` and `stream` headers match; `None` for other records.
pub(crate) fn matching_seq(
    m: &BorrowedMessage<'_>,
    corp_id: &str,
    stream: &str,
) -> Option<Result<StreamRecord, String>> {
    let headers = m.headers()?;
    let (mut corp, mut strm, mut seq, mut redriven) = (None, None, None, false);
    for h in headers.iter() {
        match h.key {
            HEADER_CORP_ID => corp = h.value,
            HEADER_STREAM => strm = h.value,
            HEADER_SEQ => seq = h.value,
            HEADER_REDRIVEN => redriven = true,
            _ => {}
        }
    }
    if corp != Some(corp_id.as_bytes()) || strm != Some(stream.as_bytes()) {
        return None;
    }
    let parsed = seq
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .map(|seq| StreamRecord { seq, redriven })
        .ok_or_else(|| format!("offset {} has no valid seq header", m.offset()));
    Some(parsed)
}

impl KafkaSink {
    /// Seqs greater than `after_seq` that `corp_id`/`stream` already published, in the messages topic and in
    /// the dead-letter topic apart (see the module docs for why this is exact, and for the scan bound). Fast on
    /// empty topics: one watermark request per partition.
    pub async fn recover(
        &self,
        corp_id: &str,
        stream: &str,
        after_seq: u64,
    ) -> Result<Recovered, crate::KafkaError> {
        let config = self.config.clone();
        let (corp_id, stream) = (corp_id.to_string(), stream.to_string());
        run_blocking(move || {
            let started = Instant::now();
            let consumer = reader(&config)?;
            let mut recovered = Recovered::default();
            let mut read = 0i64;
            for (topic, found) in [
                (&config.topics.messages, &mut recovered.records),
                (&config.topics.deadletter, &mut recovered.dead_letters),
            ] {
                for partition in partitions(&consumer, topic)? {
                    let mut log = KafkaLog::new(&consumer, topic, partition, |m| {
                        match matching_seq(m, &corp_id, &stream)? {
                            Ok(r) => Some(r),
                            Err(reason) => {
                                tracing::warn!(%topic, partition, %reason, "record of this stream skipped by recover");
                                None
                            }
                        }
                    });
                    let outcome = scan_back(
                        &mut log,
                        config.recover_max_records_per_partition,
                        IDLE_TIMEOUT,
                        |_, r| tail_step(after_seq, r, found),
                    )?;
                    read += outcome.read;
                    if outcome.bound_hit && !outcome.stopped {
                        tracing::warn!(
                            %topic,
                            partition,
                            bound = config.recover_max_records_per_partition,
                            "recover scan stopped at its bound; older records of this stream are taken to be at or below the cursor"
                        );
                    }
                }
            }
            tracing::info!(
                corp_id = %corp_id,
                stream = %stream,
                after_seq,
                records = recovered.records.len(),
                dead_letters = recovered.dead_letters.len(),
                offsets_read = read,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "kafka recovery scan done"
            );
            Ok(recovered)
        })
        .await
    }
}

/// One record of the stream, newest first: past the cursor it belongs to the tail; at or below it, it ends the
/// tail unless it was redriven (published out of the live order).
pub(crate) fn tail_step(after_seq: u64, r: StreamRecord, found: &mut BTreeSet<u64>) -> Step {
    if r.seq > after_seq {
        found.insert(r.seq);
        Step::Continue
    } else if r.redriven {
        Step::Continue
    } else {
        Step::Stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_ends_at_the_first_live_record_at_or_below_the_cursor() {
        let check = |after: u64, newest_first: &[(u64, bool)], expected: &[u64], stops: bool| {
            let mut found = BTreeSet::new();
            let stopped = newest_first.iter().any(|&(seq, redriven)| {
                matches!(
                    tail_step(after, StreamRecord { seq, redriven }, &mut found),
                    Step::Stop
                )
            });
            assert_eq!(
                found,
                expected.iter().copied().collect(),
                "after {after}: {newest_first:?}"
            );
            assert_eq!(stopped, stops, "after {after}: {newest_first:?}");
        };
        check(
            10,
            &[(12, false), (11, false), (10, false), (9, false)],
            &[11, 12],
            true,
        );
        // a redrive of seq 3 between the crash and the restart sits above the tail
        check(
            10,
            &[(3, true), (12, false), (11, false), (10, false)],
            &[11, 12],
            true,
        );
        check(10, &[(3, true), (2, true)], &[], false);
        // a redriven record past the cursor is in the topic: it counts
        check(10, &[(14, true), (12, false), (8, false)], &[12, 14], true);
    }
}
