//! The worker's outputs: the local media-events files, and the Kafka media topic when configured,
//! plus the position ([`Ledger`]) that may pass a record only after every configured output holds
//! the events of all its media jobs.
//!
//! An event is appended (and fsynced) locally, then published and acknowledged by the broker,
//! and only then is its job acknowledged. A crash in between repeats the job: events are
//! at-least-once in every output, and consumers de-duplicate by (`corp_id`, `stream`, `seq`,
//! `sdkfileid`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use wecom_kafka::KafkaSink;

use crate::error::MediaError;
use crate::events::{EventLog, MediaEvent};
use crate::kafka::KafkaAcks;
use crate::position::{lock, FilePosition};

/// How a finished job acknowledges its record: a record ordinal of the file position, or of a
/// Kafka partition.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ack {
    File(u64),
    Kafka(crate::kafka::KafkaAck),
}

/// Which records are finished, for the source the worker reads: shared by the pump (which
/// registers each record read) and the jobs (which acknowledge them).
pub(crate) enum Ledger {
    /// The segment files: the finished prefix is written to the position file.
    Files(Arc<FilePosition>),
    /// The messages topic: the finished prefix of each partition is committed to the group.
    Kafka(Arc<KafkaAcks>),
}

impl Ledger {
    /// Forgets the records of an earlier run.
    pub async fn reset(&self) {
        match self {
            Ledger::Files(p) => p.reset().await,
            Ledger::Kafka(a) => a.reset(),
        }
    }

    /// One job of a record ended. The file position is written at once (so a crash repeats as
    /// little as possible); Kafka offsets are committed by the pump, every poll interval.
    pub async fn done(&self, ack: Ack) -> Result<(), MediaError> {
        match (self, ack) {
            (Ledger::Files(p), Ack::File(ordinal)) => {
                p.done(ordinal);
                p.commit().await
            }
            (Ledger::Kafka(a), Ack::Kafka(ack)) => {
                a.done(ack);
                Ok(())
            }
            _ => Err(MediaError::Task(
                "a media job was acknowledged to the wrong source".into(),
            )),
        }
    }

    /// Records read but not yet passed by the position.
    pub fn window(&self) -> usize {
        match self {
            Ledger::Files(p) => p.window(),
            Ledger::Kafka(a) => a.window(),
        }
    }

    /// Media jobs read but not finished.
    pub fn pending_jobs(&self) -> usize {
        match self {
            Ledger::Files(p) => p.pending_jobs(),
            Ledger::Kafka(a) => a.pending_jobs(),
        }
    }

    pub fn oldest_pending_msgtime_ms(&self) -> Option<u64> {
        match self {
            Ledger::Files(p) => p.oldest_pending_msgtime_ms(),
            Ledger::Kafka(a) => a.oldest_pending_msgtime_ms(),
        }
    }
}

/// See the module docs.
pub(crate) struct Outputs {
    log: Arc<Mutex<EventLog>>,
    kafka: Option<KafkaSink>,
    ledger: Arc<Ledger>,
}

impl Outputs {
    /// Opens the event log in `events_dir` (created if missing).
    pub fn open(
        events_dir: &Path,
        max_bytes: u64,
        fsync: bool,
        ledger: Arc<Ledger>,
    ) -> Result<Self, MediaError> {
        Ok(Outputs {
            log: Arc::new(Mutex::new(EventLog::open(events_dir, max_bytes, fsync)?)),
            kafka: None,
            ledger,
        })
    }

    /// Also publishes every event to the media topic of `sink`.
    pub fn publish_to(&mut self, sink: KafkaSink) {
        self.kafka = Some(sink);
    }

    pub fn set_ledger(&mut self, ledger: Arc<Ledger>) {
        self.ledger = ledger;
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Writes `event` to every configured output, waits until each holds it (fsync, broker
    /// ack), then acknowledges its job with `ack`.
    pub async fn deliver(
        &self,
        event: MediaEvent,
        conversation_id: Option<&str>,
        ack: Ack,
    ) -> Result<(), MediaError> {
        let log = self.log.clone();
        let event = tokio::task::spawn_blocking(move || {
            lock(&log).append(&event)?;
            Ok::<_, MediaError>(event)
        })
        .await
        .map_err(MediaError::task)??;
        if let Some(sink) = &self.kafka {
            crate::kafka::publish_event(sink, &event, conversation_id).await?;
        }
        self.ledger.done(ack).await
    }
}
