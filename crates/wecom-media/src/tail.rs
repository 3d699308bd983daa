//! Tailing the record segments (`<data>/messages/seg-<first seq>.ndjson`) while the pipeline
//! appends to them, from a saved position.
//!
//! The position is (segment file name, byte offset after the last complete line), not a seq: the
//! sink's files are append-only, but the seqs in them need not be increasing (a dead-letter
//! redrive appends old seqs), so "resume after seq N" could skip a record while a file position
//! cannot. Only complete lines are consumed: an unterminated tail is a line the pipeline is still
//! writing (or a torn write its recovery truncates), so the reader steps back to its start and
//! reads it again later.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::MediaError;

/// A read position in the segment files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// File name of the segment (`seg-….ndjson`).
    pub segment: String,
    /// Byte offset just after the last consumed line.
    pub offset: u64,
}

/// One complete line and the position after it.
#[derive(Debug)]
pub struct TailLine {
    pub bytes: Vec<u8>,
    pub end: Position,
}

struct Open {
    name: String,
    reader: BufReader<File>,
    offset: u64,
}

/// Reads complete lines of the segments in `dir`, in file order, from a position on.
pub struct TailReader {
    dir: PathBuf,
    /// Resume point while no segment is open.
    after: Option<Position>,
    current: Option<Open>,
}

impl TailReader {
    /// A reader that starts after `position` (or at the beginning of the first segment).
    pub fn new(dir: &Path, position: Option<Position>) -> Self {
        TailReader {
            dir: dir.to_path_buf(),
            after: position,
            current: None,
        }
    }

    /// Up to `max` complete lines; empty when there is nothing new right now. Blocking I/O.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<TailLine>, MediaError> {
        let mut out = Vec::new();
        while out.len() < max {
            if self.current.is_none() && !self.open_next()? {
                break;
            }
            let Some(cur) = self.current.as_mut() else {
                break;
            };
            let mut buf = Vec::new();
            let n = cur
                .reader
                .read_until(b'\n', &mut buf)
                .map_err(MediaError::io(self.dir.join(&cur.name)))?;
            if n > 0 && buf.last() == Some(&b'\n') {
                cur.offset += n as u64;
                buf.pop();
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                out.push(TailLine {
                    bytes: buf,
                    end: Position {
                        segment: cur.name.clone(),
                        offset: cur.offset,
                    },
                });
                continue;
            }
            // End of what is on disk now (possibly with an unterminated fragment): step back to
            // the line start, and move to the next segment only if one exists and this one has
            // no more complete line (the sink finishes a segment before it creates the next).
            let offset = cur.offset;
            cur.reader
                .seek(SeekFrom::Start(offset))
                .map_err(MediaError::io(self.dir.join(&cur.name)))?;
            let name = cur.name.clone();
            if n > 0 {
                break;
            }
            let Some(next) = self.next_segment_after(&name)? else {
                break;
            };
            // A newer segment exists: re-read this one once more for lines appended in between.
            let mut probe = Vec::new();
            let cur = self.current.as_mut().expect("open");
            let m = cur
                .reader
                .read_until(b'\n', &mut probe)
                .map_err(MediaError::io(self.dir.join(&name)))?;
            cur.reader
                .seek(SeekFrom::Start(offset))
                .map_err(MediaError::io(self.dir.join(&name)))?;
            if m == 0 {
                self.after = Some(Position {
                    segment: next,
                    offset: 0,
                });
                self.current = None;
            } else if probe.last() != Some(&b'\n') {
                return Err(MediaError::State {
                    path: self.dir.join(&name),
                    reason: format!(
                        "unterminated line at offset {offset} in a segment that is not the last"
                    ),
                });
            }
        }
        Ok(out)
    }

    /// Opens the segment to read next. False when there is none yet.
    fn open_next(&mut self) -> Result<bool, MediaError> {
        let (name, offset) = match &self.after {
            Some(p) if self.dir.join(&p.segment).is_file() => {
                let len = std::fs::metadata(self.dir.join(&p.segment))
                    .map_err(MediaError::io(self.dir.join(&p.segment)))?
                    .len();
                if p.offset > len {
                    return Err(MediaError::State {
                        path: self.dir.join(&p.segment),
                        reason: format!(
                            "saved media position {} is past the end of the segment ({len} bytes)",
                            p.offset
                        ),
                    });
                }
                (p.segment.clone(), p.offset)
            }
            Some(p) => match self.next_segment_after(&p.segment)? {
                Some(n) => (n, 0),
                None => return Ok(false),
            },
            None => match self.segments()?.into_iter().next() {
                Some(n) => (n, 0),
                None => return Ok(false),
            },
        };
        let path = self.dir.join(&name);
        let mut file = File::open(&path).map_err(MediaError::io(&path))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(MediaError::io(&path))?;
        self.current = Some(Open {
            name,
            reader: BufReader::with_capacity(64 * 1024, file),
            offset,
        });
        Ok(true)
    }

    fn segments(&self) -> Result<Vec<String>, MediaError> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        Ok(wecom_store::list_segments(&self.dir)?
            .into_iter()
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect())
    }

    /// The first segment whose name sorts after `name` (zero-padded names sort in seq order).
    fn next_segment_after(&self, name: &str) -> Result<Option<String>, MediaError> {
        Ok(self.segments()?.into_iter().find(|n| n.as_str() > name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(dir: &Path, seg: u64, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("seg-{seg:020}.ndjson")))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn texts(lines: &[TailLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8(l.bytes.clone()).unwrap())
            .collect()
    }

    #[test]
    fn follows_appends_fragments_and_new_segments() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut r = TailReader::new(d, None);
        assert!(r.next_batch(10).unwrap().is_empty());
        append(d, 1, "a\nb\nc");
        assert_eq!(texts(&r.next_batch(10).unwrap()), ["a", "b"]);
        assert!(r.next_batch(10).unwrap().is_empty());
        append(d, 1, "c\nd\n");
        let got = r.next_batch(1).unwrap();
        assert_eq!(texts(&got), ["cc"]);
        append(d, 5, "e\n");
        let got = r.next_batch(10).unwrap();
        assert_eq!(texts(&got), ["d", "e"]);
        let last = got.last().unwrap().end.clone();
        assert_eq!(last.segment, "seg-00000000000000000005.ndjson");
        assert_eq!(last.offset, 2);

        // Resume from a saved position.
        let mid = Position {
            segment: "seg-00000000000000000001.ndjson".into(),
            offset: 4,
        };
        let mut r2 = TailReader::new(d, Some(mid));
        assert_eq!(texts(&r2.next_batch(10).unwrap()), ["cc", "d", "e"]);
        let mut r3 = TailReader::new(d, Some(last));
        assert!(r3.next_batch(10).unwrap().is_empty());
        append(d, 9, "f\n");
        assert_eq!(texts(&r3.next_batch(10).unwrap()), ["f"]);
    }
}
