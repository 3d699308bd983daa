//! The two small file-system helpers every durable state file uses, in one place: an atomic replace
//! and the wall clock in milliseconds.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::segment::fsync_dir;
use crate::StoreError;

/// Replaces `path` with `bytes` atomically: a temp file beside it (leading dot, `.tmp` suffix, so it is
/// never taken for the real file), written, optionally fsynced, renamed over `path`, and the directory
/// fsynced. A crash leaves the old content or the new, never a mix. `fsync = false` only where losing the
/// newest write is harmless (a status file rewritten every second); durable state always passes `true`.
pub fn atomic_write(path: &Path, bytes: &[u8], fsync: bool) -> Result<(), StoreError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| StoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        })?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(StoreError::io(&tmp))?;
    f.write_all(bytes).map_err(StoreError::io(&tmp))?;
    if fsync {
        f.sync_all().map_err(StoreError::io(&tmp))?;
    }
    drop(f);
    std::fs::rename(&tmp, path).map_err(StoreError::io(path))?;
    if fsync {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.json");
        atomic_write(&p, b"one", true).expect("first");
        atomic_write(&p, b"two", false).expect("second");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }
}
