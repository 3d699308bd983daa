//! `CursorStore`: one small versioned JSON file per stream holding the last committed seq.
//!
//! A commit is atomic (temp file in the same directory, fsync, rename over, fsync the
//! directory), so a crash leaves either the old or the new cursor, never a mix. A file that
//! cannot be read as a version-1 cursor is an error: resuming from 0 would re-ingest the whole
//! archive, and resuming from a guess could skip messages.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{atomic_write, now_unix_ms};
use crate::names::encode_component;
use crate::segment::fsync_dir;
use crate::StoreError;

/// The cursor file format version this crate reads and writes.
pub const CURSOR_VERSION: u64 = 1;

const SUFFIX: &str = ".cursor.json";

/// A committed position in one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub stream: String,
    /// The highest seq whose output is durably in the sink.
    pub seq: u64,
    pub updated_at_unix_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorFile {
    version: u64,
    stream: String,
    seq: u64,
    updated_at_unix_ms: u64,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u64,
}

/// Cursor files in one directory, one per stream.
#[derive(Debug, Clone)]
pub struct CursorStore {
    dir: PathBuf,
}

impl CursorStore {
    /// Opens the store, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsync_dir(parent)?;
            }
        }
        Ok(CursorStore {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding `stream`'s cursor.
    pub fn path_for(&self, stream: &str) -> Result<PathBuf, StoreError> {
        Ok(self
            .dir
            .join(format!("{}{SUFFIX}", encode_component(stream)?)))
    }

    /// The committed cursor of `stream`, or `None` if it was never committed.
    pub fn load(&self, stream: &str) -> Result<Option<Cursor>, StoreError> {
        let path = self.path_for(stream)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let invalid = |reason: String| StoreError::InvalidCursor {
            path: path.clone(),
            reason,
        };
        // Version first, so a newer format is reported as such and not as a parse failure.
        let version = serde_json::from_slice::<VersionOnly>(&bytes)
            .map_err(|e| invalid(e.to_string()))?
            .version;
        if version != CURSOR_VERSION {
            return Err(StoreError::CursorVersion { path, version });
        }
        let file: CursorFile =
            serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if file.stream != stream {
            return Err(invalid(format!(
                "file is for stream {:?}, expected {stream:?}",
                file.stream
            )));
        }
        Ok(Some(Cursor {
            stream: file.stream,
            seq: file.seq,
            updated_at_unix_ms: file.updated_at_unix_ms,
        }))
    }

    /// Durably sets `stream`'s cursor to `seq`. Does not check that `seq` moves forward: that
    /// bookkeeping belongs to the pipeline.
    pub fn commit(&self, stream: &str, seq: u64) -> Result<(), StoreError> {
        let path = self.path_for(stream)?;
        let file = CursorFile {
            version: CURSOR_VERSION,
            stream: stream.to_owned(),
            seq,
            updated_at_unix_ms: now_unix_ms(),
        };
        let mut bytes = serde_json::to_vec(&file).expect("cursor serializes");
        bytes.push(b'\n');
        atomic_write(&path, &bytes, true)
    }
}
