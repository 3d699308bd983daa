//! Tailing the record segments (`<stream>/messages/seg-<first seq>.ndjson`) while the pipeline
//! appends to them, from a saved position.
//!
//! The position is (segment file name, byte offset after the last complete line), not a seq: the
//! sink's files are append-only, but the seqs in them need not be increasing (a dead-letter
//! redrive appends old seqs), so "resume after seq N" could skip a record while a file position
//! cannot. Only complete lines are consumed: an unterminated tail is a line the pipeline is still
//! writing (or a torn write its recovery truncates), so the reader steps back to its start and
//! reads it again later.
//!
//! **A segment can be replaced under the reader.** The sink's crash recovery deletes a newest
//! segment that holds no complete line, then appends to the segment before it and later creates
//! the newest one again, under the same name or another. The reader holds the file open, so it
//! would go on reading the deleted file and never see the new one. At the end of what it can read
//! it therefore compares the open file with what the segment's name points to now: when the
//! segment was deleted, replaced (another file) or cut shorter than the reader's offset before
//! anything of it was read, reading goes back to the end of the last line consumed, which is
//! where the sink appends next; a replaced or shortened segment that lines were already read from
//! is reopened at the same offset, or at its last line end when it is now shorter.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
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
    /// (device, inode) of the open file, to notice when the name points to another file.
    id: (u64, u64),
}

/// What the segment's name points to now, compared with the open file.
#[derive(Debug, PartialEq, Eq)]
enum Segment {
    /// The open file, at least as long as the offset read.
    Same,
    /// Deleted, replaced by another file, or cut below the offset read.
    Changed,
}

/// Reads complete lines of the segments in `dir`, in file order, from a position on.
pub struct TailReader {
    dir: PathBuf,
    /// Resume point while no segment is open.
    after: Option<Position>,
    current: Option<Open>,
    /// The end of the last line consumed from a segment before the open one (or the position the
    /// reader started from): where reading resumes when the open segment is found replaced before
    /// anything of it was read.
    consumed: Option<Position>,
}

impl TailReader {
    /// A reader that starts after `position` (or at the beginning of the first segment).
    pub fn new(dir: &Path, position: Option<Position>) -> Self {
        TailReader {
            dir: dir.to_path_buf(),
            after: position.clone(),
            current: None,
            consumed: position,
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
            let name = cur.name.clone();
            cur.reader
                .seek(SeekFrom::Start(offset))
                .map_err(MediaError::io(self.dir.join(&name)))?;
            if self.segment_now()? == Segment::Changed {
                self.reopen_changed();
                continue;
            }
            if n > 0 {
                break;
            }
            let Some(next) = self.next_segment_after(&name)? else {
                break;
            };
            // A newer segment exists: re-read this one once more for lines appended in between.
            let mut probe = Vec::new();
            let Some(cur) = self.current.as_mut() else {
                break;
            };
            let m = cur
                .reader
                .read_until(b'\n', &mut probe)
                .map_err(MediaError::io(self.dir.join(&name)))?;
            cur.reader
                .seek(SeekFrom::Start(offset))
                .map_err(MediaError::io(self.dir.join(&name)))?;
            if m == 0 {
                if offset > 0 {
                    self.consumed = Some(Position {
                        segment: name,
                        offset,
                    });
                }
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

    /// Compares the open segment with what its name points to now.
    fn segment_now(&self) -> Result<Segment, MediaError> {
        let Some(cur) = &self.current else {
            return Ok(Segment::Same);
        };
        let path = self.dir.join(&cur.name);
        match std::fs::metadata(&path) {
            Ok(m) if (m.dev(), m.ino()) == cur.id && m.len() >= cur.offset => Ok(Segment::Same),
            Ok(_) => Ok(Segment::Changed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Segment::Changed),
            Err(e) => Err(MediaError::Io { path, source: e }),
        }
    }

    /// The open segment was deleted, replaced or cut: close it and choose where to go on.
    fn reopen_changed(&mut self) {
        let Some(cur) = self.current.take() else {
            return;
        };
        if cur.offset == 0 {
            // Nothing of it was read (the sink's recovery removed it while it was empty): the
            // sink appends next after the last line consumed, in an older segment or a new one.
            tracing::debug!(segment = %cur.name, "media tail: empty segment replaced, going back to the last line read");
            self.after = self.consumed.clone();
        } else {
            // Lines of it were read: the sink never removes a complete line, so this is a copy
            // (same prefix) or a cut (see `open_next`); a deleted one is simply left behind.
            tracing::warn!(
                segment = %self.dir.join(&cur.name).display(),
                offset = cur.offset,
                "media tail: a segment being read was replaced, deleted or truncated; reopening it"
            );
            self.after = Some(Position {
                segment: cur.name,
                offset: cur.offset,
            });
        }
    }

    /// Opens the segment to read next. False when there is none yet.
    fn open_next(&mut self) -> Result<bool, MediaError> {
        let (name, offset) = match &self.after {
            Some(p) if self.dir.join(&p.segment).is_file() => (p.segment.clone(), p.offset),
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
        let mut file = match File::open(&path) {
            Ok(f) => f,
            // deleted since it was listed: look again next time
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(MediaError::Io { path, source: e }),
        };
        let meta = file.metadata().map_err(MediaError::io(&path))?;
        let mut offset = offset;
        if offset > meta.len() {
            // Shorter than the position: cut (or replaced) after its lines were read. What is
            // left was read already; go on from its last complete line, where appends continue.
            let end = last_line_end(&mut file, meta.len()).map_err(MediaError::io(&path))?;
            tracing::warn!(
                segment = %path.display(),
                position = offset,
                len = meta.len(),
                resume_at = end,
                "media tail: the segment is shorter than the media position; reading on from its last complete line"
            );
            offset = end;
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(MediaError::io(&path))?;
        self.current = Some(Open {
            name,
            reader: BufReader::with_capacity(64 * 1024, file),
            offset,
            id: (meta.dev(), meta.ino()),
        });
        Ok(true)
    }

    fn segments(&self) -> Result<Vec<String>, MediaError> {
        segment_names(&self.dir)
    }

    /// The first segment whose name sorts after `name` (zero-padded names sort in seq order).
    fn next_segment_after(&self, name: &str) -> Result<Option<String>, MediaError> {
        Ok(self.segments()?.into_iter().find(|n| n.as_str() > name))
    }
}

fn segment_names(dir: &Path) -> Result<Vec<String>, MediaError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    Ok(wecom_store::list_segments(dir)?
        .into_iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect())
}

/// Bytes of the segments in `dir` after `position` (all of them without one): how much the
/// pipeline wrote that the worker has not read yet. Blocking I/O.
pub(crate) fn unread_bytes(dir: &Path, position: Option<&Position>) -> Result<u64, MediaError> {
    let mut total = 0u64;
    for name in segment_names(dir)? {
        let skip = match position {
            Some(p) if name.as_str() < p.segment.as_str() => continue,
            Some(p) if name == p.segment => p.offset,
            _ => 0,
        };
        let path = dir.join(&name);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(MediaError::Io { path, source: e }),
        };
        total += len.saturating_sub(skip);
    }
    Ok(total)
}

/// The offset just after the last `\n` in the first `len` bytes of `file` (0 when there is none).
fn last_line_end(file: &mut File, len: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
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

    fn seg(dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("seg-{n:020}.ndjson"))
    }

    /// Reads until two reads in a row bring nothing.
    fn drain(r: &mut TailReader) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let got = texts(&r.next_batch(3).unwrap());
            if got.is_empty() {
                let again = texts(&r.next_batch(3).unwrap());
                if again.is_empty() {
                    return out;
                }
                out.extend(again);
            } else {
                out.extend(got);
            }
        }
    }

    /// The sink's recovery deleted the only segment while the reader had it open (empty), then
    /// created it again with records: every record is seen once.
    #[test]
    fn a_deleted_and_recreated_segment_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::File::create(seg(d, 1)).unwrap();
        let mut r = TailReader::new(d, None);
        assert!(r.next_batch(10).unwrap().is_empty());
        std::fs::remove_file(seg(d, 1)).unwrap();
        assert!(r.next_batch(10).unwrap().is_empty());
        append(d, 1, "a\nb\n");
        assert_eq!(drain(&mut r), ["a", "b"]);
        append(d, 1, "c\n");
        assert_eq!(drain(&mut r), ["c"]);
    }

    /// The newest segment, empty and open in the reader, is deleted by recovery; the sink then
    /// appends to the segment before it and later creates the newest one again.
    #[test]
    fn records_appended_to_the_previous_segment_after_a_deletion_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(d, 1, "a\nb\n");
        std::fs::File::create(seg(d, 3)).unwrap();
        let mut r = TailReader::new(d, None);
        assert_eq!(drain(&mut r), ["a", "b"]);
        // the reader now has seg 3 open, at offset 0
        std::fs::remove_file(seg(d, 3)).unwrap();
        append(d, 1, "c\n");
        assert_eq!(drain(&mut r), ["c"]);
        append(d, 1, "d\n");
        append(d, 3, "e\n");
        assert_eq!(drain(&mut r), ["d", "e"]);
        // and the same again when the newest is recreated before the reader looks
        std::fs::File::create(seg(d, 5)).unwrap();
        assert!(drain(&mut r).is_empty());
        std::fs::remove_file(seg(d, 5)).unwrap();
        append(d, 3, "f\n");
        append(d, 5, "g\n");
        assert_eq!(drain(&mut r), ["f", "g"]);
    }

    /// A segment replaced by a shorter file (or cut) after some lines were read: reading goes on
    /// from its last line end, so new lines are not skipped.
    #[test]
    fn a_segment_cut_below_the_position_is_read_on_from_its_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(d, 1, "aaaa\nbbbb\ncccc\n");
        let mut r = TailReader::new(d, None);
        assert_eq!(drain(&mut r), ["aaaa", "bbbb", "cccc"]);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(seg(d, 1))
            .unwrap();
        f.set_len(7).unwrap(); // "aaaa\nbb"
        drop(f);
        assert!(drain(&mut r).is_empty());
        std::fs::OpenOptions::new()
            .write(true)
            .open(seg(d, 1))
            .unwrap()
            .set_len(5)
            .unwrap();
        append(d, 1, "d\n");
        assert_eq!(drain(&mut r), ["d"]);

        // A saved position past the end of its segment (restart after such a cut).
        let saved = Position {
            segment: "seg-00000000000000000001.ndjson".into(),
            offset: 100,
        };
        let mut r2 = TailReader::new(d, Some(saved));
        assert!(drain(&mut r2).is_empty());
        append(d, 1, "e\n");
        assert_eq!(drain(&mut r2), ["e"]);
    }

    #[test]
    fn unread_bytes_counts_what_is_after_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        append(d, 1, "aaaa\nbbbb\n");
        append(d, 3, "cc\n");
        assert_eq!(unread_bytes(d, None).unwrap(), 13);
        let p = Position {
            segment: "seg-00000000000000000001.ndjson".into(),
            offset: 5,
        };
        assert_eq!(unread_bytes(d, Some(&p)).unwrap(), 8);
        let p = Position {
            segment: "seg-00000000000000000003.ndjson".into(),
            offset: 3,
        };
        assert_eq!(unread_bytes(d, Some(&p)).unwrap(), 0);
    }
}
