//! The `[kafka]` config section: typed, defaulted, validated before any client is built.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::KafkaError;
use crate::limits;

/// Properties the sink sets itself because exactly-once depends on them; `properties` may not override them.
const PROTECTED: &[&str] = &[
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "bootstrap.servers",
    "metadata.broker.list",
    "transactional.id",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    // derived from max_record_bytes (limits.rs), so the two never disagree
    "message.max.bytes",
];

/// Compression codecs accepted in `compression` (lz4 and zstd are the ones tested).
pub const COMPRESSIONS: &[&str] = &["lz4", "zstd", "none", "gzip", "snappy"];

/// Settings of the Kafka sink.
///
/// `Debug` prints the names of `properties` only: their values may hold passwords (SASL, TLS keys).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    pub topics: Topics,
    /// Create missing topics with the admin API at connect (already-existing topics are fine).
    pub create_topics: bool,
    /// Partitions of topics created by the sink (the cursor topic always gets one).
    pub partitions: i32,
    pub replication_factor: i16,
    /// `compression.type`: one of [`COMPRESSIONS`].
    pub compression: String,
    pub linger_ms: u32,
    /// `batch.size` in bytes.
    pub batch_size: u32,
    /// `queue.buffering.max.kbytes`: bounds the producer's memory; `publish` waits when it is full.
    pub queue_buffering_max_kbytes: u32,
    /// `message.timeout.ms`: how long librdkafka retries a record before `publish` fails with a timeout.
    pub message_timeout_ms: u32,
    /// Largest record published, in bytes of key, value and headers
    /// ([`crate::PublishLine::record_bytes`]). A bigger record is refused by `publish` before anything of its
    /// page is sent, with an error the pipeline answers by publishing it slimmed. librdkafka's
    /// `message.max.bytes` and the `max.message.bytes` of topics the sink creates are derived from it; a topic
    /// that accepts less lowers it at connect ([`crate::KafkaSink::max_record_bytes`]).
    pub max_record_bytes: u64,
    /// Bound of the backwards scan of [`crate::KafkaSink::recover`], in records per partition.
    pub recover_max_records_per_partition: u64,
    /// Optional compacted topic holding `corp/stream` cursors, so another machine can take over.
    pub cursor_topic: Option<String>,
    /// Extra librdkafka properties (e.g. `security.protocol`, `sasl.*`). Values are never logged.
    pub properties: BTreeMap<String, String>,
}

/// Topic names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    pub messages: String,
    pub media: String,
    pub deadletter: String,
    /// Recall events linking a `revoke` record and the recalled message.
    pub recalls: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            messages: "wecom.messages".into(),
            media: "wecom.media".into(),
            deadletter: "wecom.deadletter".into(),
            recalls: "wecom.recalls".into(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topics: Topics::default(),
            create_topics: true,
            partitions: 6,
            replication_factor: 1,
            compression: "lz4".into(),
            linger_ms: 20,
            batch_size: 1_000_000,
            queue_buffering_max_kbytes: 65_536,
            message_timeout_ms: 120_000,
            max_record_bytes: 1_000_000,
            recover_max_records_per_partition: 500_000,
            cursor_topic: None,
            properties: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("create_topics", &self.create_topics)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("compression", &self.compression)
            .field("linger_ms", &self.linger_ms)
            .field("batch_size", &self.batch_size)
            .field(
                "queue_buffering_max_kbytes",
                &self.queue_buffering_max_kbytes,
            )
            .field("message_timeout_ms", &self.message_timeout_ms)
            .field("max_record_bytes", &self.max_record_bytes)
            .field(
                "recover_max_records_per_partition",
                &self.recover_max_records_per_partition,
            )
            .field("cursor_topic", &self.cursor_topic)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KafkaConfig {
    /// Checks the values `connect` relies on; the error names the field, never a property value.
    pub fn validate(&self) -> Result<(), KafkaError> {
        let bad = |msg: String| Err(KafkaError::Config(msg));
        if self.brokers.trim().is_empty() {
            return bad("brokers is empty".into());
        }
        for (field, name) in [
            ("topics.messages", &self.topics.messages),
            ("topics.media", &self.topics.media),
            ("topics.deadletter", &self.topics.deadletter),
            ("topics.recalls", &self.topics.recalls),
        ] {
            if name.trim().is_empty() {
                return bad(format!("{field} is empty"));
            }
        }
        if let Some(c) = &self.cursor_topic {
            if c.trim().is_empty() {
                return bad("cursor_topic is empty".into());
            }
        }
        if self.partitions < 1 {
            return bad(format!(
                "partitions must be at least 1, got {}",
                self.partitions
            ));
        }
        if self.replication_factor < 1 {
            return bad(format!(
                "replication_factor must be at least 1, got {}",
                self.replication_factor
            ));
        }
        if !COMPRESSIONS.contains(&self.compression.as_str()) {
            return bad(format!(
                "compression {:?} is not one of {}",
                self.compression,
                COMPRESSIONS.join(", ")
            ));
        }
        if self.message_timeout_ms == 0 {
            return bad("message_timeout_ms must be positive (0 would retry forever)".into());
        }
        if self.queue_buffering_max_kbytes == 0 || self.batch_size == 0 {
            return bad("queue_buffering_max_kbytes and batch_size must be positive".into());
        }
        let max_record = limits::LIBRDKAFKA_MAX - limits::RECORD_OVERHEAD;
        if !(limits::MIN_RECORD_BYTES..=max_record).contains(&self.max_record_bytes) {
            return bad(format!(
                "max_record_bytes must be between {} and {max_record}, got {}",
                limits::MIN_RECORD_BYTES,
                self.max_record_bytes
            ));
        }
        let message_max = limits::message_max_bytes(self.max_record_bytes);
        if u64::from(self.queue_buffering_max_kbytes) * 1024 < message_max {
            return bad(format!(
                "queue_buffering_max_kbytes ({} KiB) must hold one record of max_record_bytes ({} bytes with framing)",
                self.queue_buffering_max_kbytes, message_max
            ));
        }
        if self.recover_max_records_per_partition == 0 {
            return bad("recover_max_records_per_partition must be positive".into());
        }
        for key in self.properties.keys() {
            if PROTECTED.contains(&key.as_str()) {
                return bad(format!(
                    "properties may not set {key}: the sink sets it (exactly-once and the record size limit depend on it)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_parse_from_empty() {
        let c: KafkaConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, KafkaConfig::default());
        c.validate().unwrap();
        assert_eq!(c.topics.messages, "wecom.messages");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<KafkaConfig>(r#"{"broker":"x"}"#).is_err());
        assert!(serde_json::from_str::<KafkaConfig>(r#"{"topics":{"msgs":"x"}}"#).is_err());
    }

    #[test]
    fn validation_errors_name_the_field() {
        let check = |f: &dyn Fn(&mut KafkaConfig), needle: &str| {
            let mut c = KafkaConfig::default();
            f(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} should contain {needle:?}");
        };
        check(&|c| c.brokers.clear(), "brokers");
        check(&|c| c.partitions = 0, "partitions");
        check(&|c| c.compression = "brotli".into(), "compression");
        check(&|c| c.topics.media = " ".into(), "topics.media");
        check(&|c| c.max_record_bytes = 100, "max_record_bytes");
        check(&|c| c.max_record_bytes = 2_000_000_000, "max_record_bytes");
        check(
            &|c| {
                c.max_record_bytes = 100_000_000;
            },
            "queue_buffering_max_kbytes",
        );
        check(
            &|c| {
                c.properties
                    .insert("message.max.bytes".into(), "5000000".into());
            },
            "message.max.bytes",
        );
        check(
            &|c| {
                c.properties.insert("acks".into(), "1".into());
            },
            "acks",
        );
    }

    #[test]
    fn debug_hides_property_values() {
        let mut c = KafkaConfig::default();
        c.properties
            .insert("sasl.password".into(), "hunter2".into());
        let d = format!("{c:?}");
        assert!(d.contains("sasl.password"));
        assert!(!d.contains("hunter2"));
    }
}
