//! The redrive intent: exactly once for records written out of the live seq order.
//!
//! `redrive` writes records of old seqs (at or below the cursor) after the outputs' live tail, so neither
//! the local recovery (it looks past the cursor) nor Kafka's backward scan can tell, after a crash, whether
//! they landed. Before writing, redrive stores an intent in the stream directory
//! (`deadletter/redrive-intent.json`): the seqs it is about to write and where every output ended (the
//! newest record segment and its length; each Kafka partition's end offset). It writes, marks the seqs
//! resolved, then removes the intent. A redrive that finds an intent left behind reads each output from the
//! saved position on ([`local_since`], `KafkaSink::published_since`) and skips what is already there. A new
//! redrive on top of a leftover intent keeps the intent's (earlier) positions, so a second crash is covered
//! too; the positions move on only when an intent is removed after every output and the resolved mark.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wecom_kafka::EndOffsets;
use wecom_store::{StoreError, StreamLayout};

const INTENT_FILE: &str = "redrive-intent.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Intent {
    /// The dead-letter seqs being redriven.
    pub seqs: BTreeSet<u64>,
    /// Where the local record files ended: `(first seq of the newest segment, its length)`; `None`: there
    /// was no segment.
    pub local_end: Option<(u64, u64)>,
    /// Where the Kafka messages topic ended; `None` without Kafka.
    pub kafka_end: Option<EndOffsets>,
}

pub(crate) fn path(layout: &StreamLayout) -> PathBuf {
    layout.deadletter_dir().join(INTENT_FILE)
}

/// The intent a crashed redrive left, if any.
pub(crate) fn load(layout: &StreamLayout) -> Result<Option<Intent>, StoreError> {
    let p = path(layout);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: p.clone(),
                line: 1,
                reason: format!("unreadable redrive intent ({e}); if no redrive is running, delete it and check the record outputs for the listed seqs by hand"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&p)(e)),
    }
}

/// Stores `intent` durably (written to a temporary file, fsynced, renamed).
pub(crate) fn store(layout: &StreamLayout, intent: &Intent) -> Result<(), StoreError> {
    std::fs::create_dir_all(layout.deadletter_dir()).map_err(io_err(&layout.deadletter_dir()))?;
    let json = serde_json::to_vec(intent).map_err(|e| StoreError::Corrupt {
        path: path(layout),
        line: 1,
        reason: format!("serialize the redrive intent: {e}"),
    })?;
    wecom_store::atomic_write(&path(layout), &json, true)
}

pub(crate) fn remove(layout: &StreamLayout) -> Result<(), StoreError> {
    let p = path(layout);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&p)(e)),
    }
}

/// Where the record segments end now: the newest segment's first seq and length.
pub(crate) fn local_end(messages_dir: &Path) -> Result<Option<(u64, u64)>, StoreError> {
    let Some(newest) = segments(messages_dir)?.pop() else {
        return Ok(None);
    };
    let len = std::fs::metadata(&newest.1)
        .map_err(io_err(&newest.1))?
        .len();
    Ok(Some((newest.0, len)))
}

/// Which of `candidates` are record lines written at or after `end` (from [`local_end`]).
pub(crate) fn local_since(
    messages_dir: &Path,
    end: Option<(u64, u64)>,
    candidates: &BTreeSet<u64>,
) -> Result<BTreeSet<u64>, StoreError> {
    #[derive(Deserialize)]
    struct SeqOnly {
        seq: u64,
    }
    let mut found = BTreeSet::new();
    for (first, seg) in segments(messages_dir)? {
        let from = match end {
            Some((end_first, _)) if first < end_first => continue,
            Some((end_first, len)) if first == end_first => len,
            _ => 0,
        };
        let mut file = std::fs::File::open(&seg).map_err(io_err(&seg))?;
        file.seek(SeekFrom::Start(from)).map_err(io_err(&seg))?;
        for line in BufReader::new(file).split(b'\n') {
            let line = line.map_err(io_err(&seg))?;
            // The sink's recovery already cut a torn last line; anything unparsable here is not ours.
            if let Ok(s) = serde_json::from_slice::<SeqOnly>(&line) {
                if candidates.contains(&s.seq) {
                    found.insert(s.seq);
                }
            }
        }
    }
    Ok(found)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, source }
}

/// `(first seq, path)` of every record segment, in name order (names increase with every new segment).
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    Ok(wecom_store::list_segments(dir)?
        .into_iter()
        .filter_map(|p| {
            let first = p
                .file_name()?
                .to_str()?
                .strip_prefix("seg-")?
                .strip_suffix(".ndjson")?
                .parse()
                .ok()?;
            Some((first, p))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_lines_written_after_the_saved_end() {
        let dir = tempfile::tempdir().unwrap();
        let seg = |first: u64, lines: &[u64]| {
            let body: String = lines.iter().map(|s| format!("{{\"seq\":{s}}}\n")).collect();
            std::fs::write(dir.path().join(format!("seg-{first:020}.ndjson")), body).unwrap();
        };
        seg(1, &[1, 2, 3]);
        let end = local_end(dir.path()).unwrap();
        // a redrive appends seq 2 to the newest segment, then rotates into a new one with seq 3
        let newest = dir.path().join(format!("seg-{:020}.ndjson", 1));
        let mut body = std::fs::read_to_string(&newest).unwrap();
        body.push_str("{\"seq\":2}\n");
        std::fs::write(&newest, body).unwrap();
        seg(4, &[3]);
        let all: BTreeSet<u64> = [1, 2, 3, 9].into();
        assert_eq!(local_since(dir.path(), end, &all).unwrap(), [2, 3].into());
        // without a saved end every segment counts
        assert_eq!(
            local_since(dir.path(), None, &all).unwrap(),
            [1, 2, 3].into()
        );
    }
}
