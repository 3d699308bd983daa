//! Keeping the index up to date: read new records from the source, index them, commit with the new
//! position at most every `commit_interval_ms`. Runs on a thread of its own (tantivy's writer and the
//! file reads are blocking, the Kafka consumer is polled), never on the async runtime.

mod files;
mod kafka;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use wecom_kafka::KafkaConfig;

use crate::error::ConsoleError;
use crate::index::{FilePos, IndexState, Indexer};
use crate::msg::Msg;

pub use files::FilesSource;
pub use kafka::{consumer_config, KafkaSource};

/// Lines read per loop turn; also the bound of what is held between reading and indexing.
const BATCH: usize = 2000;
/// Records indexed before a commit even if the interval has not passed (bounds the writer's memory).
const MAX_PENDING: usize = 50_000;
/// How long to wait when nothing is new.
const IDLE: Duration = Duration::from_millis(200);
/// How often new room streams are looked for.
const DISCOVER_EVERY: Duration = Duration::from_secs(5);

/// Where records come from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// The pipeline's segment files under `data_dir`.
    Local { data_dir: PathBuf },
    /// The messages topic.
    Kafka {
        kafka: Box<KafkaConfig>,
        group_id: String,
    },
}

enum Source {
    Files(FilesSource),
    Kafka(KafkaSource),
}

/// Reads and indexes until `stop` is set; commits what it holds before returning.
pub fn run(
    mut indexer: Indexer,
    spec: &SourceSpec,
    commit_interval: Duration,
    stop: &AtomicBool,
) -> Result<(), ConsoleError> {
    let archive = indexer.archive().clone();
    let corp = archive.corp_id().to_owned();
    let mut source = match spec {
        SourceSpec::Local { data_dir } => {
            Source::Files(FilesSource::new(data_dir, &corp, &indexer.state().files)?)
        }
        SourceSpec::Kafka { kafka, group_id } => {
            let state = indexer.state();
            let positions = if state.kafka_topic.as_deref() == Some(kafka.topics.messages.as_str())
            {
                state.kafka.clone()
            } else {
                Default::default()
            };
            Source::Kafka(KafkaSource::new(kafka, group_id, &positions)?)
        }
    };
    let describe = match &source {
        Source::Files(f) => f.describe(),
        Source::Kafka(k) => k.describe(),
    };
    info!(source = %describe, "console indexing");
    archive.set_status(|s| s.source = describe.clone());

    let mut files_pos = indexer.state().files.clone();
    let mut kafka_pos = indexer.state().kafka.clone();
    let mut moved = false;
    let mut oldest_uncommitted: Option<Instant> = None;
    let mut last_discover = Instant::now();
    let mut unreadable_warned = false;
    while !stop.load(Ordering::Relaxed) {
        let lines: Vec<Vec<u8>> = match &mut source {
            Source::Files(f) => {
                if last_discover.elapsed() >= DISCOVER_EVERY {
                    f.discover()?;
                    last_discover = Instant::now();
                }
                let batch = f.next_batch(BATCH)?;
                batch
                    .into_iter()
                    .map(|l| {
                        files_pos.insert(l.stream_dir, l.end);
                        l.bytes
                    })
                    .collect()
            }
            Source::Kafka(k) => {
                let batch = k.next_batch(BATCH, IDLE)?;
                batch
                    .into_iter()
                    .map(|l| {
                        debug_assert!(l.offset >= 0);
                        kafka_pos.insert(l.partition, l.offset + 1);
                        l.bytes
                    })
                    .collect()
            }
        };
        let got = !lines.is_empty();
        if got {
            moved = true;
            oldest_uncommitted.get_or_insert_with(Instant::now);
        }
        for bytes in lines {
            let Ok(line) = std::str::from_utf8(&bytes) else {
                note_unreadable(&archive, &mut unreadable_warned, "not UTF-8");
                continue;
            };
            match Msg::parse(bytes.as_slice()) {
                Ok(m) if m.record.schema == wecom_model::MESSAGE_SCHEMA_ID => {
                    indexer.add(m, line)?;
                }
                Ok(_) => note_unreadable(&archive, &mut unreadable_warned, "another schema"),
                Err(e) => note_unreadable(&archive, &mut unreadable_warned, &e.to_string()),
            }
        }
        let due = oldest_uncommitted.is_some_and(|t| t.elapsed() >= commit_interval)
            || indexer.pending() >= MAX_PENDING;
        if moved && due {
            commit(&mut indexer, &source, &files_pos, &kafka_pos)?;
            moved = false;
            oldest_uncommitted = None;
        }
        if !got {
            if let Source::Files(_) = source {
                std::thread::sleep(IDLE);
            }
        }
    }
    if moved {
        commit(&mut indexer, &source, &files_pos, &kafka_pos)?;
    }
    indexer.close()
}

fn commit(
    indexer: &mut Indexer,
    source: &Source,
    files_pos: &std::collections::BTreeMap<String, FilePos>,
    kafka_pos: &std::collections::BTreeMap<i32, i64>,
) -> Result<(), ConsoleError> {
    let pending = indexer.pending();
    indexer.commit(|state: &mut IndexState| {
        state.files.clone_from(files_pos);
        if let Source::Kafka(k) = source {
            state.kafka_topic = Some(k.topic().to_owned());
            state.kafka.clone_from(kafka_pos);
        }
    })?;
    if let Source::Kafka(k) = source {
        k.commit_group(kafka_pos);
    }
    debug!(records = pending, "console index commit");
    Ok(())
}

fn note_unreadable(archive: &Arc<crate::index::Archive>, warned: &mut bool, why: &str) {
    archive.set_status(|s| s.unreadable_lines += 1);
    if !*warned {
        warn!(
            reason = why,
            "a record line the console cannot read was skipped (counted in /api/status)"
        );
        *warned = true;
    } else {
        debug!(reason = why, "unreadable record line skipped");
    }
}
