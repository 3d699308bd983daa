//! Segment files: naming, listing, reading, and the small fsync helpers the sink and the cursor
//! store share.
//!
//! A segment is `seg-<first seq, 20 digits>.ndjson`: zero padding makes lexical order equal seq
//! order for tools like `ls` and `cat`, and the name bounds the seqs a segment can hold, which
//! lets recovery skip old segments without opening them.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::StoreError;

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".ndjson";
const DIGITS: usize = 20;

pub(crate) fn segment_file_name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:020}{SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segments of `dir` with their first seq, in seq order. Other files (`resolved.ndjson`,
/// anything an operator left there) are ignored.
pub(crate) fn list_numbered(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let entry = entry.map_err(StoreError::io(dir))?;
        let name = entry.file_name();
        if let Some(first) = name.to_str().and_then(parse_segment_name) {
            out.push((first, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(first, _)| *first);
    Ok(out)
}

/// The segment files of a sink directory (`messages/` or `deadletter/`), in seq order.
pub fn list_segments(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    Ok(list_numbered(dir)?.into_iter().map(|(_, p)| p).collect())
}

/// Every complete line of every segment in `dir`, in seq-name order, without the newline.
///
/// An unterminated fragment at the end of the last segment is not yielded: it is either a line
/// the writer is still appending or a torn write that the next `recover` truncates. An
/// unterminated fragment at the end of any earlier segment is a `Corrupt` error, since the sink
/// fsyncs a segment completely before it starts the next one.
pub fn read_lines(dir: &Path) -> Result<Lines, StoreError> {
    Ok(Lines {
        segments: list_segments(dir)?.into_iter().rev().collect(),
        current: None,
    })
}

/// Iterator returned by [`read_lines`].
pub struct Lines {
    /// Remaining segments, last one first so `pop` yields them in order.
    segments: Vec<PathBuf>,
    current: Option<(PathBuf, BufReader<File>, u64)>,
}

impl Iterator for Lines {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let path = self.segments.pop()?;
                match File::open(&path) {
                    Ok(f) => self.current = Some((path, BufReader::new(f), 0)),
                    Err(e) => {
                        self.segments.clear();
                        return Some(Err(StoreError::Io { path, source: e }));
                    }
                }
            }
            let (path, reader, line_no) = self.current.as_mut()?;
            let mut buf = Vec::new();
            match reader.read_until(b'\n', &mut buf) {
                Err(e) => {
                    let path = path.clone();
                    self.current = None;
                    self.segments.clear();
                    return Some(Err(StoreError::Io { path, source: e }));
                }
                Ok(0) => self.current = None,
                Ok(_) if buf.last() == Some(&b'\n') => {
                    *line_no += 1;
                    buf.pop();
                    return Some(Ok(buf));
                }
                Ok(_) => {
                    // Unterminated fragment: the end of this file.
                    let (path, _, line_no) = self.current.take()?;
                    if self.segments.is_empty() {
                        return None;
                    }
                    self.segments.clear();
                    return Some(Err(StoreError::Corrupt {
                        path,
                        line: line_no + 1,
                        reason: "unterminated line in a segment that is not the last".into(),
                    }));
                }
            }
        }
    }
}

/// Makes a directory entry change (create, rename, remove) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}
