//! Consuming the messages topic when records go to Kafka only.
//!
//! The console joins the consumer group `[console] kafka_group_id`, but its position is the one stored
//! in its own index commit (per partition, the next offset): after a crash it resumes exactly there, and
//! a rebuilt index (deleted directory) starts every partition from the beginning whatever the group has
//! committed. The group's offsets are committed after each index commit, so lag tools show the console.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{debug, info, warn};
use wecom_kafka::{ClientRole, KafkaConfig};

use crate::error::ConsoleError;

/// One record payload and where it came from.
pub struct KafkaLine {
    pub partition: i32,
    pub offset: i64,
    pub bytes: Vec<u8>,
}

/// The consumer config of the console. One function, so the shared builder of `wecom-kafka` is the only
/// place properties come from.
pub fn consumer_config(kafka: &KafkaConfig, group_id: &str) -> rdkafka::ClientConfig {
    let mut c = wecom_kafka::client_config(kafka, ClientRole::GroupConsumer { group_id });
    // The console reads whole records; a bounded prefetch keeps memory flat on a large backlog.
    c.set("queued.max.messages.kbytes", "32768");
    c
}

pub struct KafkaSource {
    consumer: BaseConsumer,
    topic: String,
    /// Next offset per partition, as committed in the index.
    expected: BTreeMap<i32, i64>,
    /// Partitions already moved to the index's position.
    sought: HashSet<i32>,
}

impl KafkaSource {
    pub fn new(
        kafka: &KafkaConfig,
        group_id: &str,
        positions: &BTreeMap<i32, i64>,
    ) -> Result<Self, ConsoleError> {
        let topic = kafka.topics.messages.clone();
        let consumer: BaseConsumer =
            consumer_config(kafka, group_id)
                .create()
                .map_err(|source| ConsoleError::Kafka {
                    topic: topic.clone(),
                    source,
                })?;
        // The group starts where the index stands: its offsets are set to the index's positions (the
        // beginning for partitions it never read) before joining, so a rebuilt index reads everything
        // and a restart nothing twice, whatever the group had committed.
        let md = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(30))
            .map_err(|source| ConsoleError::Kafka {
                topic: topic.clone(),
                source,
            })?;
        let mut tpl = TopicPartitionList::new();
        for t in md.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                let next = positions.get(&p.id()).copied().unwrap_or(0);
                tpl.add_partition_offset(&topic, p.id(), Offset::Offset(next))
                    .map_err(|source| ConsoleError::Kafka {
                        topic: topic.clone(),
                        source,
                    })?;
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                warn!(%topic, group = group_id, error = %e, "cannot set the group's offsets to the index's position (is another consumer in the group? each console needs its own)");
            }
        }
        consumer
            .subscribe(&[&topic])
            .map_err(|source| ConsoleError::Kafka {
                topic: topic.clone(),
                source,
            })?;
        info!(%topic, group = group_id, "console consuming the messages topic");
        Ok(KafkaSource {
            consumer,
            topic,
            expected: positions.clone(),
            sought: HashSet::new(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn describe(&self) -> String {
        format!("kafka topic {}", self.topic)
    }

    /// Up to `max` records, waiting at most `wait` for the first.
    pub fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<KafkaLine>, ConsoleError> {
        let mut out = Vec::new();
        let mut timeout = wait;
        while out.len() < max {
            let Some(polled) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            let msg = match polled {
                Ok(m) => m,
                Err(e) => {
                    // Transient broker errors are retried by librdkafka itself.
                    debug!(topic = %self.topic, error = %e, "consumer error");
                    continue;
                }
            };
            let (p, off) = (msg.partition(), msg.offset());
            if !self.sought.contains(&p) {
                self.sought.insert(p);
                let target = match self.expected.get(&p) {
                    Some(&next) if next == off => None,
                    Some(&next) => Some(Offset::Offset(next)),
                    // A partition this index never read: from its beginning, whatever the group says.
                    None if off == 0 => None,
                    None => Some(Offset::Beginning),
                };
                if let Some(target) = target {
                    debug!(
                        partition = p,
                        ?target,
                        got = off,
                        "moving to the index's position"
                    );
                    self.consumer
                        .seek(&self.topic, p, target, Duration::from_secs(10))
                        .map_err(|source| ConsoleError::Kafka {
                            topic: self.topic.clone(),
                            source,
                        })?;
                    continue;
                }
            }
            if self.expected.get(&p).is_some_and(|&next| off < next) {
                continue;
            }
            self.expected.insert(p, off + 1);
            if let Some(payload) = msg.payload() {
                out.push(KafkaLine {
                    partition: p,
                    offset: off,
                    bytes: payload.to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// Tells the group how far the index is (asynchronously; the index's own commit is what counts).
    pub fn commit_group(&self, positions: &BTreeMap<i32, i64>) {
        let mut tpl = TopicPartitionList::new();
        for (&p, &next) in positions {
            if tpl
                .add_partition_offset(&self.topic, p, Offset::Offset(next))
                .is_err()
            {
                return;
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                warn!(topic = %self.topic, error = %e, "cannot commit the console's offsets to its group");
            }
        }
    }
}
