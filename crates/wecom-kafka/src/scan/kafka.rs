//! [`PartitionLog`] over a librdkafka consumer: assign-and-read, no group, no commits.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{PartitionLog, Polled, ReadFrom, REQUEST_TIMEOUT};
use crate::client::{client_config, ClientRole};
use crate::config::KafkaConfig;
use crate::context::SinkContext;
use crate::error::{client_error, KafkaError};

/// A consumer for assign-and-read: no group, no commits, end-of-partition events on.
pub(crate) fn reader(config: &KafkaConfig) -> Result<BaseConsumer<SinkContext>, KafkaError> {
    let context = SinkContext::new(config);
    let redact = context.redactor();
    client_config(config, ClientRole::Reader)
        .create_with_context(context)
        .map_err(|e| client_error(e, &redact))
}

/// Partition ids of `topic`, from a metadata request.
pub(crate) fn partitions(
    consumer: &BaseConsumer<SinkContext>,
    topic: &str,
) -> Result<Vec<i32>, KafkaError> {
    let md = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| KafkaError::Metadata {
            topic: topic.into(),
            code: e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
        })?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| KafkaError::MissingTopic {
            topic: topic.into(),
            reason: "not in metadata".into(),
        })?;
    if let Some(err) = t.error() {
        return Err(KafkaError::MissingTopic {
            topic: topic.into(),
            reason: format!("{:?}", RDKafkaErrorCode::from(err)),
        });
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// One partition of `topic`, read through `consumer`; `extract` takes what the scan needs from each record.
pub(crate) struct KafkaLog<'c, F> {
    consumer: &'c BaseConsumer<SinkContext>,
    topic: &'c str,
    partition: i32,
    extract: F,
}

impl<'c, T, F: FnMut(&BorrowedMessage<'_>) -> Option<T>> KafkaLog<'c, F> {
    pub(crate) fn new(
        consumer: &'c BaseConsumer<SinkContext>,
        topic: &'c str,
        partition: i32,
        extract: F,
    ) -> Self {
        KafkaLog {
            consumer,
            topic,
            partition,
            extract,
        }
    }
}

impl<F> KafkaLog<'_, F> {
    fn read_error(&self, reason: String) -> KafkaError {
        KafkaError::Read {
            topic: self.topic.into(),
            partition: self.partition,
            reason: self
                .consumer
                .context()
                .redactor()
                .apply(&reason)
                .into_owned(),
        }
    }
}

impl<T, F: FnMut(&BorrowedMessage<'_>) -> Option<T>> PartitionLog for KafkaLog<'_, F> {
    type Item = T;

    fn topic(&self) -> &str {
        self.topic
    }

    fn partition(&self) -> i32 {
        self.partition
    }

    fn watermarks(&mut self) -> Result<(i64, i64), KafkaError> {
        self.consumer
            .fetch_watermarks(self.topic, self.partition, REQUEST_TIMEOUT)
            .map_err(|e| self.read_error(format!("watermarks: {e}")))
    }

    fn assign(&mut self, from: ReadFrom) -> Result<(), KafkaError> {
        let offset = match from {
            ReadFrom::Offset(o) => Offset::Offset(o),
            ReadFrom::Beginning => Offset::Beginning,
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(self.topic, self.partition, offset)
            .and_then(|()| self.consumer.assign(&tpl))
            .map_err(|e| self.read_error(format!("assign at {from:?}: {e}")))
    }

    fn poll(&mut self, timeout: Duration) -> Polled<T> {
        match self.consumer.poll(timeout) {
            None => Polled::Idle,
            Some(Ok(m)) if m.topic() == self.topic && m.partition() == self.partition => {
                Polled::Record {
                    offset: m.offset(),
                    item: (self.extract)(&m),
                }
            }
            // one partition is assigned at a time, so an event of this partition is this read's
            Some(Err(RdError::PartitionEOF(p))) if p == self.partition => Polled::End,
            Some(Ok(_)) | Some(Err(RdError::PartitionEOF(_))) => Polled::Idle,
            Some(Err(e)) => Polled::Failed(
                self.consumer
                    .context()
                    .redactor()
                    .apply(&e.to_string())
                    .into_owned(),
            ),
        }
    }
}
