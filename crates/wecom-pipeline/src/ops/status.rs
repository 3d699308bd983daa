//! What `wecom-archive status` reads back from a data directory: every stream's cursor, `status.json`
//! (written by a running or finished run) and dead-letter counts. Read-only; safe while a run writes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wecom_store::layout::{corp_dir, stream_of_cursor_file};
use wecom_store::StreamLayout;

use super::LastError;

/// `<stream dir>/status.json`, rewritten atomically by a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusFile {
    pub stream: String,
    pub corp_id: String,
    pub newest_seq_seen: u64,
    pub committed_seq: u64,
    pub last_error: Option<LastError>,
    pub updated_at: String,
}

/// One stream's line of `wecom-archive status` (field names are stable: scripts read `--json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamStatus {
    pub stream: String,
    pub dir: PathBuf,
    pub committed_seq: u64,
    pub newest_seq_known: u64,
    pub lag: u64,
    pub dead_letters: u64,
    pub dead_letters_resolved: u64,
    pub last_error: Option<LastError>,
    pub updated_at: Option<String>,
}

/// `wecom-archive status --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub corp_id: String,
    pub streams: Vec<StreamStatus>,
}

/// Reads every stream directory under `<data_dir>/<corp_id>/` (the corp stream, room streams, replays):
/// cursor files, `status.json`, dead letters. Read-only; safe while a run is writing.
pub fn collect_status(data_dir: &Path, corp_id: &str) -> std::io::Result<StatusReport> {
    let root = corp_dir(data_dir, corp_id).map_err(std::io::Error::other)?;
    let mut streams = Vec::new();
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    dirs.sort();
    for dir in dirs {
        // The stream's name is in its cursor file and status.json; the layout only locates the files.
        let layout = StreamLayout::at(&dir, "");
        let status: Option<StatusFile> = std::fs::read(layout.status_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut cursors: BTreeMap<String, u64> = BTreeMap::new();
        for e in std::fs::read_dir(&dir)?.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().to_string();
            if stream_of_cursor_file(&name).is_some() {
                let v: Option<serde_json::Value> = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                if let Some(v) = v {
                    if let (Some(s), Some(seq)) = (v["stream"].as_str(), v["seq"].as_u64()) {
                        cursors.insert(s.to_string(), seq);
                    }
                }
            }
        }
        if status.is_none() && cursors.is_empty() {
            continue; // not a stream directory (or never committed)
        }
        let (dead, resolved) = dead_letter_counts(&layout);
        let mut names: BTreeSet<String> = cursors.keys().cloned().collect();
        if let Some(st) = &status {
            names.insert(st.stream.clone());
        }
        for name in names {
            let committed = cursors.get(&name).copied().unwrap_or(0);
            let own = status.as_ref().filter(|s| s.stream == name);
            let newest = own.map_or(0, |s| s.newest_seq_seen).max(committed);
            streams.push(StreamStatus {
                stream: name,
                dir: dir.clone(),
                committed_seq: committed,
                newest_seq_known: newest,
                lag: newest - committed,
                dead_letters: dead,
                dead_letters_resolved: resolved,
                last_error: own.and_then(|s| s.last_error.clone()),
                updated_at: own.map(|s| s.updated_at.clone()),
            });
        }
    }
    Ok(StatusReport {
        corp_id: corp_id.to_string(),
        streams,
    })
}

/// (unresolved dead-lettered seqs, resolved ones) of a stream directory.
fn dead_letter_counts(layout: &StreamLayout) -> (u64, u64) {
    let dir = layout.deadletter_dir();
    if !dir.is_dir() {
        return (0, 0);
    }
    let seq_of = |line: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["seq"].as_u64())
    };
    let mut dead = BTreeSet::new();
    if let Ok(lines) = wecom_store::read_lines(&dir) {
        for line in lines.flatten() {
            if let Some(s) = seq_of(&line) {
                dead.insert(s);
            }
        }
    }
    let mut resolved = BTreeSet::new();
    if let Ok(text) = std::fs::read(layout.resolved_path()) {
        for line in text.split(|b| *b == b'\n') {
            if let Some(s) = seq_of(line) {
                resolved.insert(s);
            }
        }
    }
    let open = dead.difference(&resolved).count() as u64;
    (open, resolved.len() as u64)
}
