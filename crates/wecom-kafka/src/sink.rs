//! The producer side: connect (create and check topics), publish pages, flush.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{client_config, ClientRole};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::config::KafkaConfig;
use crate::context::{ProducerStats, SinkContext, StatsSlot};
use crate::error::{client_error, is_fatal_code, KafkaError};
use crate::{HEADER_CORP_ID, HEADER_SEQ, HEADER_STREAM};

/// Which topic a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// A normalized message (`topics.messages`).
    Record,
    /// An item that could not be decrypted or parsed (`topics.deadletter`).
    DeadLetter,
    /// A media object event (`topics.media`).
    MediaEvent,
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishLine {
    pub kind: LineKind,
    pub seq: u64,
    /// Partition key: the conversation id for records; for dead letters the conversation if known, else the msgid.
    pub key: String,
    /// Kafka headers. `Record` and `DeadLetter` lines must carry `corp_id` and `stream` (recovery matches on
    /// them); a `seq` header is added when missing and must equal `seq` when present.
    pub headers: Vec<(String, String)>,
    /// The JSON value.
    pub payload: Vec<u8>,
}

/// The Kafka sink: an idempotent producer (`acks=all`) and the recovery reader. Cheap to clone.
#[derive(Clone)]
pub struct KafkaSink {
    pub(crate) producer: FutureProducer<SinkContext>,
    pub(crate) config: Arc<KafkaConfig>,
    stats: StatsSlot,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How long `connect` waits for newly created topics to show up in metadata.
const TOPIC_VISIBLE_TIMEOUT: Duration = Duration::from_secs(15);

impl KafkaSink {
    /// Validates the config, creates the producer, creates missing topics when `create_topics` is set, and
    /// checks that every topic exists (error naming the topic otherwise).
    pub async fn connect(config: &KafkaConfig) -> Result<KafkaSink, KafkaError> {
        config.validate()?;
        let stats = StatsSlot::default();
        let producer: FutureProducer<SinkContext> = client_config(config, ClientRole::Producer)
            .create_with_context(SinkContext {
                stats: stats.clone(),
            })
            .map_err(client_error)?;
        let sink = KafkaSink {
            producer,
            config: Arc::new(config.clone()),
            stats,
        };
        if config.create_topics {
            sink.create_topics().await?;
        }
        // new topics may take a moment to show in metadata (real Kafka); missing ones fail at once
        let wait = if config.create_topics {
            TOPIC_VISIBLE_TIMEOUT
        } else {
            Duration::ZERO
        };
        sink.check_topics(wait).await?;
        tracing::info!(
            brokers = %config.brokers,
            messages = %config.topics.messages,
            media = %config.topics.media,
            deadletter = %config.topics.deadletter,
            cursor_topic = ?config.cursor_topic,
            compression = %config.compression,
            "kafka sink connected"
        );
        Ok(sink)
    }

    /// The config the sink runs with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The topic a line of `kind` goes to.
    pub fn topic(&self, kind: LineKind) -> &str {
        let t = &self.config.topics;
        match kind {
            LineKind::Record => &t.messages,
            LineKind::DeadLetter => &t.deadletter,
            LineKind::MediaEvent => &t.media,
        }
    }

    /// The last producer statistics; `None` unless `properties."statistics.interval.ms"` is set.
    pub fn statistics(&self) -> Option<ProducerStats> {
        self.stats.get()
    }

    async fn create_topics(&self) -> Result<(), KafkaError> {
        let c = &self.config;
        let admin: AdminClient<SinkContext> = client_config(c, ClientRole::Admin)
            .create_with_context(SinkContext::default())
            .map_err(client_error)?;
        let repl = || TopicReplication::Fixed(i32::from(c.replication_factor));
        let mut new = vec![
            NewTopic::new(&c.topics.messages, c.partitions, repl()),
            NewTopic::new(&c.topics.media, c.partitions, repl()),
            NewTopic::new(&c.topics.deadletter, c.partitions, repl()),
        ];
        if let Some(cursor) = &c.cursor_topic {
            // one partition: load_cursor reads partition 0 only
            new.push(NewTopic::new(cursor, 1, repl()).set("cleanup.policy", "compact"));
        }
        let opts = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(15)));
        let results =
            admin
                .create_topics(new.iter(), &opts)
                .await
                .map_err(|e| KafkaError::CreateTopic {
                    topic: c.topics.messages.clone(),
                    code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                })?;
        for r in results {
            match r {
                Ok(topic) => tracing::info!(%topic, "kafka topic created"),
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::debug!(%topic, "kafka topic already exists")
                }
                Err((topic, code)) => return Err(KafkaError::CreateTopic { topic, code }),
            }
        }
        Ok(())
    }

    async fn check_topics(&self, wait: Duration) -> Result<(), KafkaError> {
        let c = &self.config;
        let mut topics = vec![
            c.topics.messages.clone(),
            c.topics.media.clone(),
            c.topics.deadletter.clone(),
        ];
        topics.extend(c.cursor_topic.clone());
        let producer = self.producer.clone();
        run_blocking(move || {
            for topic in topics {
                let deadline = Instant::now() + wait;
                loop {
                    let md = producer
                        .client()
                        .fetch_metadata(Some(&topic), crate::scan::REQUEST_TIMEOUT)
                        .map_err(|e| KafkaError::Metadata {
                            topic: topic.clone(),
                            code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                        })?;
                    let problem = match md.topics().iter().find(|t| t.name() == topic) {
                        None => Some("not in metadata".to_string()),
                        Some(t) => match t.error() {
                            Some(err) => Some(format!("{:?}", RDKafkaErrorCode::from(err))),
                            None if t.partitions().is_empty() => Some("no partitions".to_string()),
                            None => None,
                        },
                    };
                    match problem {
                        None => break,
                        Some(reason) if Instant::now() > deadline => {
                            return Err(KafkaError::MissingTopic { topic, reason })
                        }
                        Some(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Publishes `lines` in order and resolves when the broker acknowledged every one (`acks=all`).
    ///
    /// All records are enqueued first (waiting for the oldest acknowledgement when the bounded producer queue
    /// is full) and then awaited in order. With the idempotent producer, records of one partition land in send
    /// order, so awaiting each call before the next keeps every partition in seq order. On error, records of
    /// this call may or may not be in the topics: stop without moving the cursor and `recover` on the next
    /// start; never re-publish the same lines blindly.
    pub async fn publish(&self, lines: Vec<PublishLine>) -> Result<(), KafkaError> {
        let mut pending: VecDeque<(DeliveryFuture, LineKind, u64)> =
            VecDeque::with_capacity(lines.len());
        for line in &lines {
            let headers = headers(line)?;
            let topic = self.topic(line.kind);
            let mut record = FutureRecord::to(topic)
                .key(line.key.as_str())
                .payload(line.payload.as_slice())
                .headers(headers);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back((delivery, line.kind, line.seq));
                        break;
                    }
                    Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        match pending.pop_front() {
                            Some((delivery, kind, seq)) => {
                                self.delivered(delivery, kind, seq).await?
                            }
                            // the queue is full with another caller's records (e.g. store_cursor)
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => return Err(self.publish_error(topic, line.seq, &e)),
                }
            }
        }
        for (delivery, kind, seq) in pending {
            self.delivered(delivery, kind, seq).await?;
        }
        Ok(())
    }

    async fn delivered(
        &self,
        delivery: DeliveryFuture,
        kind: LineKind,
        seq: u64,
    ) -> Result<(), KafkaError> {
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(self.publish_error(self.topic(kind), seq, &e)),
            Err(_canceled) => Err(KafkaError::Canceled {
                topic: self.topic(kind).into(),
                seq,
            }),
        }
    }

    pub(crate) fn publish_error(&self, topic: &str, seq: u64, e: &RdError) -> KafkaError {
        let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        let (detail, fatal) = match self.producer.client().fatal_error() {
            Some((fcode, reason)) => (
                format!(": producer is in fatal state {fcode:?}: {reason}"),
                true,
            ),
            None => (String::new(), is_fatal_code(code)),
        };
        let err = KafkaError::Publish {
            topic: topic.into(),
            seq,
            code,
            detail,
            fatal,
        };
        tracing::error!(topic, seq, code = ?code, fatal, "kafka publish failed");
        err
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

fn headers(line: &PublishLine) -> Result<OwnedHeaders, KafkaError> {
    let find = |name: &str| {
        line.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if matches!(line.kind, LineKind::Record | LineKind::DeadLetter) {
        for name in [HEADER_CORP_ID, HEADER_STREAM] {
            if find(name).is_none() {
                return Err(KafkaError::InvalidLine {
                    seq: line.seq,
                    reason: format!("missing header {name} (recover matches on it)"),
                });
            }
        }
    }
    let seq = line.seq.to_string();
    let has_seq = match find(HEADER_SEQ) {
        Some(v) if v == seq => true,
        Some(v) => {
            return Err(KafkaError::InvalidLine {
                seq: line.seq,
                reason: format!("header seq {v:?} differs from the line's seq"),
            })
        }
        None => false,
    };
    let mut h = OwnedHeaders::new_with_capacity(line.headers.len() + 1);
    for (k, v) in &line.headers {
        h = h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    if !has_seq {
        h = h.insert(Header {
            key: HEADER_SEQ,
            value: Some(seq.as_bytes()),
        });
    }
    Ok(h)
}

/// Runs blocking librdkafka calls (metadata, watermarks, flush, backwards scans) off the async reactor.
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| KafkaError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    fn line(headers: &[(&str, &str)]) -> PublishLine {
        PublishLine {
            kind: LineKind::Record,
            seq: 5,
            key: "conv".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn seq_header_is_added_and_checked() {
        let h = headers(&line(&[("corp_id", "c"), ("stream", "corp")])).unwrap();
        let keys: Vec<_> = h
            .iter()
            .map(|h| (h.key.to_string(), h.value.unwrap().to_vec()))
            .collect();
        assert_eq!(keys.last().unwrap(), &("seq".to_string(), b"5".to_vec()));
        assert_eq!(h.count(), 3);
        assert!(headers(&line(&[("corp_id", "c"), ("stream", "corp"), ("seq", "5")])).is_ok());
        let e = headers(&line(&[("corp_id", "c"), ("stream", "corp"), ("seq", "6")])).unwrap_err();
        assert!(e.is_fatal());
        let e = headers(&line(&[("corp_id", "c")])).unwrap_err();
        assert!(e.to_string().contains("stream"), "{e}");
        let mut media = line(&[]);
        media.kind = LineKind::MediaEvent;
        assert!(headers(&media).is_ok());
    }
}
