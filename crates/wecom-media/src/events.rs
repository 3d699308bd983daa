//! Media events (`wecom-archive.media.v1`): one JSON line per media reference when its job ends,
//! appended and fsynced to `<data>/media-events/events-<n>.ndjson` before the worker's position
//! may pass the record.
//!
//! Delivery is at-least-once: a crash between the append and the position commit repeats the job
//! (it then finds the object stored and says so again). Consumers de-duplicate by
//! (`corp_id`, `stream`, `seq`, `sdkfileid`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::MediaError;

/// Schema id of [`MediaEvent`].
pub const MEDIA_EVENT_SCHEMA_ID: &str = "wecom-archive.media.v1";

/// Terminal state of one media reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaEventStatus {
    Stored,
    Failed,
}

/// One line of the media-events files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaEvent {
    /// Always [`MEDIA_EVENT_SCHEMA_ID`].
    pub schema: String,
    pub corp_id: String,
    pub stream: String,
    pub seq: u64,
    pub msgid: String,
    /// `image`, `video`, ... as in the record's media reference.
    pub kind: String,
    pub sdkfileid: String,
    /// The object key (without the store's prefix), as in the record.
    pub object_key: String,
    pub status: MediaEventStatus,
    /// `file:///…/key` or `s3://bucket/prefix/key` when stored.
    pub location: Option<String>,
    /// Bytes stored (stored) or received in the last attempt (failed).
    pub size: Option<u64>,
    /// md5 (lowercase hex) of the bytes stored or received.
    pub md5: Option<String>,
    /// The message's md5sum (`None` when the message had none).
    pub expected_md5: Option<String>,
    /// The message's size.
    pub expected_size: Option<u64>,
    /// The object was already there (stored earlier or by a job for identical media).
    pub already_stored: bool,
    /// Download attempts made (0 when already stored).
    pub attempts: u32,
    /// Why it failed (errcode and text), or `None` when stored.
    pub reason: Option<String>,
    /// The errcode of the failure when the archive answered with one (e.g. 10010 expired).
    pub errcode: Option<i64>,
    pub at_unix_ms: u64,
}

const PREFIX: &str = "events-";
const SUFFIX: &str = ".ndjson";

/// Appends events to numbered files, rotating by size. Blocking I/O.
pub struct EventLog {
    dir: PathBuf,
    max_bytes: u64,
    fsync: bool,
    number: u64,
    size: u64,
    file: Option<File>,
}

impl EventLog {
    /// Opens `dir` (created if missing) and continues its newest file.
    pub fn open(dir: &Path, max_bytes: u64, fsync: bool) -> Result<Self, MediaError> {
        std::fs::create_dir_all(dir).map_err(MediaError::io(dir))?;
        let number = list_event_files(dir)?.last().map_or(0, |(n, _)| *n);
        let mut log = EventLog {
            dir: dir.to_path_buf(),
            max_bytes,
            fsync,
            number,
            size: 0,
            file: None,
        };
        log.open_current()?;
        Ok(log)
    }

    fn path(&self) -> PathBuf {
        self.dir.join(format!("{PREFIX}{:06}{SUFFIX}", self.number))
    }

    fn open_current(&mut self) -> Result<(), MediaError> {
        let path = self.path();
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(MediaError::io(&path))?;
        let mut size = file.metadata().map_err(MediaError::io(&path))?.len();
        // A torn last line (crash mid-append) would glue onto the next event: cut it.
        if size > 0 {
            let text = std::fs::read(&path).map_err(MediaError::io(&path))?;
            let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) as u64;
            if keep != size {
                file.set_len(keep).map_err(MediaError::io(&path))?;
                file.sync_all().map_err(MediaError::io(&path))?;
                size = keep;
            }
        }
        file.flush().map_err(MediaError::io(&path))?;
        self.size = size;
        self.file = Some(file);
        Ok(())
    }

    /// Appends one event and (unless disabled) fsyncs it.
    pub fn append(&mut self, event: &MediaEvent) -> Result<(), MediaError> {
        let mut line = serde_json::to_vec(event).expect("media events serialize");
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.number += 1;
            self.open_current()?;
        }
        let path = self.path();
        let file = self.file.as_mut().expect("event file open");
        file.write_all(&line).map_err(MediaError::io(&path))?;
        if self.fsync {
            file.sync_data().map_err(MediaError::io(&path))?;
        }
        self.size += line.len() as u64;
        Ok(())
    }
}

fn list_event_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, MediaError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(MediaError::io(dir))? {
        let entry = entry.map_err(MediaError::io(dir))?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((n, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Every complete event in `dir`, oldest file first (for tests, status and replays).
pub fn read_events(dir: &Path) -> Result<Vec<MediaEvent>, MediaError> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for (_, path) in list_event_files(dir)? {
        let text = std::fs::read(&path).map_err(MediaError::io(&path))?;
        for line in text.split_inclusive(|b| *b == b'\n') {
            if line.last() != Some(&b'\n') || line.len() <= 1 {
                continue;
            }
            let ev = serde_json::from_slice(line).map_err(|e| MediaError::State {
                path: path.clone(),
                reason: format!("bad media event: {e}"),
            })?;
            out.push(ev);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> MediaEvent {
        MediaEvent {
            schema: MEDIA_EVENT_SCHEMA_ID.into(),
            corp_id: "ww1".into(),
            stream: "corp".into(),
            seq,
            msgid: format!("m{seq}"),
            kind: "image".into(),
            sdkfileid: "f".into(),
            object_key: "media/ww1/x.jpg".into(),
            status: MediaEventStatus::Stored,
            location: None,
            size: Some(1),
            md5: None,
            expected_md5: None,
            expected_size: None,
            already_stored: false,
            attempts: 1,
            reason: None,
            errcode: None,
            at_unix_ms: 0,
        }
    }

    #[test]
    fn appends_rotates_and_cuts_torn_tails() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), 600, false).unwrap();
        for seq in 0..5 {
            log.append(&event(seq)).unwrap();
        }
        drop(log);
        assert!(list_event_files(dir.path()).unwrap().len() > 1);
        let last = list_event_files(dir.path()).unwrap().pop().unwrap().1;
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(b"{\"schema\":").unwrap();
        let mut log = EventLog::open(dir.path(), 600, false).unwrap();
        log.append(&event(5)).unwrap();
        let seqs: Vec<u64> = read_events(dir.path())
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
    }
}
