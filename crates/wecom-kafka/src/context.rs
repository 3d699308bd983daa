//! librdkafka callbacks: its logs and errors go to `tracing` (with `[kafka] properties` values redacted), its
//! statistics to a snapshot the pipeline can read for metrics (enable them with
//! `properties."statistics.interval.ms"`).

use std::sync::{Arc, Mutex};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdError;
use rdkafka::ClientContext;

use crate::config::KafkaConfig;
use crate::redact::Redactor;

/// The last statistics librdkafka emitted for the producer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProducerStats {
    /// Records waiting in the producer queue (`msg_cnt`).
    pub queued_messages: u64,
    /// Bytes waiting in the producer queue (`msg_size`).
    pub queued_bytes: u64,
    /// Records sent to brokers (`txmsgs`).
    pub tx_messages: u64,
    /// Uncompressed bytes of the records sent (`txmsg_bytes`).
    pub tx_message_bytes: u64,
    /// Bytes sent on the wire, requests included (`tx_bytes`): well below `tx_message_bytes` when
    /// compression works.
    pub tx_bytes: u64,
}

impl ProducerStats {
    fn from_json(v: &serde_json::Value) -> ProducerStats {
        let u = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        ProducerStats {
            queued_messages: u("msg_cnt"),
            queued_bytes: u("msg_size"),
            tx_messages: u("txmsgs"),
            tx_message_bytes: u("txmsg_bytes"),
            tx_bytes: u("tx_bytes"),
        }
    }
}

/// Shared slot for the latest statistics; the sink keeps a clone to read them.
#[derive(Default, Clone)]
pub(crate) struct StatsSlot(Arc<Mutex<Option<ProducerStats>>>);

impl StatsSlot {
    pub(crate) fn get(&self) -> Option<ProducerStats> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, stats: ProducerStats) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
    }
}

pub(crate) struct SinkContext {
    pub(crate) stats: StatsSlot,
    redact: Redactor,
    /// Everything at debug: for probes (`check`), where a broker that does not answer is the expected
    /// outcome to report once, not librdkafka's reconnect attempts to log.
    quiet: bool,
}

impl SinkContext {
    pub(crate) fn new(config: &KafkaConfig) -> Self {
        SinkContext {
            stats: StatsSlot::default(),
            redact: Redactor::new(config),
            quiet: false,
        }
    }

    pub(crate) fn quiet(config: &KafkaConfig) -> Self {
        SinkContext {
            quiet: true,
            ..SinkContext::new(config)
        }
    }

    pub(crate) fn redactor(&self) -> Redactor {
        self.redact.clone()
    }
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        let msg = self.redact.apply(msg);
        if self.quiet {
            tracing::debug!(target: "librdkafka", fac, "{msg}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{msg}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{msg}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{msg}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{msg}"),
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        // End of partition is how the recovery scan knows it read a partition to its end: not a problem.
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            tracing::debug!(target: "librdkafka", "end of partition");
            return;
        }
        let reason = self.redact.apply(reason);
        let error = self.redact.apply(&error.to_string()).into_owned();
        if self.quiet {
            tracing::debug!(target: "librdkafka", %error, %reason, "kafka client error");
            return;
        }
        // Transport errors are retried by librdkafka; a fatal one also fails the next delivery.
        tracing::warn!(target: "librdkafka", %error, %reason, "kafka client error");
    }

    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<serde_json::Value>(statistics) {
            Ok(v) => self.stats.set(ProducerStats::from_json(&v)),
            Err(e) => tracing::debug!(error = %e, "unparseable librdkafka statistics"),
        }
    }
}

/// The backwards-scan reader uses `assign` only: no rebalances, no commits.
impl ConsumerContext for SinkContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_from_json() {
        let v = serde_json::json!({
            "msg_cnt": 3, "msg_size": 40, "txmsgs": 100, "txmsg_bytes": 5000, "tx_bytes": 900
        });
        let s = ProducerStats::from_json(&v);
        assert_eq!(s.tx_messages, 100);
        assert_eq!(s.tx_bytes, 900);
        assert_eq!(s.queued_bytes, 40);
    }
}
