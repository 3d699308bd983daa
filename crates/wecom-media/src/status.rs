//! `<stream>/media-status.json`: what the media worker is doing, for operators
//! (`wecom-archive status`). The worker rewrites it atomically every few seconds while it runs and
//! once when it stops; [`read_status`] reads it. It is a report, never state: nothing resumes
//! from it, and losing the newest rewrite in a crash is harmless (so it is not fsynced).
//!
//! The backlog says whether media keeps up: records read whose media is not finished, their
//! unfinished media jobs, the age of the oldest one (the service deletes media after 5 days),
//! and, when the worker follows the segment files, how many bytes of records it has not read yet.

use std::path::Path;

use serde::{Deserialize, Serialize};
use wecom_store::StreamLayout;

use crate::error::MediaError;
use crate::stats::MediaStatsSnapshot;

/// Version of the status file's shape.
pub const MEDIA_STATUS_VERSION: u64 = 1;

/// Where the worker reads records from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaSourceKind {
    /// The stream's segment files.
    Files,
    /// The messages topic, as a member of a consumer group.
    Kafka,
}

/// Whether the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaRunState {
    Running,
    /// Stopped on request or caught up (a batch run).
    Stopped,
    /// Stopped by an error (`last_error` says which).
    Failed,
}

/// The latest error: an object that failed for good, or what stopped the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaLastError {
    pub message: String,
    /// The seq of the record, when the error belongs to one.
    pub seq: Option<u64>,
    /// RFC 3339 UTC.
    pub at: String,
}

impl MediaLastError {
    pub(crate) fn now(message: String, seq: Option<u64>) -> Self {
        MediaLastError {
            message,
            seq,
            at: rfc3339_now(),
        }
    }
}

/// The content of `media-status.json` (field names are stable: scripts read them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaStatus {
    /// [`MEDIA_STATUS_VERSION`].
    pub version: u64,
    pub corp_id: String,
    pub stream: String,
    pub source: MediaSourceKind,
    pub state: MediaRunState,
    /// Highest record seq the position passed (segment files; `None` before the first commit and
    /// with Kafka, whose position is the group's committed offsets).
    pub committed_seq: Option<u64>,
    /// Records read whose media jobs are not all finished (or that wait for an earlier one).
    pub records_pending: u64,
    /// Media jobs read but not finished.
    pub media_pending: u64,
    /// Bytes of record segments not read yet (segment files only).
    pub unread_bytes: Option<u64>,
    /// Age in seconds, from its message time, of the oldest unfinished media job.
    pub oldest_pending_age_secs: Option<u64>,
    /// Counters since the worker started (objects stored and failed, bytes stored, ...).
    pub stats: MediaStatsSnapshot,
    pub last_error: Option<MediaLastError>,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// The media status of the stream at `layout`; `None` when no worker has written one.
pub fn read_status(layout: &StreamLayout) -> Result<Option<MediaStatus>, MediaError> {
    let path = layout.media_status_path();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(MediaError::io(&path)(e)),
    };
    #[derive(Deserialize)]
    struct Version {
        version: u64,
    }
    let version: Version = serde_json::from_slice(&bytes).map_err(|e| MediaError::State {
        path: path.clone(),
        reason: format!("not a media status file: {e}"),
    })?;
    if version.version != MEDIA_STATUS_VERSION {
        return Err(MediaError::State {
            path,
            reason: format!(
                "media status version {} is not supported (this build reads {MEDIA_STATUS_VERSION})",
                version.version
            ),
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| MediaError::State {
            path,
            reason: format!("not a media status file: {e}"),
        })
}

/// Replaces the status file atomically (not fsynced: see the module docs). Blocking I/O.
pub(crate) fn write_status(path: &Path, status: &MediaStatus) -> Result<(), MediaError> {
    let mut bytes = serde_json::to_vec_pretty(status).map_err(|e| MediaError::State {
        path: path.to_path_buf(),
        reason: format!("serializing the media status: {e}"),
    })?;
    bytes.push(b'\n');
    wecom_store::atomic_write(path, &bytes, false)?;
    Ok(())
}

pub(crate) fn rfc3339_now() -> String {
    wecom_model::record::format_msgtime(wecom_store::now_unix_ms()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_status_reads_back_and_other_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = StreamLayout::at(dir.path(), "corp");
        assert_eq!(read_status(&layout).unwrap(), None);
        let status = MediaStatus {
            version: MEDIA_STATUS_VERSION,
            corp_id: "ww1".into(),
            stream: "corp".into(),
            source: MediaSourceKind::Files,
            state: MediaRunState::Running,
            committed_seq: Some(4),
            records_pending: 2,
            media_pending: 3,
            unread_bytes: Some(100),
            oldest_pending_age_secs: Some(60),
            stats: MediaStatsSnapshot {
                objects_failed_total: 1,
                bytes_stored_total: 10,
                ..MediaStatsSnapshot::default()
            },
            last_error: Some(MediaLastError::now("object x: gone".into(), Some(3))),
            started_at: rfc3339_now(),
            updated_at: rfc3339_now(),
        };
        write_status(&layout.media_status_path(), &status).unwrap();
        assert_eq!(read_status(&layout).unwrap(), Some(status));

        std::fs::write(layout.media_status_path(), b"{\"version\": 2}").unwrap();
        let err = read_status(&layout).unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
    }
}
