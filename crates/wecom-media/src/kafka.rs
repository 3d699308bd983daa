//! The worker's two Kafka roles, both optional:
//!
//! - **Event publisher**: every media event appended to the local event log is also published to
//!   `topics.media` ([`LineKind::MediaEvent`]) *before* the worker's position may pass its record,
//!   so events in Kafka are at-least-once exactly like the local ones (a crash between the publish
//!   and the commit repeats the job, which finds the object stored and reports it again; consumers
//!   de-duplicate by (`corp_id`, `stream`, `seq`, `sdkfileid`)). Key: the record's conversation id,
//!   else the object key, else the msgid.
//! - **Record source**: when records go to Kafka only, the worker consumes `topics.messages` in a
//!   consumer group (several workers share the partitions). The topic is shared by every corp and
//!   stream that publishes to it, so the worker takes only the records of its own corp and stream
//!   (the `corp_id` and `stream` headers, else the record's fields) and commits past the others;
//!   its group is therefore per corp and stream (`MediaConfig::consumer_group`): a member of a
//!   shared group would skip records that no other member takes. Offsets are committed per partition
//!   only up to the highest offset whose records' media jobs have all finished ([`KafkaAcks`]),
//!   asynchronously every poll interval, synchronously on shutdown and before a partition is
//!   revoked. A restart (or the member that takes a partition over) resumes from the committed
//!   offset, so a crash loses no job; jobs in flight at a crash or a rebalance are done again
//!   (at-least-once).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use wecom_kafka::{ClientRole, KafkaConfig, KafkaSink, LineKind, PublishLine};

use crate::error::MediaError;
use crate::events::MediaEvent;
use crate::tail::Position;
use crate::tracker::AckTracker;

/// Publishes one media event and waits for the broker's acknowledgement.
pub(crate) async fn publish_event(
    sink: &KafkaSink,
    event: &MediaEvent,
    conversation_id: Option<&str>,
) -> Result<(), MediaError> {
    let key = conversation_id
        .filter(|c| !c.is_empty())
        .or(Some(event.object_key.as_str()).filter(|k| !k.is_empty()))
        .unwrap_or(event.msgid.as_str())
        .to_owned();
    let publish_err = |source| MediaError::Publish {
        object_key: event.object_key.clone(),
        sdkfileid: event.sdkfileid.clone(),
        source: Box::new(source),
    };
    let payload = serde_json::to_vec(event).map_err(|e| {
        publish_err(wecom_kafka::KafkaError::InvalidLine {
            seq: event.seq,
            reason: format!("the media event does not serialize: {e}"),
        })
    })?;
    let line = PublishLine {
        kind: LineKind::MediaEvent,
        seq: event.seq,
        key,
        headers: vec![
            (wecom_kafka::HEADER_CORP_ID.into(), event.corp_id.clone()),
            (wecom_kafka::HEADER_STREAM.into(), event.stream.clone()),
            (wecom_kafka::HEADER_SEQ.into(), event.seq.to_string()),
            ("msgid".into(), event.msgid.clone()),
            ("schema".into(), event.schema.clone()),
        ],
        payload,
    };
    sink.publish(vec![line]).await.map_err(publish_err)
}

/// Where the worker reads records from when they go to Kafka only.
#[derive(Debug, Clone)]
pub(crate) struct KafkaRecords {
    pub config: KafkaConfig,
    pub group_id: String,
}

pub(crate) type RecordConsumer = rdkafka::consumer::StreamConsumer<AckContext>;

pub(crate) fn consumer_err(
    topic: &str,
    action: impl Into<String>,
) -> impl FnOnce(rdkafka::error::KafkaError) -> MediaError {
    let (topic, action) = (topic.to_owned(), action.into());
    move |source| MediaError::Consumer {
        topic,
        action,
        source: Box::new(source),
    }
}

impl KafkaRecords {
    pub fn topic(&self) -> &str {
        &self.config.topics.messages
    }

    /// A consumer of `topics.messages` in the group, with manual offset commits.
    pub fn consumer(&self, acks: Arc<KafkaAcks>) -> Result<RecordConsumer, MediaError> {
        let topic = self.topic();
        let consumer: RecordConsumer = wecom_kafka::client_config(
            &self.config,
            ClientRole::GroupConsumer {
                group_id: &self.group_id,
            },
        )
        .create_with_context(AckContext {
            acks,
            topic: topic.to_owned(),
        })
        .map_err(consumer_err(
            topic,
            format!("creating the consumer of group {}", self.group_id),
        ))?;
        consumer
            .subscribe(&[topic])
            .map_err(consumer_err(topic, "subscribing"))?;
        Ok(consumer)
    }
}

/// The value of header `name` of `m`, if it is there and UTF-8.
pub(crate) fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a str> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// Commits what is finished before a partition goes to another member, and forgets the revoked
/// partitions (their unfinished jobs are redone by the new owner).
pub(crate) struct AckContext {
    acks: Arc<KafkaAcks>,
    topic: String,
}

impl ClientContext for AckContext {}

impl ConsumerContext for AckContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            let offsets = self.acks.revoke(&parts);
            tracing::info!(topic = %self.topic, partitions = ?parts, ?offsets, "media worker: kafka partitions revoked");
            if let Some(tpl) = offsets_list(&self.topic, &offsets) {
                if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                    tracing::warn!(error = %e, "media worker: commit before revoke failed");
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            self.acks.assign(&parts);
            tracing::info!(topic = %self.topic, partitions = ?parts, "media worker: kafka partitions assigned");
        }
    }
}

pub(crate) fn offsets_list(topic: &str, offsets: &[(i32, i64)]) -> Option<TopicPartitionList> {
    if offsets.is_empty() {
        return None;
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        // only fails for an invalid `Offset` variant; `Offset::Offset` is always valid
        if let Err(e) = tpl.add_partition_offset(topic, *p, Offset::Offset(*o)) {
            tracing::warn!(topic, partition = p, offset = o, error = %e, "media worker: offset not committable");
        }
    }
    Some(tpl)
}

/// Commits the offsets that moved (`all`: every committable one) and records them as committed.
pub(crate) fn commit(
    consumer: &RecordConsumer,
    acks: &KafkaAcks,
    topic: &str,
    mode: CommitMode,
    all: bool,
) -> Result<(), MediaError> {
    let offsets = acks.to_commit(all);
    let Some(tpl) = offsets_list(topic, &offsets) else {
        return Ok(());
    };
    match consumer.commit(&tpl, mode) {
        Ok(()) => {
            tracing::debug!(topic, ?offsets, "media worker: offsets committed");
            acks.committed(&offsets);
            Ok(())
        }
        // another member owns the partition now (rebalance in between): it redoes the jobs
        Err(e) => {
            tracing::warn!(error = %e, ?offsets, "media worker: kafka offset commit failed");
            Ok(())
        }
    }
}

struct PartAcks {
    generation: u64,
    tracker: AckTracker,
    /// Offset of the last record pushed (to notice offsets the broker skipped).
    last_offset: Option<i64>,
    /// The offset last committed (next offset to read).
    committed: Option<i64>,
}

/// One [`AckTracker`] per assigned partition: a record is pushed with its offset, and the
/// committable offset of a partition is one past the last record of its longest finished prefix.
/// A partition that is revoked is forgotten; jobs of it that finish later are ignored (their
/// generation no longer matches).
#[derive(Default)]
pub(crate) struct KafkaAcks {
    inner: Mutex<AcksInner>,
}

#[derive(Default)]
struct AcksInner {
    next_generation: u64,
    parts: BTreeMap<i32, PartAcks>,
    /// Partitions assigned to this member: a message of another one (fetched before a revoke)
    /// is left to the partition's new owner.
    assigned: std::collections::BTreeSet<i32>,
}

/// Identifies one record's jobs for [`KafkaAcks::done`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct KafkaAck {
    pub partition: i32,
    pub generation: u64,
    pub ordinal: u64,
}

impl KafkaAcks {
    fn lock(&self) -> std::sync::MutexGuard<'_, AcksInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.parts.clear();
        inner.assigned.clear();
    }

    /// Partitions added to this member's assignment.
    pub fn assign(&self, partitions: &[i32]) {
        self.lock().assigned.extend(partitions.iter().copied());
    }

    /// Whether `partition` is assigned to this member now.
    pub fn owns(&self, partition: i32) -> bool {
        self.lock().assigned.contains(&partition)
    }

    /// Registers the record at `offset` of `partition` with `jobs` media jobs.
    pub fn push(
        &self,
        partition: i32,
        offset: i64,
        seq: u64,
        msgtime_ms: Option<u64>,
        jobs: usize,
    ) -> KafkaAck {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let part = inner.parts.entry(partition).or_insert_with(|| {
            tracing::debug!(
                partition,
                offset,
                "media worker: first record read from the partition"
            );
            inner.next_generation += 1;
            PartAcks {
                generation: inner.next_generation,
                tracker: AckTracker::new(),
                last_offset: None,
                committed: None,
            }
        });
        if let Some(last) = part.last_offset.filter(|l| offset > l + 1) {
            // the messages topic is neither compacted nor transactional: offsets are contiguous
            tracing::warn!(
                partition,
                after = last,
                offset,
                "media worker: the broker skipped offsets of the messages topic"
            );
        }
        part.last_offset = Some(offset);
        let end = Position {
            segment: partition.to_string(),
            offset: u64::try_from(offset + 1).unwrap_or(0),
        };
        let ordinal = part.tracker.push(end, seq, msgtime_ms, jobs);
        KafkaAck {
            partition,
            generation: part.generation,
            ordinal,
        }
    }

    pub fn done(&self, ack: KafkaAck) {
        let mut inner = self.lock();
        if let Some(p) = inner.parts.get_mut(&ack.partition) {
            if p.generation == ack.generation {
                p.tracker.done(ack.ordinal);
            }
        }
    }

    /// Committable offsets: those that moved since the last commit, or all with `all`.
    pub fn to_commit(&self, all: bool) -> Vec<(i32, i64)> {
        self.lock()
            .parts
            .iter()
            .filter_map(|(p, a)| {
                let next = i64::try_from(a.tracker.committable()?.position.offset).ok()?;
                (all || a.committed.is_none_or(|c| next > c)).then_some((*p, next))
            })
            .collect()
    }

    pub fn committed(&self, offsets: &[(i32, i64)]) {
        let mut inner = self.lock();
        for (p, o) in offsets {
            if let Some(a) = inner.parts.get_mut(p) {
                a.committed = Some(a.committed.map_or(*o, |c| c.max(*o)));
            }
        }
    }

    /// Forgets `partitions`; returns their committable offsets (to commit before they go).
    pub fn revoke(&self, partitions: &[i32]) -> Vec<(i32, i64)> {
        let mut inner = self.lock();
        for p in partitions {
            inner.assigned.remove(p);
        }
        partitions
            .iter()
            .filter_map(|p| {
                let a = inner.parts.remove(p)?;
                let next = i64::try_from(a.tracker.committable()?.position.offset).ok()?;
                Some((*p, next))
            })
            .collect()
    }

    /// Records read but not yet committable, over all partitions.
    pub fn window(&self) -> usize {
        self.lock().parts.values().map(|a| a.tracker.window()).sum()
    }

    pub fn pending_jobs(&self) -> usize {
        self.lock()
            .parts
            .values()
            .map(|a| a.tracker.pending_jobs())
            .sum()
    }

    pub fn oldest_pending_msgtime_ms(&self) -> Option<u64> {
        self.lock()
            .parts
            .values()
            .filter_map(|a| a.tracker.oldest_pending_msgtime_ms())
            .min()
    }
}

/// True when every assigned partition has been read (or committed) up to its high watermark.
/// With no assignment, true once `no_assignment_ok`.
pub(crate) fn caught_up(
    consumer: &RecordConsumer,
    topic: &str,
    no_assignment_ok: bool,
) -> Result<bool, MediaError> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    let assignment = consumer
        .assignment()
        .map_err(consumer_err(topic, "reading the assignment"))?;
    if assignment.count() == 0 {
        return Ok(no_assignment_ok);
    }
    let position = consumer
        .position()
        .map_err(consumer_err(topic, "reading the position"))?;
    let committed = consumer
        .committed_offsets(assignment.clone(), TIMEOUT)
        .map_err(consumer_err(topic, "reading the committed offsets"))?;
    for e in assignment.elements() {
        let p = e.partition();
        let (low, high) = consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .map_err(consumer_err(
                topic,
                format!("reading the watermarks of partition {p}"),
            ))?;
        if high <= low {
            continue;
        }
        let at = |tpl: &TopicPartitionList| match tpl.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        };
        let read = at(&position).or_else(|| at(&committed));
        if read.is_none_or(|o| o < high) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_commit_prefixes_per_partition_and_forget_revoked() {
        let acks = KafkaAcks::default();
        acks.assign(&[0, 1]);
        assert!(acks.owns(1));
        let a0 = acks.push(0, 10, 1, None, 1);
        let _ = acks.push(0, 11, 2, None, 0);
        let b0 = acks.push(1, 5, 3, Some(7), 2);
        assert_eq!(acks.to_commit(false), Vec::<(i32, i64)>::new());
        assert_eq!(acks.pending_jobs(), 3);
        acks.done(a0);
        assert_eq!(acks.to_commit(false), vec![(0, 12)]);
        acks.committed(&[(0, 12)]);
        assert!(acks.to_commit(false).is_empty());
        assert_eq!(acks.to_commit(true), vec![(0, 12)]);
        acks.done(b0);
        assert_eq!(acks.oldest_pending_msgtime_ms(), Some(7));
        assert_eq!(acks.revoke(&[1]), Vec::<(i32, i64)>::new());
        assert!(!acks.owns(1) && acks.owns(0));
        // a job of the revoked partition that ends later is ignored
        acks.done(b0);
        let b1 = acks.push(1, 5, 3, None, 1);
        assert_ne!(b1.generation, b0.generation);
        acks.done(b1);
        assert_eq!(acks.to_commit(false), vec![(1, 6)]);
        assert_eq!(acks.window(), 0);
    }
}
