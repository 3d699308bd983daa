//! The worker's position in the record segments: where a restart resumes reading.
//!
//! **The position never passes a record with an unfinished media job**: it only moves over the
//! longest prefix of records whose jobs all ended (stored or failed) *and* whose events every
//! output holds ([`AckTracker`]). A crash or a dropped worker therefore loses no job; it may repeat
//! some (the repeat finds the object stored and reports it again).
//!
//! It lives in `<stream>/cursors/media.position.json` (segment file name and byte offset, written
//! atomically and fsynced); the highest seq at or before it also goes to the `media` cursor, which
//! only informs (status, metrics).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use wecom_store::CursorStore;

use crate::error::MediaError;
use crate::tail::Position;
use crate::tracker::{AckTracker, Committable};

/// The `CursorStore` stream name of the media worker's committed seq.
pub const MEDIA_CURSOR_STREAM: &str = "media";
/// File (in the media cursor directory) holding the worker's read position.
pub const POSITION_FILE: &str = "media.position.json";
const POSITION_VERSION: u64 = 1;

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

/// The file position: which records are finished, and the durable copy of the finished prefix.
pub(crate) struct FilePosition {
    path: PathBuf,
    cursors: CursorStore,
    fsync: bool,
    tracker: Mutex<AckTracker>,
    /// The last position written; the async lock serializes commits so they stay in order.
    committed: tokio::sync::Mutex<Option<Committable>>,
}

impl FilePosition {
    /// Opens (creating) the media cursor directory `dir`.
    pub fn open(dir: &Path, fsync: bool) -> Result<Self, MediaError> {
        Ok(FilePosition {
            path: dir.join(POSITION_FILE),
            cursors: CursorStore::open(dir)?,
            fsync,
            tracker: Mutex::new(AckTracker::new()),
            committed: tokio::sync::Mutex::new(None),
        })
    }

    /// Forgets the records of an earlier run (their jobs are redone from the saved position).
    pub async fn reset(&self) {
        let mut committed = self.committed.lock().await;
        *lock(&self.tracker) = AckTracker::new();
        *committed = None;
    }

    /// Registers a record read up to `end` with `jobs` media jobs; returns its ordinal.
    pub fn push(&self, end: Position, seq: u64, msgtime_ms: Option<u64>, jobs: usize) -> u64 {
        lock(&self.tracker).push(end, seq, msgtime_ms, jobs)
    }

    /// One job of record `ordinal` finished (its event is in every output).
    pub fn done(&self, ordinal: u64) {
        lock(&self.tracker).done(ordinal);
    }

    pub fn window(&self) -> usize {
        lock(&self.tracker).window()
    }

    pub fn pending_jobs(&self) -> usize {
        lock(&self.tracker).pending_jobs()
    }

    pub fn oldest_pending_msgtime_ms(&self) -> Option<u64> {
        lock(&self.tracker).oldest_pending_msgtime_ms()
    }

    /// The seq of the `media` cursor.
    pub fn committed_seq(&self) -> Result<Option<u64>, MediaError> {
        Ok(self.cursors.load(MEDIA_CURSOR_STREAM)?.map(|c| c.seq))
    }

    /// Writes the committable position if it moved. Commits are serialized and never go back.
    pub async fn commit(self: &std::sync::Arc<Self>) -> Result<(), MediaError> {
        let mut last = self.committed.lock().await;
        let Some(next) = lock(&self.tracker).committable().cloned() else {
            return Ok(());
        };
        if last.as_ref() == Some(&next) {
            return Ok(());
        }
        let this = self.clone();
        let to_write = next.clone();
        tokio::task::spawn_blocking(move || this.write(&to_write))
            .await
            .map_err(MediaError::task)??;
        *last = Some(next);
        Ok(())
    }

    fn write(&self, c: &Committable) -> Result<(), MediaError> {
        let file = PositionFile {
            version: POSITION_VERSION,
            segment: c.position.segment.clone(),
            offset: c.position.offset,
            max_seq: c.max_seq,
            updated_at_unix_ms: wecom_store::now_unix_ms(),
        };
        let mut bytes = serde_json::to_vec(&file).map_err(|e| MediaError::State {
            path: self.path.clone(),
            reason: format!("serializing the media position: {e}"),
        })?;
        bytes.push(b'\n');
        wecom_store::atomic_write(&self.path, &bytes, self.fsync)?;
        // The seq cursor is informational (status, metrics); resuming uses the position.
        self.cursors.commit(MEDIA_CURSOR_STREAM, c.max_seq)?;
        Ok(())
    }

    /// The saved position, `None` before the first commit.
    pub fn load(&self) -> Result<Option<Position>, MediaError> {
        let path = &self.path;
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MediaError::io(path)(e)),
        };
        let file: PositionFile = serde_json::from_slice(&bytes).map_err(|e| MediaError::State {
            path: path.clone(),
            reason: format!(
                "not a media position file ({e}); remove it to read the segments from the start"
            ),
        })?;
        if file.version != POSITION_VERSION {
            return Err(MediaError::State {
                path: path.clone(),
                reason: format!("media position version {} is not supported", file.version),
            });
        }
        Ok(Some(Position {
            segment: file.segment,
            offset: file.offset,
        }))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pos(offset: u64) -> Position {
        Position {
            segment: "seg-00000000000000000001.ndjson".into(),
            offset,
        }
    }

    #[tokio::test]
    async fn commits_only_the_finished_prefix_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(FilePosition::open(dir.path(), false).unwrap());
        assert_eq!(p.load().unwrap(), None);
        let a = p.push(pos(10), 7, None, 1);
        let b = p.push(pos(20), 9, None, 1);
        p.done(b);
        p.commit().await.unwrap();
        assert_eq!(p.load().unwrap(), None, "record a is unfinished");
        p.done(a);
        p.commit().await.unwrap();
        assert_eq!(p.load().unwrap(), Some(pos(20)));
        assert_eq!(p.committed_seq().unwrap(), Some(9));

        std::fs::write(dir.path().join(POSITION_FILE), b"{\"version\":9}").unwrap();
        let err = p.load().unwrap_err().to_string();
        assert!(err.contains(POSITION_FILE), "{err}");
    }
}
