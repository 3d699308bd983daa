//! Replay: re-walk a stream from a saved seq into an output of its own, from the service or from the raw
//! archive, for one stream, one room or several rooms.
//!
//! A replay is the live pipeline ([`crate::run`]) with a [`Scope`]: another output directory
//! (`<data_dir>/<corp>/replays/<name>/<stream>/`, with its own cursor and lock, so it never touches the live
//! stream's cursor or output and runs beside it), a start seq, an optional stop seq, an optional record
//! filter, and optionally the raw archive instead of the service as the page source. Records are produced
//! by the same processor as the live run, so a replayed range is byte-identical to the live output's.
//! Stopping (Ctrl-C) commits in-flight pages; the same name resumes from its cursor.
//!
//! Seq spaces: `--from-seq`/`--to-seq` count in the walked stream's seq — corp seqs for the corp stream and
//! for the roomid filter, the room's own seq when a room is paged through `groupchat/get`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::info;
use wecom_store::{LineKind, StreamLayout};

use crate::config::{SinkKind, Validated};
use crate::error::PipelineError;
use crate::process::Processed;
use crate::run::run_scoped;
use crate::scope::{Keep, ProbeList, RetentionCheck, Scope};
use crate::source::Source;
use crate::stream::{RunOptions, RunSummary, StreamSel};
use wecom_ledger::Ledger;

/// What to replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRequest {
    /// First seq to replay (inclusive).
    pub from_seq: u64,
    /// Last seq to replay (inclusive); none: until caught up.
    pub to_seq: Option<u64>,
    /// Replay these rooms only (room paging when the source can, the roomid filter otherwise).
    pub rooms: Vec<String>,
    /// Read the raw archive instead of calling the service.
    pub from_archive: bool,
    /// Name of the replay (its directory and cursor); default derived from the request.
    pub name: Option<String>,
    /// Root of the replay output instead of `<data_dir>/<corp>/replays/<name>`.
    pub out_dir: Option<PathBuf>,
    /// Publish the replayed records to this Kafka topic (dead letters to `<topic>.deadletter`) instead of
    /// local segment files. Never the live messages topic: the restart recovery tells streams apart by their
    /// corp and stream headers, which a replay shares with the live run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_topic: Option<String>,
    /// Print a progress line to stderr (only on a terminal).
    #[serde(skip)]
    pub progress: bool,
}

impl ReplayRequest {
    /// `seq-<from>-<to|end>[-archive][-rooms-<ids>]`.
    pub fn default_name(&self) -> String {
        let mut n = format!(
            "seq-{}-{}",
            self.from_seq,
            self.to_seq.map_or("end".to_string(), |t| t.to_string())
        );
        if self.from_archive {
            n.push_str("-archive");
        }
        if !self.rooms.is_empty() {
            n.push_str("-rooms-");
            n.push_str(&self.rooms.join("+"));
        }
        n.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    pub name: String,
    pub dir: PathBuf,
    /// `service`, `archive`, `room-paging` or `room-filter` (with `-archive` when from the archive).
    pub mode: String,
    pub runs: Vec<RunSummary>,
    pub records: u64,
    pub dead_letters: u64,
    /// The first seq the source served (a replay from the service).
    pub first_seq_served: Option<u64>,
    /// Set when the requested seq looks older than the source's retention.
    pub retention_warning: Option<String>,
}

/// Runs a replay to its end (`to_seq` reached, or caught up), or until `shutdown` is cancelled.
pub async fn replay(
    cfg: &Validated,
    source: &Source,
    req: &ReplayRequest,
    shutdown: CancellationToken,
) -> Result<ReplaySummary, PipelineError> {
    let bad = |reason: String| PipelineError::Config {
        path: PathBuf::from("replay"),
        reason,
    };
    if let Some(to) = req.to_seq {
        if to < req.from_seq {
            return Err(bad(format!(
                "--to-seq {to} is before --from-seq {}",
                req.from_seq
            )));
        }
    }
    let name = req.name.clone().unwrap_or_else(|| req.default_name());
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
    {
        return Err(bad(format!(
            "replay name {name:?} must be letters, digits and - _ . +"
        )));
    }
    let root = match &req.out_dir {
        Some(dir) => dir.clone(),
        None => wecom_store::layout::replay_root(&cfg.data_dir, &cfg.corp_id, &name)?,
    };
    // A replay writes local files, or its own Kafka topic (its cursor and dead letters stay local either way).
    let mut rcfg = cfg.clone();
    match &req.kafka_topic {
        None => {
            rcfg.sink_kind = SinkKind::Local;
            rcfg.kafka = None;
        }
        Some(topic) => {
            let Some(kafka) = rcfg.kafka.as_mut() else {
                return Err(bad(
                    "--sink kafka needs a [kafka] section in the config".into()
                ));
            };
            let deadletter = format!("{topic}.deadletter");
            let recalls = format!("{topic}.recalls");
            let live = [
                ("topics.messages", Some(&kafka.topics.messages)),
                ("topics.media", Some(&kafka.topics.media)),
                ("topics.deadletter", Some(&kafka.topics.deadletter)),
                ("topics.recalls", Some(&kafka.topics.recalls)),
                ("cursor_topic", kafka.cursor_topic.as_ref()),
            ];
            for (key, live) in live {
                let Some(live) = live else { continue };
                for (what, ours) in [
                    ("records", topic),
                    ("dead letters", &deadletter),
                    ("recall events", &recalls),
                ] {
                    if ours == live {
                        return Err(bad(format!(
                            "--topic {topic}: the replay's {what} would go to {ours}, the live [kafka] {key}; \
                             a replay needs topics of its own (e.g. --topic {topic}.replay)"
                        )));
                    }
                }
            }
            kafka.topics.messages = topic.clone();
            kafka.topics.deadletter = deadletter;
            kafka.topics.recalls = recalls;
            rcfg.sink_kind = SinkKind::Kafka;
        }
    }
    check_request(&root, req, &cfg.corp_id)?;

    let archive = if req.from_archive {
        Some(
            Ledger::open(&cfg.archive, &cfg.data_dir, &cfg.corp_id)
                .map_err(|e| PipelineError::archive(&cfg.corp_id, e))?,
        )
    } else {
        None
    };
    let room_paging = !req.rooms.is_empty() && !req.from_archive && cfg.rooms.paging;
    let mode = match (req.rooms.is_empty(), room_paging, req.from_archive) {
        (true, _, false) => "service",
        (true, _, true) => "archive",
        (false, true, _) => "room-paging",
        (false, false, false) => "room-filter",
        (false, false, true) => "room-filter-archive",
    }
    .to_string();
    let probes: ProbeList = Arc::default();
    let stop = shutdown.child_token();
    let progress = req.progress.then(|| {
        tokio::spawn(crate::progress::replay_progress(
            probes.clone(),
            req.to_seq,
            req.from_seq,
            stop.clone(),
        ))
    });
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let dedupe_msgid: Keep = {
        let seen = seen.clone();
        Arc::new(move |p: &Processed| {
            // Dead letters have no trustworthy msgid to compare (and are kept: nothing is dropped).
            if p.line.kind != LineKind::Record {
                return true;
            }
            let Some(msgid) = msgid_of(&p.line.json) else {
                return true;
            };
            seen.lock().unwrap_or_else(|e| e.into_inner()).insert(msgid)
        })
    };
    let opts = |stream: StreamSel| RunOptions {
        stream,
        follow: false,
        progress: false,
    };
    let after = req.from_seq.saturating_sub(1);
    info!(corp = %cfg.corp_id, name = %name, mode = %mode, from_seq = req.from_seq, to_seq = ?req.to_seq, dir = %root.display(), "replay starting");

    let mut retention = None;
    let runs: Vec<Result<RunSummary, PipelineError>> = if room_paging {
        let parallel = cfg.rooms.parallel.max(1);
        futures::stream::iter(req.rooms.iter().cloned())
            .map(|room| {
                let stream = StreamSel::Room(room);
                let (root, rcfg, stop) = (&root, &rcfg, stop.clone());
                let (keep, probes) = (dedupe_msgid.clone(), probes.clone());
                async move {
                    let layout = StreamLayout::in_replay(root, &stream.name())?;
                    start_cursor(&layout, after).await?;
                    let scope = Scope {
                        dir: Some(layout.dir().to_path_buf()),
                        stop_after_seq: req.to_seq,
                        keep: Some(keep),
                        probes: Some(probes),
                        ..Scope::default()
                    };
                    run_scoped(rcfg, source, &opts(stream), &scope, stop).await
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await
    } else {
        let keep: Option<Keep> = (!req.rooms.is_empty()).then(|| {
            let rooms: HashSet<String> = req.rooms.iter().cloned().collect();
            let dedupe = dedupe_msgid.clone();
            Arc::new(move |p: &Processed| {
                // A dead letter's room is unknown (it did not decrypt): a room filter cannot claim it.
                p.line.kind == LineKind::Record
                    && roomid_of(&p.line.json).is_some_and(|r| rooms.contains(&r))
                    && dedupe(p)
            }) as Keep
        });
        let stream = StreamSel::Corp;
        let layout = StreamLayout::in_replay(&root, &stream.name())?;
        // Resuming, the first page is not the requested seq's, so it says nothing about retention.
        let fresh = start_cursor(&layout, after).await?;
        if archive.is_none() && fresh {
            retention = Some(Arc::new(RetentionCheck::new(after)));
        }
        let scope = Scope {
            dir: Some(layout.dir().to_path_buf()),
            stop_after_seq: req.to_seq,
            from_archive: archive.clone(),
            keep,
            retention: retention.clone(),
            probes: Some(probes.clone()),
            ..Scope::default()
        };
        vec![run_scoped(&rcfg, source, &opts(stream), &scope, stop.clone()).await]
    };
    stop.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    let runs = runs.into_iter().collect::<Result<Vec<_>, _>>()?;
    let summary = ReplaySummary {
        name,
        dir: root,
        mode,
        records: runs.iter().map(|r| r.records).sum(),
        dead_letters: runs.iter().map(|r| r.dead_letters).sum(),
        runs,
        first_seq_served: retention.as_ref().and_then(|r| r.first_served()),
        retention_warning: retention.as_ref().and_then(|r| r.warning()),
    };
    Ok(summary)
}

fn msgid_of(json: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct M {
        msgid: String,
    }
    serde_json::from_slice::<M>(json).ok().map(|m| m.msgid)
}

fn roomid_of(json: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct R {
        roomid: Option<String>,
    }
    serde_json::from_slice::<R>(json)
        .ok()
        .and_then(|r| r.roomid)
        .filter(|r| !r.is_empty())
}

/// Commits the replay's start (`after`) as its cursor unless it has one; true when it was fresh.
async fn start_cursor(layout: &StreamLayout, after: u64) -> Result<bool, PipelineError> {
    let layout = layout.clone();
    tokio::task::spawn_blocking(move || -> Result<bool, PipelineError> {
        let cursors = wecom_store::CursorStore::open(layout.dir())?;
        if cursors.load(layout.stream())?.is_some() {
            return Ok(false);
        }
        cursors.commit(layout.stream(), after)?;
        Ok(true)
    })
    .await
    .map_err(|e| PipelineError::internal("", "replay", e))?
}

/// Writes the request next to the replay output the first time; a later run with the same name must ask
/// for the same replay (resuming a different range into the same cursor would mix two answers).
fn check_request(root: &Path, req: &ReplayRequest, corp_id: &str) -> Result<(), PipelineError> {
    let io = |path: &Path, source| {
        PipelineError::Local(wecom_store::StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
    let path = wecom_store::layout::replay_request_path(root);
    let mut want = req.clone();
    want.name = None;
    want.out_dir = None;
    match std::fs::read(&path) {
        Ok(bytes) => {
            let have: ReplayRequest =
                serde_json::from_slice(&bytes).map_err(|e| PipelineError::Internal {
                    corp_id: corp_id.to_string(),
                    stream: "replay".into(),
                    reason: format!("{}: {e}", path.display()),
                })?;
            if have != want {
                return Err(PipelineError::Config {
                    path,
                    reason: format!(
                        "this replay name was started with another request ({have:?}); pick another --name"
                    ),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let json = serde_json::to_vec_pretty(&want).unwrap_or_default();
            Ok(wecom_store::atomic_write(&path, &json, true)?)
        }
        Err(e) => Err(io(&path, e)),
    }
}
