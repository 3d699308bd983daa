//! The sink: connect (probe the cluster, create missing topics, size the producer to what the topics take),
//! the topic of each line kind, flush. Publishing is in `publish.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};

use crate::admin::Admin;
use crate::client::{client_config, ClientRole};
use crate::config::KafkaConfig;
use crate::context::{ProducerStats, SinkContext, StatsSlot};
use crate::error::{client_error, KafkaError};
use crate::limits;
use crate::redact::Redactor;

/// Which topic a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// A normalized message (`topics.messages`).
    Record,
    /// An item that could not be decrypted or parsed (`topics.deadletter`).
    DeadLetter,
    /// A media object event (`topics.media`).
    MediaEvent,
    /// A recall event (`topics.recalls`).
    Recall,
}

/// The Kafka sink: an idempotent producer (`acks=all`) and the recovery reader. Cheap to clone.
#[derive(Clone)]
pub struct KafkaSink {
    pub(crate) producer: FutureProducer<SinkContext>,
    pub(crate) config: Arc<KafkaConfig>,
    pub(crate) redact: Redactor,
    /// The record size limit in force: `max_record_bytes`, lowered to what the topics take.
    pub(crate) max_record_bytes: Arc<AtomicU64>,
    stats: StatsSlot,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("config", &self.config)
            .field("max_record_bytes", &self.max_record_bytes())
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Validates the config and probes the cluster (an unreachable broker fails here, once and clearly:
    /// [`KafkaError::Unreachable`]), creates missing topics when `create_topics` is set (else
    /// [`KafkaError::MissingTopic`] names the first), and creates the producer with its record size limit
    /// lowered to what the messages and dead-letter topics take ([`KafkaSink::max_record_bytes`]).
    pub async fn connect(config: &KafkaConfig) -> Result<KafkaSink, KafkaError> {
        config.validate()?;
        let admin = Admin::new(config)?;
        let mut report = admin.check().await?;
        let missing = report.missing().next().cloned();
        if let Some(t) = missing {
            if !config.create_topics {
                return Err(KafkaError::MissingTopic {
                    topic: t.name.clone(),
                    reason: "not in metadata".into(),
                });
            }
            report = admin.create_missing(&report).await?;
        }
        let limit = report.max_record_bytes;
        if limit < limits::MIN_RECORD_BYTES {
            return Err(KafkaError::Config(format!(
                "the messages or dead-letter topic takes records of at most {limit} bytes (its max.message.bytes); \
                 raise it to at least {}",
                limits::message_max_bytes(limits::MIN_RECORD_BYTES)
            )));
        }
        if limit < config.max_record_bytes {
            tracing::warn!(
                max_record_bytes = config.max_record_bytes,
                topic_limit = limit,
                "a kafka topic takes smaller records than [kafka] max_record_bytes (its max.message.bytes); \
                 records above the topic's limit are published slimmed"
            );
        }
        let producer_config = KafkaConfig {
            max_record_bytes: limit,
            ..config.clone()
        };
        let context = SinkContext::new(config);
        let (stats, redact) = (context.stats.clone(), context.redactor());
        let producer: FutureProducer<SinkContext> =
            client_config(&producer_config, ClientRole::Producer)
                .create_with_context(context)
                .map_err(|e| client_error(e, &redact))?;
        tracing::info!(
            brokers = %config.brokers,
            messages = %config.topics.messages,
            media = %config.topics.media,
            deadletter = %config.topics.deadletter,
            cursor_topic = ?config.cursor_topic,
            compression = %config.compression,
            max_record_bytes = limit,
            "kafka sink connected"
        );
        Ok(KafkaSink {
            producer,
            config: Arc::new(config.clone()),
            redact,
            max_record_bytes: Arc::new(AtomicU64::new(limit)),
            stats,
        })
    }

    /// The config the sink runs with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The largest record `publish` sends, in [`crate::PublishLine::record_bytes`]: `max_record_bytes`,
    /// lowered to what the topics take (at connect, and when a topic refuses a record as too large).
    /// A bigger record must be published slimmed.
    pub fn max_record_bytes(&self) -> u64 {
        self.max_record_bytes.load(Ordering::Relaxed)
    }

    /// The topic a line of `kind` goes to.
    pub fn topic(&self, kind: LineKind) -> &str {
        let t = &self.config.topics;
        match kind {
            LineKind::Record => &t.messages,
            LineKind::DeadLetter => &t.deadletter,
            LineKind::MediaEvent => &t.media,
            LineKind::Recall => &t.recalls,
        }
    }

    /// The last producer statistics; `None` unless `properties."statistics.interval.ms"` is set.
    pub fn statistics(&self) -> Option<ProducerStats> {
        self.stats.get()
    }

    /// Waits up to `timeout` until every queued record is acknowledged.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        run_blocking(move || {
            producer.flush(timeout).map_err(|e| KafkaError::Flush {
                code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
            })
        })
        .await
    }
}

/// Runs blocking librdkafka calls (metadata, watermarks, flush, scans) off the async reactor.
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| KafkaError::Task(e.to_string()))?
}
