//! Where the worker reads records: the stream's segment files (tailed from the saved position)
//! or, when records go to Kafka only, the messages topic as a member of a consumer group.
//!
//! The pump loop (`worker.rs`) sees one [`Source`]: it polls it for records, each already
//! registered with the source's position bookkeeping, lets it move its position
//! ([`Source::checkpoint`]), asks whether everything present was read ([`Source::caught_up`]) and
//! closes it (a last commit). What differs between the two stays here: the file tail reads in
//! batches on a blocking thread and writes its position as soon as it moves; the consumer waits
//! for a message, skips those of other corps and streams, and commits offsets every poll
//! interval.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wecom_model::MediaRef;

use crate::error::MediaError;
use crate::kafka::{header, KafkaAcks, KafkaRecords, RecordConsumer};
use crate::outputs::Ack;
use crate::position::{lock, FilePosition};
use crate::stats::{MediaStats, RecordRead};
use crate::tail::{Position, TailReader};

const READ_BATCH: usize = 256;
/// Before giving up on getting partitions assigned when asked to catch up: an empty group gets
/// its assignment within a few seconds.
const ASSIGNMENT_WAIT: Duration = Duration::from_secs(15);
const CONSUME_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// The fields of a record line the worker needs (lenient: other fields are ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct RecordView {
    #[serde(default)]
    schema: Option<String>,
    pub corp_id: String,
    #[serde(default)]
    pub stream: String,
    pub seq: u64,
    pub msgid: String,
    #[serde(default)]
    pub msgtime_ms: Option<u64>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub media: Vec<MediaRef>,
}

/// A message record, its media jobs still to run.
#[derive(Debug)]
pub(crate) struct Read {
    pub record: RecordView,
    pub ack: Ack,
}

/// What one poll brought.
#[derive(Debug)]
pub(crate) enum Polled {
    /// Records read (possibly none with media jobs: lines that were skipped still count).
    Records(Vec<Read>),
    /// Nothing new right now.
    Idle,
}

pub(crate) enum Source {
    Files(FileSource),
    Kafka(KafkaSource),
}

pub(crate) struct FileSource {
    /// `None` only while a read runs on a blocking thread.
    reader: Option<TailReader>,
    position: Arc<FilePosition>,
    poll_interval: Duration,
    /// The end of the last line read, shared with the status report.
    read_at: Arc<Mutex<Option<Position>>>,
}

pub(crate) struct KafkaSource {
    consumer: Arc<RecordConsumer>,
    acks: Arc<KafkaAcks>,
    topic: String,
    corp_id: String,
    stream: String,
    poll_interval: Duration,
    last_commit: Instant,
    started: Instant,
    /// The consumer failed last time (only the first error of a run of them is a warning).
    failing: bool,
}

impl Source {
    /// Tails the segments in `messages_dir` from the saved position.
    pub fn files(
        messages_dir: &Path,
        start: Option<Position>,
        position: Arc<FilePosition>,
        poll_interval: Duration,
        read_at: Arc<Mutex<Option<Position>>>,
    ) -> Source {
        *lock(&read_at) = start.clone();
        Source::Files(FileSource {
            reader: Some(TailReader::new(messages_dir, start)),
            position,
            poll_interval,
            read_at,
        })
    }

    /// Joins the consumer group of `records` and takes the records of `corp_id`'s `stream`.
    pub fn kafka(
        records: &KafkaRecords,
        acks: Arc<KafkaAcks>,
        corp_id: &str,
        stream: &str,
        poll_interval: Duration,
    ) -> Result<Source, MediaError> {
        let consumer = Arc::new(records.consumer(acks.clone())?);
        let now = Instant::now();
        Ok(Source::Kafka(KafkaSource {
            consumer,
            acks,
            topic: records.topic().to_owned(),
            corp_id: corp_id.to_owned(),
            stream: stream.to_owned(),
            poll_interval,
            last_commit: now,
            started: now,
            failing: false,
        }))
    }

    /// Reads what is there: a batch of lines of the segments, or the next message of the topic
    /// (waiting up to a poll interval for one).
    pub async fn poll(
        &mut self,
        stats: &MediaStats,
        shutdown: &CancellationToken,
    ) -> Result<Polled, MediaError> {
        match self {
            Source::Files(f) => f.poll(stats).await,
            Source::Kafka(k) => k.poll(stats, shutdown).await,
        }
    }

    /// How long to pause after an idle poll (the consumer already waited in `poll`).
    pub fn idle_pause(&self) -> Duration {
        match self {
            Source::Files(f) => f.poll_interval,
            Source::Kafka(_) => Duration::ZERO,
        }
    }

    /// Moves the position over the finished records: the file position whenever it moved, the
    /// group's offsets (asynchronously) at most once per poll interval.
    pub async fn checkpoint(&mut self) -> Result<(), MediaError> {
        match self {
            Source::Files(f) => f.position.commit().await,
            Source::Kafka(k) => {
                if k.last_commit.elapsed() < k.poll_interval {
                    return Ok(());
                }
                k.last_commit = Instant::now();
                k.commit(false).await
            }
        }
    }

    /// Whether everything present was read (asked once no job is in flight).
    pub async fn caught_up(&self) -> Result<bool, MediaError> {
        match self {
            // an idle poll of the segments has read every complete line
            Source::Files(_) => Ok(true),
            Source::Kafka(k) => {
                let (consumer, topic) = (k.consumer.clone(), k.topic.clone());
                let no_assignment_ok = k.started.elapsed() > ASSIGNMENT_WAIT;
                tokio::task::spawn_blocking(move || {
                    crate::kafka::caught_up(&consumer, &topic, no_assignment_ok)
                })
                .await
                .map_err(MediaError::task)?
            }
        }
    }

    /// The last commit, of everything finished.
    pub async fn close(self) -> Result<(), MediaError> {
        match self {
            Source::Files(f) => f.position.commit().await,
            Source::Kafka(k) => k.commit(true).await,
        }
    }
}

impl FileSource {
    async fn poll(&mut self, stats: &MediaStats) -> Result<Polled, MediaError> {
        let mut reader = self
            .reader
            .take()
            .ok_or_else(|| MediaError::Task("the segment reader was lost".into()))?;
        let (reader, batch) = tokio::task::spawn_blocking(move || {
            let batch = reader.next_batch(READ_BATCH);
            (reader, batch)
        })
        .await
        .map_err(MediaError::task)?;
        self.reader = Some(reader);
        let batch = batch?;
        let Some(last) = batch.last() else {
            return Ok(Polled::Idle);
        };
        *lock(&self.read_at) = Some(last.end.clone());
        let mut reads = Vec::with_capacity(batch.len());
        for line in batch {
            let Some(record) = parse_record(&line.bytes) else {
                stats.add_record(RecordRead::Unreadable);
                tracing::debug!(
                    segment = %line.end.segment,
                    offset = line.end.offset,
                    "media worker skips a line that is not a message record"
                );
                self.position.push(line.end, 0, None, 0);
                continue;
            };
            stats.add_record(RecordRead::Ours);
            let ordinal =
                self.position
                    .push(line.end, record.seq, record.msgtime_ms, record.media.len());
            reads.push(Read {
                record,
                ack: Ack::File(ordinal),
            });
        }
        Ok(Polled::Records(reads))
    }
}

impl KafkaSource {
    async fn poll(
        &mut self,
        stats: &MediaStats,
        shutdown: &CancellationToken,
    ) -> Result<Polled, MediaError> {
        let received = tokio::select! {
            m = self.consumer.recv() => m,
            () = tokio::time::sleep(self.poll_interval) => return Ok(Polled::Idle),
            () = shutdown.cancelled() => return Ok(Polled::Idle),
        };
        let m = match received {
            Ok(m) => {
                self.failing = false;
                m
            }
            Err(e) => {
                stats.add_consume_error();
                if std::mem::replace(&mut self.failing, true) {
                    tracing::debug!(topic = %self.topic, error = %e, "media worker: kafka consume error");
                } else {
                    tracing::warn!(topic = %self.topic, error = %e, "media worker: consuming the messages topic failed; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(CONSUME_ERROR_PAUSE) => {}
                    () = shutdown.cancelled() => {}
                }
                return Ok(Polled::Idle);
            }
        };
        use rdkafka::Message;
        let (partition, offset) = (m.partition(), m.offset());
        if !self.acks.owns(partition) {
            // fetched before the partition was revoked: its new owner reads it
            tracing::debug!(topic = %self.topic, partition, offset, "media worker: record of a partition no longer assigned left to its owner");
            return Ok(Polled::Records(Vec::new()));
        }
        // The headers say whose record it is without parsing it; without them, its fields do.
        let other_by_headers = header(&m, wecom_kafka::HEADER_CORP_ID)
            .is_some_and(|c| c != self.corp_id)
            || header(&m, wecom_kafka::HEADER_STREAM).is_some_and(|s| s != self.stream);
        let record = if other_by_headers {
            None
        } else {
            m.payload().and_then(parse_record)
        };
        drop(m);
        let read = match &record {
            _ if other_by_headers => RecordRead::OtherStream,
            None => RecordRead::Unreadable,
            Some(r) if r.corp_id != self.corp_id || r.stream != self.stream => {
                RecordRead::OtherStream
            }
            Some(_) => RecordRead::Ours,
        };
        stats.add_record(read);
        match (read, record) {
            (RecordRead::Ours, Some(record)) => {
                let ack = self.acks.push(
                    partition,
                    offset,
                    record.seq,
                    record.msgtime_ms,
                    record.media.len(),
                );
                Ok(Polled::Records(vec![Read {
                    record,
                    ack: Ack::Kafka(ack),
                }]))
            }
            _ => {
                if read == RecordRead::Unreadable {
                    tracing::debug!(
                        topic = %self.topic,
                        partition,
                        offset,
                        "media worker skips a message that is not a message record"
                    );
                }
                // no job: the offset is committed past it like past a finished record
                self.acks.push(partition, offset, 0, None, 0);
                Ok(Polled::Records(Vec::new()))
            }
        }
    }

    /// Commits the finished prefix of every partition (`fin`: synchronously, all of them).
    async fn commit(&self, fin: bool) -> Result<(), MediaError> {
        let (consumer, acks, topic) =
            (self.consumer.clone(), self.acks.clone(), self.topic.clone());
        let mode = if fin {
            rdkafka::consumer::CommitMode::Sync
        } else {
            rdkafka::consumer::CommitMode::Async
        };
        tokio::task::spawn_blocking(move || {
            crate::kafka::commit(&consumer, &acks, &topic, mode, fin)
        })
        .await
        .map_err(MediaError::task)?
    }
}

fn parse_record(line: &[u8]) -> Option<RecordView> {
    let r: RecordView = serde_json::from_slice(line).ok()?;
    match r.schema.as_deref() {
        None | Some(wecom_model::MESSAGE_SCHEMA_ID) => Some(r),
        Some(_) => None,
    }
}

/// Where the status report finds the segments and the read position of a file source.
#[derive(Debug, Clone)]
pub(crate) struct FileBacklog {
    pub messages_dir: PathBuf,
    pub read_at: Arc<Mutex<Option<Position>>>,
}

impl FileBacklog {
    /// Bytes of the segments not read yet. Blocking I/O.
    pub fn unread_bytes(&self) -> Result<u64, MediaError> {
        let at = lock(&self.read_at).clone();
        crate::tail::unread_bytes(&self.messages_dir, at.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_parse_leniently_and_other_schemas_are_not_records() {
        let r = parse_record(
            br#"{"schema":"wecom-archive.message.v1","corp_id":"ww1","stream":"corp","seq":3,"msgid":"m","extra":1}"#,
        )
        .unwrap();
        assert_eq!((r.corp_id.as_str(), r.seq, r.media.len()), ("ww1", 3, 0));
        assert!(parse_record(
            br#"{"schema":"wecom-archive.deadletter.v1","corp_id":"ww1","seq":3,"msgid":"m"}"#
        )
        .is_none());
        assert!(parse_record(b"not json").is_none());
    }
}
