//! `MediaWorker`: tails the record segments, runs one bounded-concurrency job per media
//! reference, writes a media event per job, and commits its own position.
//!
//! **The position never passes a record with an unfinished media job**: it only moves over the
//! longest prefix of records whose jobs all ended (stored or failed) *and* whose events are
//! fsynced. A crash or a dropped worker therefore loses no job; it may repeat some (the repeat
//! finds the object stored and reports it again).
//!
//! With [`MediaWorker::with_kafka_records`] the records come from the messages topic (consumer
//! group) instead of the segment files, and the same rule holds per partition for the committed
//! offsets (`kafka.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wecom_api::ArchiveClient;
use wecom_model::{media_object_key, MediaRef};
use wecom_store::CursorStore;

use crate::config::MediaWorkerConfig;
use crate::error::MediaError;
use crate::events::{EventLog, MediaEvent, MediaEventStatus, MEDIA_EVENT_SCHEMA_ID};
use crate::kafka::{KafkaAck, KafkaAcks, KafkaRecords, RecordConsumer};
use crate::stats::{MediaStats, MediaStatsSnapshot};
use crate::tail::{Position, TailReader};
use crate::tracker::{AckTracker, Committable};
use crate::transfer::{MediaJob, Outcome, Transfer};
use crate::MediaStore;

/// The `CursorStore` stream name of the media worker's committed seq.
pub const MEDIA_CURSOR_STREAM: &str = "media";
/// File (in the cursor directory) holding the worker's read position.
pub const POSITION_FILE: &str = "media.position.json";
const POSITION_VERSION: u64 = 1;
const READ_BATCH: usize = 256;

/// Where the worker reads and writes, all under the pipeline's data directory by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPaths {
    /// The record segments the pipeline writes (`<data>/messages`).
    pub messages_dir: PathBuf,
    /// Media events (`<data>/media-events`).
    pub events_dir: PathBuf,
    /// Cursor files (`<data>/cursors`): `media.cursor.json` and `media.position.json`.
    pub cursor_dir: PathBuf,
}

impl MediaPaths {
    pub fn under(data_dir: &Path) -> Self {
        MediaPaths {
            messages_dir: data_dir.join("messages"),
            events_dir: data_dir.join("media-events"),
            cursor_dir: data_dir.join("cursors"),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionFile {
    version: u64,
    segment: String,
    offset: u64,
    /// Highest record seq at or before the position (also committed to the `media` cursor).
    max_seq: u64,
    updated_at_unix_ms: u64,
}

/// The fields of a record line the worker needs (lenient: other fields are ignored).
#[derive(Deserialize)]
struct RecordView {
    #[serde(default)]
    schema: Option<String>,
    corp_id: String,
    #[serde(default)]
    stream: String,
    seq: u64,
    msgid: String,
    #[serde(default)]
    msgtime_ms: Option<u64>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    media: Vec<MediaRef>,
}

struct Shared {
    config: MediaWorkerConfig,
    store: MediaStore,
    client: ArchiveClient,
    paths: MediaPaths,
    cursors: CursorStore,
    stats: MediaStats,
    tracker: Mutex<AckTracker>,
    events: Arc<Mutex<EventLog>>,
    /// The last position written; the async lock serializes commits so they stay in order.
    committed: tokio::sync::Mutex<Option<Committable>>,
    /// One lock per object key: identical media of concurrent jobs is fetched once.
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    running: AtomicBool,
    /// Publishes every event to the Kafka media topic too (`with_kafka_events`).
    event_sink: Option<wecom_kafka::KafkaSink>,
    /// Consume records from the messages topic instead of tailing files (`with_kafka_records`).
    records: Option<KafkaRecords>,
    kafka_acks: Arc<KafkaAcks>,
}

/// How a finished job is acknowledged: to the file tail's tracker or a partition's.
#[derive(Debug, Clone, Copy)]
enum Ack {
    Tail(u64),
    Kafka(KafkaAck),
}

/// The media worker. Cheap to clone (clones share state); one `run` at a time.
#[derive(Clone)]
pub struct MediaWorker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MediaWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaWorker")
            .field("store", &self.shared.store)
            .field("paths", &self.shared.paths)
            .finish_non_exhaustive()
    }
}

impl MediaWorker {
    /// Opens the event log and the cursor directory. `client` is the archive client (share the
    /// pipeline's: it carries the token cache).
    pub fn new(
        config: MediaWorkerConfig,
        store: MediaStore,
        client: ArchiveClient,
        paths: MediaPaths,
    ) -> Result<Self, MediaError> {
        let cursors = CursorStore::open(&paths.cursor_dir)?;
        let events = EventLog::open(
            &paths.events_dir,
            config.events_file_max_bytes,
            config.fsync,
        )?;
        Ok(MediaWorker {
            shared: Arc::new(Shared {
                config,
                store,
                client,
                paths,
                cursors,
                stats: MediaStats::default(),
                tracker: Mutex::new(AckTracker::new()),
                events: Arc::new(Mutex::new(events)),
                committed: tokio::sync::Mutex::new(None),
                key_locks: Mutex::new(HashMap::new()),
                running: AtomicBool::new(false),
                event_sink: None,
                records: None,
                kafka_acks: Arc::new(KafkaAcks::default()),
            }),
        })
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.shared).expect("configure the media worker before cloning it")
    }

    /// Also publishes every media event to `topics.media` of `sink`, before the position may pass
    /// its record (at-least-once, like the local events). Call before cloning the worker.
    #[must_use]
    pub fn with_kafka_events(mut self, sink: wecom_kafka::KafkaSink) -> Self {
        self.shared_mut().event_sink = Some(sink);
        self
    }

    /// Reads records from `config.topics.messages` as a member of the consumer group `group_id`
    /// instead of tailing the segment files; the position is then the group's committed offsets
    /// (the position file is not used). Call before cloning the worker.
    #[must_use]
    pub fn with_kafka_records(
        mut self,
        config: wecom_kafka::KafkaConfig,
        group_id: impl Into<String>,
    ) -> Self {
        self.shared_mut().records = Some(KafkaRecords {
            config,
            group_id: group_id.into(),
        });
        self
    }

    pub fn stats(&self) -> MediaStatsSnapshot {
        self.shared.stats.snapshot()
    }

    pub fn store(&self) -> &MediaStore {
        &self.shared.store
    }

    /// Age (from its message time) of the oldest media job read but not finished. The service
    /// deletes media after 5 days: alert well before. `None` when nothing is pending.
    pub fn oldest_pending_age(&self) -> Option<Duration> {
        let tail = lock(&self.shared.tracker).oldest_pending_msgtime_ms();
        let kafka = self.shared.kafka_acks.oldest_pending_msgtime_ms();
        let ms = match (tail, kafka) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(Duration::from_millis(now_unix_ms().saturating_sub(ms)))
    }

    /// Media jobs read but not finished.
    pub fn pending_jobs(&self) -> usize {
        lock(&self.shared.tracker).pending_jobs() + self.shared.kafka_acks.pending_jobs()
    }

    /// The committed seq (`media` cursor): every record up to the committed position, whose
    /// highest seq this is, has all its media jobs finished.
    pub fn committed_seq(&self) -> Result<Option<u64>, MediaError> {
        Ok(self
            .shared
            .cursors
            .load(MEDIA_CURSOR_STREAM)?
            .map(|c| c.seq))
    }

    /// Processes every record present now, waits for their jobs, commits, and returns.
    pub async fn run_until_caught_up(&self) -> Result<MediaStatsSnapshot, MediaError> {
        self.run_loop(true, CancellationToken::new()).await?;
        Ok(self.stats())
    }

    /// Tails the segments until `shutdown` is cancelled; in-flight transfers are then aborted
    /// (to be redone by the next run) and the position committed. Returns early with an error on
    /// a fatal condition (bad secret, unusable store, unreadable segments).
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), MediaError> {
        self.run_loop(false, shutdown).await
    }

    async fn run_loop(
        &self,
        until_caught_up: bool,
        shutdown: CancellationToken,
    ) -> Result<(), MediaError> {
        if self.shared.running.swap(true, Ordering::SeqCst) {
            return Err(MediaError::Task(
                "the media worker is already running".into(),
            ));
        }
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _running = Running(&self.shared.running);

        *lock(&self.shared.tracker) = AckTracker::new();
        *self.shared.committed.lock().await = None;
        self.shared.kafka_acks.reset();
        let jobs_cancel = shutdown.child_token();
        let mut joins: JoinSet<Result<(), MediaError>> = JoinSet::new();

        let (result, consumer) = match &self.shared.records {
            None => {
                let start = self.load_position()?;
                tracing::info!(
                    position = ?start,
                    store = ?self.shared.store,
                    "media worker starting"
                );
                let r = self
                    .pump(until_caught_up, &shutdown, &jobs_cancel, &mut joins, start)
                    .await;
                (r, None)
            }
            Some(records) => {
                let consumer = Arc::new(records.consumer(self.shared.kafka_acks.clone())?);
                tracing::info!(
                    topic = %records.config.topics.messages,
                    group = %records.group_id,
                    store = ?self.shared.store,
                    "media worker starting (kafka consumer group)"
                );
                let r = self
                    .pump_kafka(
                        &consumer,
                        until_caught_up,
                        &shutdown,
                        &jobs_cancel,
                        &mut joins,
                    )
                    .await;
                (r, Some(consumer))
            }
        };
        if result.is_err() || shutdown.is_cancelled() {
            jobs_cancel.cancel();
        }
        let mut first_err = result.err();
        while let Some(r) = joins.join_next().await {
            if let Err(e) = flatten(r) {
                first_err.get_or_insert(e);
            }
        }
        let commit = match consumer {
            None => self.commit().await,
            Some(consumer) => self.commit_kafka(consumer, true).await,
        };
        match (first_err, commit) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(()),
        }
    }

    async fn pump(
        &self,
        until_caught_up: bool,
        shutdown: &CancellationToken,
        jobs_cancel: &CancellationToken,
        joins: &mut JoinSet<Result<(), MediaError>>,
        start: Option<Position>,
    ) -> Result<(), MediaError> {
        let shared = &self.shared;
        let permits = Arc::new(Semaphore::new(shared.config.concurrency));
        let mut reader = Some(TailReader::new(&shared.paths.messages_dir, start));
        loop {
            while let Some(r) = joins.try_join_next() {
                flatten(r)?;
            }
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if lock(&shared.tracker).window() >= shared.config.max_window_records
                && !joins.is_empty()
            {
                tokio::select! {
                    r = joins.join_next() => { if let Some(r) = r { flatten(r)?; } }
                    () = shutdown.cancelled() => return Ok(()),
                }
                continue;
            }
            let mut r = reader.take().expect("reader present");
            let (r, batch) = tokio::task::spawn_blocking(move || {
                let batch = r.next_batch(READ_BATCH);
                (r, batch)
            })
            .await
            .map_err(|e| MediaError::Task(e.to_string()))?;
            reader = Some(r);
            let batch = batch?;

            if batch.is_empty() {
                if until_caught_up {
                    while let Some(r) = joins.join_next().await {
                        flatten(r)?;
                    }
                    return Ok(());
                }
                tokio::select! {
                    () = tokio::time::sleep(shared.config.poll_interval) => {}
                    () = shutdown.cancelled() => return Ok(()),
                    Some(r) = joins.join_next(), if !joins.is_empty() => flatten(r)?,
                }
                continue;
            }

            for line in batch {
                let record = match parse_record(&line.bytes) {
                    Some(r) => r,
                    None => {
                        shared.stats.add_record(false);
                        tracing::warn!(
                            segment = %line.end.segment,
                            offset = line.end.offset,
                            "media worker skips a line that is not a message record"
                        );
                        lock(&shared.tracker).push(line.end, 0, None, 0);
                        continue;
                    }
                };
                shared.stats.add_record(true);
                let ordinal = lock(&shared.tracker).push(
                    line.end,
                    record.seq,
                    record.msgtime_ms,
                    record.media.len(),
                );
                if !self
                    .spawn_jobs(
                        record,
                        Ack::Tail(ordinal),
                        &permits,
                        shutdown,
                        jobs_cancel,
                        joins,
                    )
                    .await
                {
                    return Ok(());
                }
            }
            self.commit().await?;
        }
    }

    /// Spawns one job per media reference of `record`. False when `shutdown` came first.
    async fn spawn_jobs(
        &self,
        record: RecordView,
        ack: Ack,
        permits: &Arc<Semaphore>,
        shutdown: &CancellationToken,
        jobs_cancel: &CancellationToken,
        joins: &mut JoinSet<Result<(), MediaError>>,
    ) -> bool {
        let ctx = Arc::new(RecordCtx {
            corp_id: record.corp_id,
            stream: record.stream,
            seq: record.seq,
            msgid: record.msgid,
            conversation_id: record.conversation_id,
        });
        for media in record.media {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
                () = shutdown.cancelled() => return false,
            };
            let worker = self.clone();
            let ctx = ctx.clone();
            let cancel = jobs_cancel.clone();
            joins.spawn(async move { worker.job(ack, ctx, media, cancel, permit).await });
        }
        true
    }

    /// The Kafka counterpart of `pump`: records come from the consumer group, finished prefixes
    /// are committed per partition every poll interval.
    async fn pump_kafka(
        &self,
        consumer: &Arc<RecordConsumer>,
        until_caught_up: bool,
        shutdown: &CancellationToken,
        jobs_cancel: &CancellationToken,
        joins: &mut JoinSet<Result<(), MediaError>>,
    ) -> Result<(), MediaError> {
        use rdkafka::Message;
        let shared = &self.shared;
        let permits = Arc::new(Semaphore::new(shared.config.concurrency));
        let mut tick = tokio::time::interval(shared.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let started = tokio::time::Instant::now();
        loop {
            while let Some(r) = joins.try_join_next() {
                flatten(r)?;
            }
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if shared.kafka_acks.window() >= shared.config.max_window_records && !joins.is_empty() {
                tokio::select! {
                    r = joins.join_next() => { if let Some(r) = r { flatten(r)?; } }
                    () = shutdown.cancelled() => return Ok(()),
                }
                continue;
            }
            tokio::select! {
                m = consumer.recv() => {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "media worker: kafka consume error");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let (partition, offset) = (m.partition(), m.offset());
                    if !shared.kafka_acks.owns(partition) {
                        // fetched before the partition was revoked: its new owner reads it
                        continue;
                    }
                    let record = m.payload().and_then(parse_record);
                    drop(m);
                    let Some(record) = record else {
                        shared.stats.add_record(false);
                        tracing::warn!(partition, offset, "media worker skips a message that is not a message record");
                        shared.kafka_acks.push(partition, offset, 0, None, 0);
                        continue;
                    };
                    shared.stats.add_record(true);
                    let ack = shared.kafka_acks.push(
                        partition,
                        offset,
                        record.seq,
                        record.msgtime_ms,
                        record.media.len(),
                    );
                    if !self
                        .spawn_jobs(record, Ack::Kafka(ack), &permits, shutdown, jobs_cancel, joins)
                        .await
                    {
                        return Ok(());
                    }
                }
                _ = tick.tick() => {
                    self.commit_kafka(consumer.clone(), false).await?;
                    if until_caught_up && joins.is_empty() && shared.kafka_acks.window() == 0 {
                        let c = consumer.clone();
                        let topic = self.records_topic();
                        let waited = started.elapsed() > Duration::from_secs(15);
                        let done = tokio::task::spawn_blocking(move || {
                            crate::kafka::caught_up(&c, &topic, waited)
                        })
                        .await
                        .map_err(|e| MediaError::Task(e.to_string()))??;
                        if done {
                            return Ok(());
                        }
                    }
                }
                () = shutdown.cancelled() => return Ok(()),
                Some(r) = joins.join_next(), if !joins.is_empty() => flatten(r)?,
            }
        }
    }

    fn records_topic(&self) -> String {
        self.shared
            .records
            .as_ref()
            .map(|r| r.config.topics.messages.clone())
            .unwrap_or_default()
    }

    /// Commits the finished prefix of every partition (`fin`: synchronously, everything).
    async fn commit_kafka(
        &self,
        consumer: Arc<RecordConsumer>,
        fin: bool,
    ) -> Result<(), MediaError> {
        let acks = self.shared.kafka_acks.clone();
        let topic = self.records_topic();
        let mode = if fin {
            rdkafka::consumer::CommitMode::Sync
        } else {
            rdkafka::consumer::CommitMode::Async
        };
        tokio::task::spawn_blocking(move || {
            crate::kafka::commit(&consumer, &acks, &topic, mode, fin)
        })
        .await
        .map_err(|e| MediaError::Task(e.to_string()))?
    }

    async fn job(
        &self,
        ack: Ack,
        ctx: Arc<RecordCtx>,
        media: MediaRef,
        cancel: CancellationToken,
        _permit: OwnedSemaphorePermit,
    ) -> Result<(), MediaError> {
        let shared = &self.shared;
        shared.stats.job_started();
        struct Ended<'a>(&'a MediaStats);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                self.0.job_ended();
            }
        }
        let _ended = Ended(&shared.stats);

        let key = media
            .object_key
            .clone()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| media_object_key(&ctx.corp_id, &media));
        let expected_md5 = media
            .md5sum
            .as_deref()
            .filter(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase);
        let mut event = MediaEvent {
            schema: MEDIA_EVENT_SCHEMA_ID.to_owned(),
            corp_id: ctx.corp_id.clone(),
            stream: ctx.stream.clone(),
            seq: ctx.seq,
            msgid: ctx.msgid.clone(),
            kind: media.kind.clone(),
            sdkfileid: media.sdkfileid.clone(),
            object_key: key.clone(),
            status: MediaEventStatus::Failed,
            location: None,
            size: None,
            md5: None,
            expected_md5: expected_md5.clone(),
            expected_size: media.size,
            already_stored: false,
            attempts: 0,
            reason: None,
            errcode: None,
            at_unix_ms: 0,
        };

        let path = if media.sdkfileid.is_empty() {
            Err("the media reference has no sdkfileid".to_owned())
        } else {
            shared.store.path(&key)
        };
        let outcome = match path {
            Err(reason) => Outcome::Failed {
                reason,
                errcode: None,
                size: None,
                md5: None,
                attempts: 0,
            },
            Ok(path) => {
                event.location = Some(shared.store.location(&path));
                let job = MediaJob {
                    sdkfileid: media.sdkfileid.clone(),
                    path,
                    expected_md5,
                    expected_size: media.size,
                };
                let key_lock = self.key_lock(&key);
                let outcome = {
                    let _guard = key_lock.lock().await;
                    Transfer {
                        client: &shared.client,
                        store: &shared.store,
                        config: &shared.config,
                        stats: &shared.stats,
                        cancel: &cancel,
                    }
                    .run(&job)
                    .await
                };
                self.release_key_lock(&key, key_lock);
                outcome
            }
        };

        match outcome {
            Outcome::Cancelled => return Ok(()),
            Outcome::Fatal(e) => return Err(e),
            Outcome::Stored {
                size,
                md5,
                already,
                attempts,
            } => {
                if already {
                    shared.stats.add_skipped();
                }
                event.status = MediaEventStatus::Stored;
                event.size = Some(size);
                event.md5 = md5;
                event.already_stored = already;
                event.attempts = attempts;
            }
            Outcome::Failed {
                reason,
                errcode,
                size,
                md5,
                attempts,
            } => {
                shared.stats.add_failed();
                tracing::warn!(
                    corp_id = %ctx.corp_id,
                    seq = ctx.seq,
                    kind = %media.kind,
                    errcode,
                    %reason,
                    "media object failed"
                );
                event.location = None;
                event.reason = Some(reason);
                event.errcode = errcode;
                event.size = size;
                event.md5 = md5;
                event.attempts = attempts;
            }
        }
        event.at_unix_ms = now_unix_ms();

        let events = shared.events.clone();
        let event = tokio::task::spawn_blocking(move || {
            lock(&events).append(&event)?;
            Ok::<_, MediaError>(event)
        })
        .await
        .map_err(|e| MediaError::Task(e.to_string()))??;
        if let Some(sink) = &shared.event_sink {
            crate::kafka::publish_event(sink, &event, ctx.conversation_id.as_deref()).await?;
        }
        match ack {
            Ack::Tail(ordinal) => {
                lock(&shared.tracker).done(ordinal);
                self.commit().await
            }
            Ack::Kafka(ack) => {
                shared.kafka_acks.done(ack);
                Ok(())
            }
        }
    }

    fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.shared.key_locks)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    fn release_key_lock(&self, key: &str, held: Arc<tokio::sync::Mutex<()>>) {
        let mut map = lock(&self.shared.key_locks);
        // The map's reference and ours: nobody else waits for this key.
        if Arc::strong_count(&held) == 2 {
            map.remove(key);
        }
    }

    /// Writes the committable position if it moved. Commits are serialized and never go back.
    async fn commit(&self) -> Result<(), MediaError> {
        let shared = &self.shared;
        let mut last = shared.committed.lock().await;
        let Some(next) = lock(&shared.tracker).committable().cloned() else {
            return Ok(());
        };
        if last.as_ref() == Some(&next) {
            return Ok(());
        }
        let worker = self.clone();
        let to_write = next.clone();
        tokio::task::spawn_blocking(move || worker.write_position(&to_write))
            .await
            .map_err(|e| MediaError::Task(e.to_string()))??;
        *last = Some(next);
        Ok(())
    }

    fn position_path(&self) -> PathBuf {
        self.shared.paths.cursor_dir.join(POSITION_FILE)
    }

    fn write_position(&self, c: &Committable) -> Result<(), MediaError> {
        use std::io::Write;
        let path = self.position_path();
        let tmp = self
            .shared
            .paths
            .cursor_dir
            .join(format!(".{POSITION_FILE}.tmp"));
        let file = PositionFile {
            version: POSITION_VERSION,
            segment: c.position.segment.clone(),
            offset: c.position.offset,
            max_seq: c.max_seq,
            updated_at_unix_ms: now_unix_ms(),
        };
        let mut bytes = serde_json::to_vec(&file).expect("position serializes");
        bytes.push(b'\n');
        let mut f = std::fs::File::create(&tmp).map_err(MediaError::io(&tmp))?;
        f.write_all(&bytes).map_err(MediaError::io(&tmp))?;
        if self.shared.config.fsync {
            f.sync_all().map_err(MediaError::io(&tmp))?;
        }
        drop(f);
        std::fs::rename(&tmp, &path).map_err(MediaError::io(&path))?;
        if self.shared.config.fsync {
            std::fs::File::open(&self.shared.paths.cursor_dir)
                .and_then(|d| d.sync_all())
                .map_err(MediaError::io(&self.shared.paths.cursor_dir))?;
        }
        // The seq cursor is informational (status, metrics); resuming uses the position.
        self.shared.cursors.commit(MEDIA_CURSOR_STREAM, c.max_seq)?;
        Ok(())
    }

    fn load_position(&self) -> Result<Option<Position>, MediaError> {
        let path = self.position_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MediaError::Io { path, source: e }),
        };
        let file: PositionFile = serde_json::from_slice(&bytes).map_err(|e| MediaError::State {
            path: path.clone(),
            reason: format!("not a media position file: {e}"),
        })?;
        if file.version != POSITION_VERSION {
            return Err(MediaError::State {
                path,
                reason: format!("media position version {} is not supported", file.version),
            });
        }
        Ok(Some(Position {
            segment: file.segment,
            offset: file.offset,
        }))
    }
}

struct RecordCtx {
    corp_id: String,
    stream: String,
    seq: u64,
    msgid: String,
    conversation_id: Option<String>,
}

fn parse_record(line: &[u8]) -> Option<RecordView> {
    let r: RecordView = serde_json::from_slice(line).ok()?;
    match r.schema.as_deref() {
        None | Some(wecom_model::MESSAGE_SCHEMA_ID) => Some(r),
        Some(_) => None,
    }
}

fn flatten(r: Result<Result<(), MediaError>, tokio::task::JoinError>) -> Result<(), MediaError> {
    r.map_err(|e| MediaError::Task(e.to_string()))?
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
