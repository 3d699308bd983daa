//! `MediaWorker`: one pump loop reads records from the [`Source`], runs one bounded-concurrency
//! [job](crate::job) per media reference, and lets the source move its position over the finished
//! prefix; a reporter beside it rewrites the status file and logs a summary.
//!
//! **The position never passes a record with an unfinished media job**, whichever the source:
//! each record is registered before its jobs start, a job acknowledges it only once its event is
//! in every output ([`Outputs`](crate::outputs)), and only the finished prefix is committed. A
//! crash or a dropped worker therefore loses no job; it may repeat some.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wecom_api::ArchiveClient;
use wecom_store::StreamLayout;

use crate::config::MediaWorkerConfig;
use crate::error::MediaError;
use crate::job::{Jobs, RecordCtx};
use crate::kafka::{KafkaAcks, KafkaRecords};
use crate::outputs::{Ledger, Outputs};
use crate::position::{lock, FilePosition};
use crate::source::{FileBacklog, Polled, Read, Source};
use crate::stats::MediaStatsSnapshot;
use crate::status::{
    rfc3339_now, write_status, MediaLastError, MediaRunState, MediaSourceKind, MediaStatus,
    MEDIA_STATUS_VERSION,
};
use crate::tail::Position;
use crate::MediaStore;

/// How often the status file is rewritten while the worker runs.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// How often the worker logs a summary (only when something happened).
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

struct Shared {
    jobs: Jobs,
    layout: StreamLayout,
    /// The corp of the archive client: the worker fetches media with its token.
    corp_id: String,
    position: Arc<FilePosition>,
    kafka_acks: Arc<KafkaAcks>,
    /// Consume records from the messages topic instead of tailing files (`with_kafka_records`).
    records: Option<KafkaRecords>,
    running: AtomicBool,
    /// The end of the last segment line read (file source), for the status.
    read_at: Arc<Mutex<Option<Position>>>,
    started_at: Mutex<String>,
}

/// The media worker. Cheap to clone (clones share state); one `run` at a time.
#[derive(Clone)]
pub struct MediaWorker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MediaWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaWorker")
            .field("corp_id", &self.shared.corp_id)
            .field("stream", &self.shared.layout.stream())
            .field("dir", &self.shared.layout.dir())
            .field("store", &self.shared.jobs.store)
            .finish_non_exhaustive()
    }
}

impl MediaWorker {
    /// The worker of the stream at `layout`: it reads the stream's segment files
    /// (`messages/`), writes its events to `media-events/`, its position to `cursors/` and its
    /// status to `media-status.json`. `client` is the archive client of the stream's corp (share
    /// the pipeline's: it carries the token cache).
    pub fn new(
        config: MediaWorkerConfig,
        store: MediaStore,
        client: ArchiveClient,
        layout: StreamLayout,
    ) -> Result<Self, MediaError> {
        let position = Arc::new(FilePosition::open(
            &layout.media_cursors_dir(),
            config.fsync,
        )?);
        let outputs = Outputs::open(
            &layout.media_events_dir(),
            config.events_file_max_bytes,
            config.fsync,
            Arc::new(Ledger::Files(position.clone())),
        )?;
        let corp_id = client.corp_id().to_owned();
        Ok(MediaWorker {
            shared: Arc::new(Shared {
                jobs: Jobs::new(config, store, client, outputs),
                layout,
                corp_id,
                position,
                kafka_acks: Arc::new(KafkaAcks::default()),
                records: None,
                running: AtomicBool::new(false),
                read_at: Arc::new(Mutex::new(None)),
                started_at: Mutex::new(String::new()),
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
        self.shared_mut().jobs.outputs.publish_to(sink);
        self
    }

    /// Reads records from `config.topics.messages` as a member of the consumer group `group_id`
    /// instead of tailing the segment files, taking only the records of the client's corp and
    /// the layout's stream (the others are committed past). The position is then the group's
    /// committed offsets (the position file is not used). `group_id` must not be shared with a
    /// worker of another corp or stream: use [`crate::MediaConfig::consumer_group`]. Call before
    /// cloning the worker.
    #[must_use]
    pub fn with_kafka_records(
        mut self,
        config: wecom_kafka::KafkaConfig,
        group_id: impl Into<String>,
    ) -> Self {
        let shared = self.shared_mut();
        shared.records = Some(KafkaRecords {
            config,
            group_id: group_id.into(),
        });
        let ledger = Arc::new(Ledger::Kafka(shared.kafka_acks.clone()));
        shared.jobs.outputs.set_ledger(ledger);
        self
    }

    pub fn stats(&self) -> MediaStatsSnapshot {
        self.shared.jobs.stats.snapshot()
    }

    pub fn store(&self) -> &MediaStore {
        &self.shared.jobs.store
    }

    fn ledger(&self) -> &Arc<Ledger> {
        self.shared.jobs.outputs.ledger()
    }

    /// Age (from its message time) of the oldest media job read but not finished. The service
    /// deletes media after 5 days: alert well before. `None` when nothing is pending.
    pub fn oldest_pending_age(&self) -> Option<Duration> {
        let ms = self.ledger().oldest_pending_msgtime_ms()?;
        Some(Duration::from_millis(
            wecom_store::now_unix_ms().saturating_sub(ms),
        ))
    }

    /// Media jobs read but not finished.
    pub fn pending_jobs(&self) -> usize {
        self.ledger().pending_jobs()
    }

    /// The committed seq (`media` cursor): every record up to the committed position, whose
    /// highest seq this is, has all its media jobs finished. Segment files only.
    pub fn committed_seq(&self) -> Result<Option<u64>, MediaError> {
        self.shared.position.committed_seq()
    }

    /// Processes every record present now, waits for their jobs, commits, and returns.
    pub async fn run_until_caught_up(&self) -> Result<MediaStatsSnapshot, MediaError> {
        self.run_loop(true, CancellationToken::new()).await?;
        Ok(self.stats())
    }

    /// Follows the records until `shutdown` is cancelled; in-flight transfers are then aborted
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
        *lock(&self.shared.started_at) = rfc3339_now();
        let before = self.stats();

        let stop_reporting = CancellationToken::new();
        let reporter = tokio::spawn(self.clone().report(stop_reporting.clone()));
        let result = self.run_source(until_caught_up, &shutdown).await;
        stop_reporting.cancel();
        let _ = reporter.await;

        let state = match &result {
            Ok(()) => MediaRunState::Stopped,
            Err(e) => {
                *lock(&self.shared.jobs.last_error) =
                    Some(MediaLastError::now(error_chain(e), None));
                MediaRunState::Failed
            }
        };
        if let Err(e) = self.write_status(state).await {
            tracing::warn!(error = %error_chain(&e), "media worker: writing the status file failed");
        }
        self.log_summary("media worker stopped", &before);
        result
    }

    /// Opens the source, pumps it, waits for (or cancels) the jobs, and closes the source.
    async fn run_source(
        &self,
        until_caught_up: bool,
        shutdown: &CancellationToken,
    ) -> Result<(), MediaError> {
        let shared = &self.shared;
        self.ledger().reset().await;
        let mut source = match &shared.records {
            None => {
                let start = shared.position.load()?;
                tracing::info!(
                    corp_id = %shared.corp_id,
                    stream = %shared.layout.stream(),
                    position = ?start,
                    store = ?shared.jobs.store,
                    "media worker starting (segment files)"
                );
                Source::files(
                    &shared.layout.messages_dir(),
                    start,
                    shared.position.clone(),
                    shared.jobs.config.poll_interval,
                    shared.read_at.clone(),
                )
            }
            Some(records) => {
                tracing::info!(
                    corp_id = %shared.corp_id,
                    stream = %shared.layout.stream(),
                    topic = %records.topic(),
                    group = %records.group_id,
                    store = ?shared.jobs.store,
                    "media worker starting (kafka consumer group)"
                );
                Source::kafka(
                    records,
                    shared.kafka_acks.clone(),
                    &shared.corp_id,
                    shared.layout.stream(),
                    shared.jobs.config.poll_interval,
                )?
            }
        };

        let jobs_cancel = shutdown.child_token();
        let mut joins: JoinSet<Result<(), MediaError>> = JoinSet::new();
        let result = self
            .pump(
                &mut source,
                until_caught_up,
                shutdown,
                &jobs_cancel,
                &mut joins,
            )
            .await;
        if result.is_err() || shutdown.is_cancelled() {
            jobs_cancel.cancel();
        }
        let mut first_err = result.err();
        while let Some(r) = joins.join_next().await {
            if let Err(e) = flatten(r) {
                first_err.get_or_insert(e);
            }
        }
        let closed = source.close().await;
        match (first_err, closed) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(()),
        }
    }

    /// The one loop over the source: read, start the jobs (bounded by `concurrency` and by the
    /// window of unfinished records), move the position, and stop when asked or caught up.
    async fn pump(
        &self,
        source: &mut Source,
        until_caught_up: bool,
        shutdown: &CancellationToken,
        jobs_cancel: &CancellationToken,
        joins: &mut JoinSet<Result<(), MediaError>>,
    ) -> Result<(), MediaError> {
        let shared = &self.shared;
        let config = &shared.jobs.config;
        let permits = Arc::new(Semaphore::new(config.concurrency));
        loop {
            while let Some(r) = joins.try_join_next() {
                flatten(r)?;
            }
            if shutdown.is_cancelled() {
                return Ok(());
            }
            source.checkpoint().await?;
            if self.ledger().window() >= config.max_window_records && !joins.is_empty() {
                tokio::select! {
                    r = joins.join_next() => { if let Some(r) = r { flatten(r)?; } }
                    () = shutdown.cancelled() => return Ok(()),
                }
                continue;
            }
            let reads = match source.poll(&shared.jobs.stats, shutdown).await? {
                Polled::Records(reads) => reads,
                Polled::Idle => {
                    if until_caught_up {
                        while let Some(r) = joins.join_next().await {
                            flatten(r)?;
                        }
                        source.checkpoint().await?;
                        if source.caught_up().await? {
                            return Ok(());
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(source.idle_pause()) => {}
                        () = shutdown.cancelled() => return Ok(()),
                        Some(r) = joins.join_next(), if !joins.is_empty() => flatten(r)?,
                    }
                    continue;
                }
            };
            for read in reads {
                if !self
                    .spawn_jobs(read, &permits, shutdown, jobs_cancel, joins)
                    .await
                {
                    return Ok(());
                }
            }
        }
    }

    /// Spawns one job per media reference of the record. False when `shutdown` came first.
    async fn spawn_jobs(
        &self,
        read: Read,
        permits: &Arc<Semaphore>,
        shutdown: &CancellationToken,
        jobs_cancel: &CancellationToken,
        joins: &mut JoinSet<Result<(), MediaError>>,
    ) -> bool {
        let Read { record, ack } = read;
        let ctx = Arc::new(RecordCtx {
            corp_id: record.corp_id,
            stream: record.stream,
            seq: record.seq,
            msgid: record.msgid,
            conversation_id: record.conversation_id,
        });
        for media in record.media {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return false,
                },
                () = shutdown.cancelled() => return false,
            };
            let shared = self.shared.clone();
            let ctx = ctx.clone();
            let cancel = jobs_cancel.clone();
            joins.spawn(async move {
                let _permit = permit;
                shared.jobs.run(ack, &ctx, media, &cancel).await
            });
        }
        true
    }

    /// Rewrites the status file every few seconds and logs a summary every minute in which
    /// something happened, until `stop`.
    async fn report(self, stop: CancellationToken) {
        let start = tokio::time::Instant::now();
        let mut status = tokio::time::interval(STATUS_INTERVAL);
        let mut summary = tokio::time::interval_at(start + SUMMARY_INTERVAL, SUMMARY_INTERVAL);
        let mut last = self.stats();
        let mut status_failing = false;
        loop {
            tokio::select! {
                _ = status.tick() => match self.write_status(MediaRunState::Running).await {
                    Ok(()) => status_failing = false,
                    Err(e) if !std::mem::replace(&mut status_failing, true) => {
                        tracing::warn!(error = %error_chain(&e), "media worker: writing the status file failed");
                    }
                    Err(_) => {}
                },
                _ = summary.tick() => {
                    let now = self.stats();
                    if progressed(&last, &now) {
                        self.log_summary("media worker progress", &last);
                    }
                    last = now;
                }
                () = stop.cancelled() => return,
            }
        }
    }

    /// Logs the counters that moved since `since` and the backlog, at INFO.
    fn log_summary(&self, message: &str, since: &MediaStatsSnapshot) {
        let now = self.stats();
        tracing::info!(
            corp_id = %self.shared.corp_id,
            stream = %self.shared.layout.stream(),
            stored = now.objects_stored_total - since.objects_stored_total,
            already_stored = now.objects_skipped_total - since.objects_skipped_total,
            failed = now.objects_failed_total - since.objects_failed_total,
            bytes_stored = now.bytes_stored_total - since.bytes_stored_total,
            records = now.records_read_total - since.records_read_total,
            retries = now.retries_total - since.retries_total,
            resumes = now.resumes_total - since.resumes_total,
            pending_jobs = self.pending_jobs(),
            oldest_pending_secs = self.oldest_pending_age().map(|d| d.as_secs()),
            "{message}"
        );
    }

    /// Gathers the status and writes it (on a blocking thread: it also lists the segments).
    async fn write_status(&self, state: MediaRunState) -> Result<(), MediaError> {
        let shared = &self.shared;
        let ledger = self.ledger();
        let mut status = MediaStatus {
            version: MEDIA_STATUS_VERSION,
            corp_id: shared.corp_id.clone(),
            stream: shared.layout.stream().to_owned(),
            source: match shared.records {
                None => MediaSourceKind::Files,
                Some(_) => MediaSourceKind::Kafka,
            },
            state,
            committed_seq: None,
            records_pending: ledger.window() as u64,
            media_pending: ledger.pending_jobs() as u64,
            unread_bytes: None,
            oldest_pending_age_secs: self.oldest_pending_age().map(|d| d.as_secs()),
            stats: self.stats(),
            last_error: lock(&shared.jobs.last_error).clone(),
            started_at: lock(&shared.started_at).clone(),
            updated_at: rfc3339_now(),
        };
        let backlog = shared.records.is_none().then(|| FileBacklog {
            messages_dir: shared.layout.messages_dir(),
            read_at: shared.read_at.clone(),
        });
        let position = shared.position.clone();
        let path = shared.layout.media_status_path();
        tokio::task::spawn_blocking(move || {
            if let Some(backlog) = backlog {
                status.committed_seq = position.committed_seq()?;
                status.unread_bytes = Some(backlog.unread_bytes()?);
            }
            write_status(&path, &status)
        })
        .await
        .map_err(MediaError::task)?
    }
}

/// Whether anything happened between two snapshots (in-flight jobs aside).
fn progressed(a: &MediaStatsSnapshot, b: &MediaStatsSnapshot) -> bool {
    let mut a = *a;
    a.jobs_in_flight = b.jobs_in_flight;
    a != *b
}

/// `e` and its sources, outermost first (what the status file shows of an error).
fn error_chain(e: &MediaError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn flatten(r: Result<Result<(), MediaError>, tokio::task::JoinError>) -> Result<(), MediaError> {
    r.map_err(MediaError::task)?
}
