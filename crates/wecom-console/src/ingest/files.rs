//! Tailing the pipeline's local record output: every live stream of the corp (`corp`, `room-<id>`), new
//! lines as they are appended, new segments as they are created, new room streams as they appear.
//!
//! A position is (segment file name, offset after the last complete line), not a seq: a redrive appends
//! old seqs, so "after seq N" could skip a record while a file position cannot. An unterminated last line
//! is a line the pipeline is still writing: it is read again once complete.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use wecom_store::StreamLayout;

use crate::error::ConsoleError;
use crate::index::FilePos;

/// One complete line and where it came from.
pub struct FileLine {
    pub stream_dir: String,
    pub bytes: Vec<u8>,
    pub end: FilePos,
}

struct Open {
    name: String,
    reader: BufReader<File>,
    offset: u64,
}

/// The tail of one stream's `messages/` directory.
struct StreamTail {
    dir: PathBuf,
    after: Option<FilePos>,
    current: Option<Open>,
}

impl StreamTail {
    fn segments(&self) -> Result<Vec<String>, ConsoleError> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        Ok(wecom_store::list_segments(&self.dir)
            .map_err(|e| ConsoleError::Source(format!("{}: {e}", self.dir.display())))?
            .into_iter()
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect())
    }

    fn next_after(&self, name: &str) -> Result<Option<String>, ConsoleError> {
        Ok(self.segments()?.into_iter().find(|n| n.as_str() > name))
    }

    fn open_next(&mut self) -> Result<bool, ConsoleError> {
        let (name, offset) = match &self.after {
            Some(p) if self.dir.join(&p.segment).is_file() => (p.segment.clone(), p.offset),
            Some(p) => match self.next_after(&p.segment)? {
                Some(n) => (n, 0),
                None => return Ok(false),
            },
            None => match self.segments()?.into_iter().next() {
                Some(n) => (n, 0),
                None => return Ok(false),
            },
        };
        let path = self.dir.join(&name);
        let mut file = File::open(&path).map_err(ConsoleError::io(&path))?;
        let len = file.metadata().map_err(ConsoleError::io(&path))?.len();
        if offset > len {
            return Err(ConsoleError::Source(format!(
                "{}: the console's position {offset} is past the end of the file ({len} bytes); \
                 delete the console index to rebuild it",
                path.display()
            )));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(ConsoleError::io(&path))?;
        self.current = Some(Open {
            name,
            reader: BufReader::with_capacity(256 * 1024, file),
            offset,
        });
        Ok(true)
    }

    /// Up to `max` complete lines; empty when nothing new is on disk.
    fn next_batch(&mut self, stream_dir: &str, max: usize) -> Result<Vec<FileLine>, ConsoleError> {
        let mut out = Vec::new();
        while out.len() < max {
            if self.current.is_none() && !self.open_next()? {
                break;
            }
            let Some(cur) = self.current.as_mut() else {
                break;
            };
            let path = self.dir.join(&cur.name);
            let mut buf = Vec::new();
            let n = cur
                .reader
                .read_until(b'\n', &mut buf)
                .map_err(ConsoleError::io(&path))?;
            if n > 0 && buf.last() == Some(&b'\n') {
                cur.offset += n as u64;
                buf.pop();
                let end = FilePos {
                    segment: cur.name.clone(),
                    offset: cur.offset,
                };
                self.after = Some(end.clone());
                if !buf.iter().all(u8::is_ascii_whitespace) {
                    out.push(FileLine {
                        stream_dir: stream_dir.to_owned(),
                        bytes: buf,
                        end,
                    });
                }
                continue;
            }
            // The end of what is on disk (maybe a line being written): step back to the line start.
            let (name, offset) = (cur.name.clone(), cur.offset);
            cur.reader
                .seek(SeekFrom::Start(offset))
                .map_err(ConsoleError::io(&path))?;
            if n > 0 {
                break;
            }
            let Some(next) = self.next_after(&name)? else {
                break;
            };
            let Some(cur) = self.current.as_mut() else {
                break;
            };
            // A newer segment exists, so this one is finished (the sink completes a segment before
            // starting the next); one more look for lines appended in between, then move on.
            let mut probe = Vec::new();
            let m = cur
                .reader
                .read_until(b'\n', &mut probe)
                .map_err(ConsoleError::io(&path))?;
            cur.reader
                .seek(SeekFrom::Start(offset))
                .map_err(ConsoleError::io(&path))?;
            if m == 0 {
                self.after = Some(FilePos {
                    segment: next,
                    offset: 0,
                });
                self.current = None;
            } else if probe.last() != Some(&b'\n') {
                return Err(ConsoleError::Source(format!(
                    "{}: unterminated line at offset {offset} in a segment that is not the last",
                    path.display()
                )));
            }
        }
        Ok(out)
    }
}

/// The live stream a directory under the corp's directory holds (`corp`, `room:<id>`), the inverse of
/// `wecom_store::layout::stream_dir_name`; `None` for replays and anything else.
fn live_stream(dir_name: &str) -> Option<String> {
    if dir_name == "corp" {
        return Some("corp".to_owned());
    }
    let room = dir_name.strip_prefix("room-")?;
    wecom_store::decode_component(room).map(|r| format!("room:{r}"))
}

/// Every live stream of a corp under the data directory.
pub struct FilesSource {
    corp_dir: PathBuf,
    tails: BTreeMap<String, StreamTail>,
}

impl FilesSource {
    /// Tails `<data_dir>/<corp>/…/messages`, each stream from its position in `positions` (by stream
    /// directory name) or from its beginning.
    pub fn new(
        data_dir: &Path,
        corp_id: &str,
        positions: &BTreeMap<String, FilePos>,
    ) -> Result<Self, ConsoleError> {
        let corp_dir = wecom_store::layout::corp_dir(data_dir, corp_id)
            .map_err(|e| ConsoleError::Source(format!("corp {corp_id}: {e}")))?;
        let mut s = FilesSource {
            corp_dir,
            tails: BTreeMap::new(),
        };
        for (name, pos) in positions {
            let Some(stream) = live_stream(name) else {
                continue;
            };
            s.tails.insert(
                name.clone(),
                StreamTail {
                    dir: StreamLayout::at(s.corp_dir.join(name), &stream).messages_dir(),
                    after: Some(pos.clone()),
                    current: None,
                },
            );
        }
        s.discover()?;
        Ok(s)
    }

    pub fn describe(&self) -> String {
        format!("local files under {}", self.corp_dir.display())
    }

    /// Looks for stream directories that appeared (a room backfill started).
    pub fn discover(&mut self) -> Result<(), ConsoleError> {
        let entries = match std::fs::read_dir(&self.corp_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ConsoleError::io(&self.corp_dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(ConsoleError::io(&self.corp_dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // Live streams only: replays have their own directories and repeat live records.
            let Some(stream) = live_stream(&name) else {
                continue;
            };
            let messages = StreamLayout::at(entry.path(), &stream).messages_dir();
            if messages.is_dir() && !self.tails.contains_key(&name) {
                self.tails.insert(
                    name,
                    StreamTail {
                        dir: messages,
                        after: None,
                        current: None,
                    },
                );
            }
        }
        Ok(())
    }

    /// Up to `max` new lines over all streams.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<FileLine>, ConsoleError> {
        let mut out = Vec::new();
        for (name, tail) in self.tails.iter_mut() {
            if out.len() >= max {
                break;
            }
            let room = max - out.len();
            out.extend(tail.next_batch(name, room)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(dir: &Path, seg: u64, text: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("seg-{seg:020}.ndjson")))
            .expect("open");
        f.write_all(text.as_bytes()).expect("write");
    }

    fn texts(lines: &[FileLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8(l.bytes.clone()).expect("utf8"))
            .collect()
    }

    #[test]
    fn follows_lines_segments_and_new_rooms_from_positions() {
        let data = tempfile::tempdir().expect("tempdir");
        let corp = data.path().join("ww1");
        let msgs = corp.join("corp/messages");
        let mut src = FilesSource::new(data.path(), "ww1", &BTreeMap::new()).expect("source");
        assert!(src.next_batch(10).expect("batch").is_empty());
        append(&msgs, 1, "a\nb\nc");
        src.discover().expect("discover");
        assert_eq!(texts(&src.next_batch(10).expect("batch")), ["a", "b"]);
        append(&msgs, 1, "c\n");
        append(&msgs, 9, "d\n");
        append(&corp.join("room-wr1/messages"), 1, "r\n");
        append(&corp.join("replays/x/corp/messages"), 1, "replayed\n");
        src.discover().expect("discover");
        let got = src.next_batch(10).expect("batch");
        assert_eq!(texts(&got), ["cc", "d", "r"]);
        let corp_end = got[1].end.clone();

        let mut positions = BTreeMap::new();
        positions.insert("corp".to_owned(), corp_end);
        let mut resumed = FilesSource::new(data.path(), "ww1", &positions).expect("source");
        assert_eq!(texts(&resumed.next_batch(10).expect("batch")), ["r"]);
        append(&msgs, 9, "e\n");
        assert_eq!(texts(&resumed.next_batch(10).expect("batch")), ["e"]);
    }
}
