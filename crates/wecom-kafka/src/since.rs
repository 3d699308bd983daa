//! Exactly once for records published out of the live order, with an intent instead of the backward scan.
//!
//! `redrive` publishes records of old seqs (below the cursor) after the live tail, so the backward scan of
//! `recover` cannot tell whether they landed. The protocol: before publishing, take the topic's
//! [`end_offsets`](KafkaSink::end_offsets) and store them with the seqs about to be published (an intent file);
//! publish; mark the seqs resolved; drop the intent. After a crash, an intent still there means some of its
//! seqs may be in the topic: [`published_since`](KafkaSink::published_since) reads each partition from the
//! saved offset to its end and says which. Anything published after the intent was taken lies at or after the
//! saved offsets, so nothing is missed; reading is bounded by what was published since, and memory by the
//! candidate set.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::KafkaError;
use crate::recover::matching_seq;
use crate::scan::{
    partitions, reader, scan_forward, true_end, KafkaLog, ReadFrom, Step, IDLE_TIMEOUT,
};
use crate::sink::{run_blocking, KafkaSink, LineKind};

/// Where a topic ended when they were taken: the offset after each partition's last record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndOffsets {
    pub topic: String,
    /// `(partition, offset)`; a partition created later is read from its beginning.
    pub partitions: Vec<(i32, i64)>,
}

impl KafkaSink {
    /// The end of every partition of the topic of `kind`, to take *before* publishing. Never above the true
    /// end (a record published afterwards lands at or after it), whatever the broker's watermarks say.
    pub async fn end_offsets(&self, kind: LineKind) -> Result<EndOffsets, KafkaError> {
        let config = self.config.clone();
        let topic = self.topic(kind).to_string();
        run_blocking(move || {
            let consumer = reader(&config)?;
            let mut out = Vec::new();
            for partition in partitions(&consumer, &topic)? {
                let mut log = KafkaLog::new(&consumer, &topic, partition, |_| None::<()>);
                out.push((partition, true_end(&mut log, IDLE_TIMEOUT)?));
            }
            Ok(EndOffsets {
                topic,
                partitions: out,
            })
        })
        .await
    }

    /// Which of `candidates` `corp_id`/`stream` published to `since.topic` at or after `since` (see the module
    /// docs). Each partition is read from its saved offset to its end-of-partition event; the read stops early
    /// once every candidate is found.
    pub async fn published_since(
        &self,
        since: &EndOffsets,
        corp_id: &str,
        stream: &str,
        candidates: &BTreeSet<u64>,
    ) -> Result<BTreeSet<u64>, KafkaError> {
        if candidates.is_empty() {
            return Ok(BTreeSet::new());
        }
        let config = self.config.clone();
        let since = since.clone();
        let (corp_id, stream) = (corp_id.to_string(), stream.to_string());
        let candidates = candidates.clone();
        run_blocking(move || {
            let consumer = reader(&config)?;
            let topic = since.topic.as_str();
            let mut found = BTreeSet::new();
            let mut read = 0u64;
            for partition in partitions(&consumer, topic)? {
                if found.len() == candidates.len() {
                    break;
                }
                let from = since
                    .partitions
                    .iter()
                    .find(|(p, _)| *p == partition)
                    .map_or(ReadFrom::Beginning, |&(_, o)| ReadFrom::Offset(o));
                let mut log = KafkaLog::new(&consumer, topic, partition, |m| {
                    match matching_seq(m, &corp_id, &stream)? {
                        Ok(r) => candidates.contains(&r.seq).then_some(r.seq),
                        Err(reason) => {
                            tracing::warn!(%topic, partition, %reason, "record of this stream skipped");
                            None
                        }
                    }
                });
                read += scan_forward(&mut log, from, IDLE_TIMEOUT, |_, seq| {
                        found.insert(seq);
                    if found.len() == candidates.len() {
                        Step::Stop
                    } else {
                        Step::Continue
                    }
                })?;
            }
            tracing::debug!(%topic, corp_id = %corp_id, stream = %stream, candidates = candidates.len(), found = found.len(), records_read = read, "kafka forward scan done");
            Ok(found)
        })
        .await
    }
}
