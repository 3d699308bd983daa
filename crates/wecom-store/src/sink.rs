//! `LocalSink`: the embedded default sink. Records and dead letters are appended to NDJSON
//! segment files under `messages/` and `deadletter/`, each batch fsynced before `write_batch`
//! returns, and `recover` repairs whatever a crash left behind.
//!
//! Why recovery needs the `present` set and not just a max seq: one batch is split over two
//! files, so a crash can leave the records of a batch on disk and its dead letters not (or the
//! other way round). Within one directory lines are appended in order, so what survives there
//! is always a prefix of what was written.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tracing::debug;

use crate::recover::{recover_dir, scan_lines, truncate};
use crate::segment::{fsync_dir, list_numbered, segment_file_name};
use crate::{StoreError, StreamLayout};

pub(crate) const WRITE_BUFFER: usize = 64 * 1024;

/// Which file an output line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    Record,
    DeadLetter,
}

/// One line of sink output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub kind: LineKind,
    /// Must equal the `seq` field inside `json`: recovery reads the field, not this value.
    pub seq: u64,
    /// One JSON object without a trailing newline (compact serde_json output never has one).
    pub json: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOptions {
    /// A segment is closed when the next line would take it past this size. A single line
    /// larger than this gets a segment of its own.
    pub segment_max_bytes: u64,
    /// Off only for tests and benchmarks: without fsync a power loss can lose acknowledged
    /// batches (a process crash cannot, the page cache survives it).
    pub fsync: bool,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            segment_max_bytes: 64 * 1024 * 1024,
            fsync: true,
        }
    }
}

/// What `LocalSink::recover` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Seqs greater than the recovery cursor that are already on disk, in either directory.
    pub present: BTreeSet<u64>,
    /// Of `present`, the seqs that are records (`messages/`): the pipeline must not write these again.
    pub records: BTreeSet<u64>,
    /// Of `present`, the seqs that are dead letters (`deadletter/`). A seq can be in both sets: its
    /// dead letter was written, then (after the missing key was added and the page fetched again) its
    /// record.
    pub dead_letters: BTreeSet<u64>,
    /// Bytes of torn (unterminated) tails that were cut, summed over all files.
    pub truncated_bytes: u64,
    /// The largest seq in `present`.
    pub max_seq: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct SeqField {
    pub(crate) seq: u64,
}

struct OpenSegment {
    path: PathBuf,
    first: u64,
    size: u64,
    writer: BufWriter<File>,
}

/// The append side of one directory.
struct DirWriter {
    dir: PathBuf,
    current: Option<OpenSegment>,
    touched: bool,
}

impl DirWriter {
    fn new(dir: PathBuf) -> Self {
        DirWriter {
            dir,
            current: None,
            touched: false,
        }
    }

    /// Forgets the open segment without flushing its buffer: after an error the buffered bytes
    /// may belong to a batch the caller considers failed, and recovery decides what is on disk.
    fn discard(&mut self) {
        if let Some(seg) = self.current.take() {
            let _ = seg.writer.into_parts();
        }
        self.touched = false;
    }

    fn append(&mut self, line: &OutputLine, opts: &SinkOptions) -> Result<(), StoreError> {
        let len = line.json.len() as u64 + 1;
        if self.current.is_none() {
            self.open_last()?;
        }
        let needs_new = match &self.current {
            None => true,
            Some(seg) => seg.size > 0 && seg.size + len > opts.segment_max_bytes,
        };
        if needs_new {
            let first = match self.current.take() {
                // Names must stay increasing even if seqs are not (a redrive writes old seqs).
                Some(seg) => {
                    let next = line.seq.max(seg.first.saturating_add(1));
                    close_segment(seg, opts.fsync)?;
                    next
                }
                None => line.seq,
            };
            self.current = Some(self.create(first, opts.fsync)?);
        }
        let seg = self.current.as_mut().expect("segment opened above");
        let io = StoreError::io(&seg.path);
        seg.writer
            .write_all(&line.json)
            .and_then(|()| seg.writer.write_all(b"\n"))
            .map_err(io)?;
        seg.size += len;
        self.touched = true;
        Ok(())
    }

    /// Continues the newest existing segment, if any. Only called once the sink is recovered,
    /// so that segment ends with a complete line.
    fn open_last(&mut self) -> Result<(), StoreError> {
        let Some((first, path)) = list_numbered(&self.dir)?.pop() else {
            return Ok(());
        };
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        let size = file.metadata().map_err(StoreError::io(&path))?.len();
        self.current = Some(OpenSegment {
            path,
            first,
            size,
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
        });
        Ok(())
    }

    fn create(&self, first: u64, fsync: bool) -> Result<OpenSegment, StoreError> {
        let path = self.dir.join(segment_file_name(first));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        if fsync {
            fsync_dir(&self.dir)?;
        }
        debug!(path = %path.display(), "created segment");
        Ok(OpenSegment {
            path,
            first,
            size: 0,
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
        })
    }

    /// Flushes and fsyncs the open segment if this batch wrote to it.
    fn finish(&mut self, fsync: bool) -> Result<(), StoreError> {
        if !std::mem::take(&mut self.touched) {
            return Ok(());
        }
        if let Some(seg) = self.current.as_mut() {
            seg.writer.flush().map_err(StoreError::io(&seg.path))?;
            if fsync {
                seg.writer
                    .get_ref()
                    .sync_data()
                    .map_err(StoreError::io(&seg.path))?;
            }
        }
        Ok(())
    }
}

/// A full segment is made durable before the next one exists, so only the newest segment of a
/// directory can ever have a torn tail.
fn close_segment(seg: OpenSegment, fsync: bool) -> Result<(), StoreError> {
    let OpenSegment {
        path, mut writer, ..
    } = seg;
    writer.flush().map_err(StoreError::io(&path))?;
    if fsync {
        writer
            .get_ref()
            .sync_data()
            .map_err(StoreError::io(&path))?;
    }
    Ok(())
}

/// The embedded NDJSON sink. One writer per directory tree: two `LocalSink`s (or processes) on
/// the same `dir` corrupt each other, and nothing here detects it.
pub struct LocalSink {
    root: PathBuf,
    resolved: PathBuf,
    opts: SinkOptions,
    messages: DirWriter,
    deadletter: DirWriter,
    /// Writes are refused until `recover` has run, and again after any write error, because
    /// appending after a torn tail would bury the garbage in the middle of a file.
    recovered: bool,
}

impl std::fmt::Debug for LocalSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSink")
            .field("root", &self.root)
            .field("opts", &self.opts)
            .field("recovered", &self.recovered)
            .finish_non_exhaustive()
    }
}

impl LocalSink {
    /// Opens (creating if needed) the `messages/` and `deadletter/` directories of the stream directory
    /// `dir` ([`StreamLayout`]). Touches no segment: call [`LocalSink::recover`] before the first write.
    pub fn open(dir: &Path, opts: SinkOptions) -> Result<LocalSink, StoreError> {
        let layout = StreamLayout::at(dir, "");
        let (messages, deadletter) = (layout.messages_dir(), layout.deadletter_dir());
        for d in [&messages, &deadletter] {
            if !d.is_dir() {
                std::fs::create_dir_all(d).map_err(StoreError::io(d))?;
                if opts.fsync {
                    fsync_dir(dir)?;
                }
            }
        }
        Ok(LocalSink {
            resolved: layout.resolved_path(),
            root: dir.to_path_buf(),
            opts,
            messages: DirWriter::new(messages),
            deadletter: DirWriter::new(deadletter),
            recovered: false,
        })
    }

    pub fn messages_dir(&self) -> &Path {
        &self.messages.dir
    }

    pub fn deadletter_dir(&self) -> &Path {
        &self.deadletter.dir
    }

    fn resolved_path(&self) -> PathBuf {
        self.resolved.clone()
    }

    /// Repairs the directory after a crash and reports which seqs after `after_seq` (the
    /// committed cursor) are already written.
    ///
    /// Torn tails (bytes after the last newline of the newest segment, and of `resolved.ndjson`)
    /// are cut; every line of the segments that can hold seqs > `after_seq` is parsed, and a line
    /// that is not a JSON object with a numeric `seq` is a `Corrupt` error. The newest segments
    /// are fsynced, so a line reported present is durable even if the crash came before the
    /// writer's own fsync.
    pub fn recover(&mut self, after_seq: u64) -> Result<RecoveryReport, StoreError> {
        self.recovered = false;
        self.messages.discard();
        self.deadletter.discard();

        let mut report = RecoveryReport::default();
        for (dir, kind) in [
            (&self.messages.dir, LineKind::Record),
            (&self.deadletter.dir, LineKind::DeadLetter),
        ] {
            recover_dir(dir, after_seq, self.opts.fsync, &mut report, kind)?;
        }
        let resolved = self.resolved_path();
        if resolved.exists() {
            let (_, torn) = scan_lines(&resolved, true, |_| {})?;
            if let Some(valid_len) = torn {
                report.truncated_bytes += truncate(&resolved, valid_len, self.opts.fsync)?;
            }
        }
        report.max_seq = report.present.last().copied();
        self.recovered = true;
        Ok(report)
    }

    /// Appends the lines (records to `messages/`, dead letters to `deadletter/`) in order,
    /// rotating segments by size, and returns once both files are flushed and fsynced.
    ///
    /// The caller must already have dropped seqs that `recover` reported present. On error the
    /// batch may be partly on disk: the sink then refuses writes until `recover` runs again.
    pub fn write_batch(&mut self, lines: &[OutputLine]) -> Result<(), StoreError> {
        if !self.recovered {
            return Err(StoreError::NotRecovered {
                dir: self.root.clone(),
            });
        }
        for line in lines {
            validate(line)?;
        }
        let result = self.write_inner(lines);
        if result.is_err() {
            self.recovered = false;
            self.messages.discard();
            self.deadletter.discard();
        }
        result
    }

    fn write_inner(&mut self, lines: &[OutputLine]) -> Result<(), StoreError> {
        for line in lines {
            let dir = match line.kind {
                LineKind::Record => &mut self.messages,
                LineKind::DeadLetter => &mut self.deadletter,
            };
            dir.append(line, &self.opts)?;
        }
        self.messages.finish(self.opts.fsync)?;
        self.deadletter.finish(self.opts.fsync)?;
        Ok(())
    }

    /// Records that the dead letters with these seqs were redriven successfully (their output
    /// already went through `write_batch`). Appended to `deadletter/resolved.ndjson`, fsynced.
    pub fn append_resolved(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        if !self.recovered {
            return Err(StoreError::NotRecovered {
                dir: self.root.clone(),
            });
        }
        if seqs.is_empty() {
            return Ok(());
        }
        let path = self.resolved_path();
        let mut buf = Vec::with_capacity(seqs.len() * 24);
        for seq in seqs {
            buf.extend_from_slice(format!("{{\"seq\":{seq}}}\n").as_bytes());
        }
        let result = (|| {
            let existed = path.exists();
            let mut file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .map_err(StoreError::io(&path))?;
            file.write_all(&buf).map_err(StoreError::io(&path))?;
            if self.opts.fsync {
                file.sync_data().map_err(StoreError::io(&path))?;
                if !existed {
                    fsync_dir(&self.deadletter.dir)?;
                }
            }
            Ok(())
        })();
        if result.is_err() {
            self.recovered = false;
        }
        result
    }

    /// Dead-letter seqs recorded by [`LocalSink::append_resolved`]. An unterminated last line
    /// (a torn append) is ignored.
    pub fn resolved_seqs(&self) -> Result<BTreeSet<u64>, StoreError> {
        let path = self.resolved_path();
        let mut out = BTreeSet::new();
        if !path.exists() {
            return Ok(out);
        }
        scan_lines(&path, true, |seq| {
            out.insert(seq);
        })?;
        Ok(out)
    }
}

fn validate(line: &OutputLine) -> Result<(), StoreError> {
    if line.json.is_empty() {
        return Err(StoreError::InvalidLine {
            seq: line.seq,
            reason: "empty json",
        });
    }
    if line.json.contains(&b'\n') {
        return Err(StoreError::InvalidLine {
            seq: line.seq,
            reason: "json contains a newline",
        });
    }
    debug_assert_eq!(
        serde_json::from_slice::<SeqField>(&line.json)
            .ok()
            .map(|f| f.seq),
        Some(line.seq),
        "OutputLine::seq must equal the seq field of its json"
    );
    Ok(())
}
