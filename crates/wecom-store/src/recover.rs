//! Crash recovery of the segment files: what a crash can leave behind (a torn last line, a segment created
//! but never written) is repaired, and the seqs already on disk past the committed cursor are reported, so
//! the pipeline writes each of them exactly once. `wecom-kafka`'s `recover.rs` does the same for topics.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;

use tracing::warn;

use crate::segment::{fsync_dir, list_numbered};
use crate::sink::{LineKind, RecoveryReport, SeqField, WRITE_BUFFER};
use crate::StoreError;

/// Repairs one directory of segments and adds the seqs past `after_seq` it holds to `report.present`
/// and to `kind` (the directory's own set: records or dead letters).
pub(crate) fn recover_dir(
    dir: &Path,
    after_seq: u64,
    fsync: bool,
    report: &mut RecoveryReport,
    kind: LineKind,
) -> Result<(), StoreError> {
    let segments = list_numbered(dir)?;
    let Some(last) = segments.len().checked_sub(1) else {
        return Ok(());
    };
    // Segment i holds seqs in [first_i, first_{i+1}), so the earliest segment that can hold a
    // seq > after_seq is the last one whose first seq is <= after_seq + 1.
    let start = segments
        .iter()
        .rposition(|(first, _)| *first <= after_seq.saturating_add(1))
        .unwrap_or(0);
    for (i, (_, path)) in segments.iter().enumerate().skip(start) {
        let is_last = i == last;
        let (valid_len, torn) = scan_lines(path, is_last, |seq| {
            if seq > after_seq {
                report.present.insert(seq);
                match kind {
                    LineKind::Record => report.records.insert(seq),
                    LineKind::DeadLetter => report.dead_letters.insert(seq),
                };
            }
        })?;
        if !is_last {
            continue;
        }
        let valid_len = match torn {
            Some(valid_len) => {
                report.truncated_bytes += truncate(path, valid_len, fsync)?;
                valid_len
            }
            None => valid_len,
        };
        if valid_len == 0 {
            // Created, then the crash came before its first complete line. Removing it lets
            // the next segment be named by the seq actually written first.
            std::fs::remove_file(path).map_err(StoreError::io(path))?;
            if fsync {
                fsync_dir(dir)?;
            }
        } else if fsync {
            File::open(path)
                .and_then(|f| f.sync_data())
                .map_err(StoreError::io(path))?;
        }
    }
    Ok(())
}

/// Reads every complete line of `path` and hands its `seq` field to `f`.
///
/// Returns the length of the complete lines and, if the file ends in an unterminated fragment,
/// `Some(length to truncate to)`. A fragment is allowed only when `allow_torn_tail`.
pub(crate) fn scan_lines(
    path: &Path,
    allow_torn_tail: bool,
    mut f: impl FnMut(u64),
) -> Result<(u64, Option<u64>), StoreError> {
    let file = File::open(path).map_err(StoreError::io(path))?;
    let mut reader = BufReader::with_capacity(WRITE_BUFFER, file);
    let mut buf = Vec::new();
    let mut offset = 0u64;
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(StoreError::io(path))?;
        if n == 0 {
            return Ok((offset, None));
        }
        line_no += 1;
        if buf.last() != Some(&b'\n') {
            if allow_torn_tail {
                return Ok((offset, Some(offset)));
            }
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                line: line_no,
                reason: "unterminated line in a segment that is not the last".into(),
            });
        }
        let seq = serde_json::from_slice::<SeqField>(&buf[..n - 1])
            .map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                line: line_no,
                reason: e.to_string(),
            })?
            .seq;
        f(seq);
        offset += n as u64;
    }
}

/// Cuts `path` to `valid_len` bytes, fsyncs it, and returns how many bytes were cut.
pub(crate) fn truncate(path: &Path, valid_len: u64, fsync: bool) -> Result<u64, StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StoreError::io(path))?;
    let len = file.metadata().map_err(StoreError::io(path))?.len();
    let cut = len.saturating_sub(valid_len);
    file.set_len(valid_len).map_err(StoreError::io(path))?;
    if fsync {
        file.sync_all().map_err(StoreError::io(path))?;
    }
    warn!(
        path = %path.display(),
        bytes = cut,
        "truncated torn tail left by an interrupted write"
    );
    Ok(cut)
}
