//! Exactly once without transactions: finding what an interrupted run already published past the cursor.
//!
//! The argument: the pipeline publishes pages in seq order and awaits each `publish` before the next, and the
//! idempotent producer keeps each partition in send order, so within one partition the records of one
//! `(corp_id, stream)` appear in increasing seq order. The cursor only moves after a page is acknowledged, so
//! every record with seq <= cursor is acknowledged and anything past it is a tail. Reading a partition from the
//! high watermark down, the records of the stream seen before the first one with seq <= cursor are exactly
//! that partition's tail; the union over partitions (messages and dead letters) is the set to skip.
//!
//! Bound: at most `recover_max_records_per_partition` offsets below the high watermark are read per partition.
//! Past it the scan stops with a warning, assuming the stream's tail is newer than that (the tail is at most the
//! pages in flight at the crash; only heavy traffic of other streams in between could push it deeper).

use std::collections::BTreeSet;
use std::time::Instant;

use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;

use crate::scan::{partitions, reader, scan_back, Step};
use crate::sink::{run_blocking, KafkaSink};
use crate::{HEADER_CORP_ID, HEADER_SEQ, HEADER_STREAM};

/// The `seq` header of a record whose `corp_id` and `stream` headers match; `None` for other records.
fn matching_seq(
    m: &BorrowedMessage<'_>,
    corp_id: &str,
    stream: &str,
) -> Option<Result<u64, String>> {
    let headers = m.headers()?;
    let (mut corp, mut strm, mut seq) = (None, None, None);
    for h in headers.iter() {
        match h.key {
            HEADER_CORP_ID => corp = h.value,
            HEADER_STREAM => strm = h.value,
            HEADER_SEQ => seq = h.value,
            _ => {}
        }
    }
    if corp != Some(corp_id.as_bytes()) || strm != Some(stream.as_bytes()) {
        return None;
    }
    let parsed = seq
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| format!("offset {} has no valid seq header", m.offset()));
    Some(parsed)
}

impl KafkaSink {
    /// Seqs greater than `after_seq` that `corp_id`/`stream` already published to the messages or dead-letter
    /// topic (see the module docs for why this is exact, and for the scan bound). Fast on empty topics: one
    /// watermark request per partition.
    pub async fn recover(
        &self,
        corp_id: &str,
        stream: &str,
        after_seq: u64,
    ) -> Result<BTreeSet<u64>, crate::KafkaError> {
        let config = self.config.clone();
        let (corp_id, stream) = (corp_id.to_string(), stream.to_string());
        run_blocking(move || {
            let started = Instant::now();
            let consumer = reader(&config)?;
            let mut found = BTreeSet::new();
            let mut read = 0i64;
            for topic in [&config.topics.messages, &config.topics.deadletter] {
                for partition in partitions(&consumer, topic)? {
                    let outcome = scan_back(
                        &consumer,
                        topic,
                        partition,
                        config.recover_max_records_per_partition,
                        |m| match matching_seq(m, &corp_id, &stream)? {
                            Ok(seq) => Some(seq),
                            Err(reason) => {
                                tracing::warn!(%topic, partition, %reason, "record of this stream skipped by recover");
                                None
                            }
                        },
                        |_, seq| {
                            if seq <= after_seq {
                                Step::Stop
                            } else {
                                found.insert(seq);
                                Step::Continue
                            }
                        },
                    )?;
                    read += outcome.read;
                    if outcome.bound_hit {
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
                already_published = found.len(),
                offsets_read = read,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "kafka recovery scan done"
            );
            Ok(found)
        })
        .await
    }
}
