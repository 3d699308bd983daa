//! The optional cursor copy in a compacted topic, so a worker on another machine can take a stream over.
//! The local cursor file stays the primary; this copy is written after it.
//!
//! Record: partition 0 of `cursor_topic`, key `corp_id/stream`, value `{"version":1,"seq":N}`.

use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::Message;
use serde::{Deserialize, Serialize};

use crate::error::KafkaError;
use crate::scan::{reader, scan_back, KafkaLog, Step, IDLE_TIMEOUT};
use crate::sink::{run_blocking, KafkaSink};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorValue {
    version: u32,
    seq: u64,
}

const CURSOR_VERSION: u32 = 1;

fn cursor_key(corp_id: &str, stream: &str) -> String {
    format!("{corp_id}/{stream}")
}

impl KafkaSink {
    fn cursor_topic(&self) -> Result<&str, KafkaError> {
        self.config
            .cursor_topic
            .as_deref()
            .ok_or(KafkaError::NoCursorTopic)
    }

    /// Writes the cursor of `corp_id`/`stream` and waits for the broker's acknowledgement.
    pub async fn store_cursor(
        &self,
        corp_id: &str,
        stream: &str,
        seq: u64,
    ) -> Result<(), KafkaError> {
        let topic = self.cursor_topic()?;
        let key = cursor_key(corp_id, stream);
        let value = serde_json::to_vec(&CursorValue {
            version: CURSOR_VERSION,
            seq,
        })
        .map_err(|e| KafkaError::Cursor {
            topic: topic.into(),
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let record = FutureRecord::to(topic)
            .partition(0)
            .key(key.as_str())
            .payload(value.as_slice());
        let timeout = Timeout::After(std::time::Duration::from_millis(u64::from(
            self.config.message_timeout_ms,
        )));
        match self.producer.send(record, timeout).await {
            Ok(_) => Ok(()),
            Err((e, m)) => Err(self.publish_error(topic, m.partition(), seq, &e)),
        }
    }

    /// The last cursor stored for `corp_id`/`stream`, newest first from partition 0 (compaction keeps the scan
    /// short: one record per key), bounded by `recover_max_records_per_partition`.
    pub async fn load_cursor(
        &self,
        corp_id: &str,
        stream: &str,
    ) -> Result<Option<u64>, KafkaError> {
        let topic = self.cursor_topic()?.to_string();
        let key = cursor_key(corp_id, stream);
        let config = self.config.clone();
        run_blocking(move || {
            let consumer = reader(&config)?;
            let mut last: Option<Option<Vec<u8>>> = None;
            let mut log = KafkaLog::new(&consumer, &topic, 0, |m| {
                (m.key() == Some(key.as_bytes())).then(|| m.payload().map(<[u8]>::to_vec))
            });
            scan_back(
                &mut log,
                config.recover_max_records_per_partition,
                IDLE_TIMEOUT,
                |_, value| {
                    last = Some(value);
                    Step::Stop
                },
            )?;
            // a record without a value is a tombstone: the cursor was deleted
            let Some(Some(value)) = last else {
                return Ok(None);
            };
            let bad = |reason: String| KafkaError::Cursor {
                topic: topic.clone(),
                key: key.clone(),
                reason,
            };
            let v: CursorValue = serde_json::from_slice(&value).map_err(|e| bad(e.to_string()))?;
            if v.version != CURSOR_VERSION {
                return Err(bad(format!("unsupported version {}", v.version)));
            }
            Ok(Some(v.seq))
        })
        .await
    }
}
