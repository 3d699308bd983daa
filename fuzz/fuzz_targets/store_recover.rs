//! A sink directory as a crash (or a damaged disk) may leave it: `messages/` and `deadletter/`
//! segment files and `deadletter/resolved.ndjson` holding arbitrary lines and torn tails, read back
//! by `wecom_store::LocalSink::recover` and `wecom_store::read_lines`.
//!
//! Checks that recovery never panics and, when it succeeds,
//! - cuts exactly the torn tail of the newest segment of each directory and of `resolved.ndjson`
//!   (removing a newest segment left empty), reports those bytes, and changes nothing else;
//! - reports only seqs past the cursor that some line on disk carries;
//! - is idempotent: a second recovery finds the same seqs, cuts nothing and changes no file;
//! - leaves `read_lines` yielding every complete line in order;
//! - lets the exactly-once protocol continue: a batch written after it is reported present by the
//!   next recovery and read back as the last line.
//!
//! When recovery fails, a second attempt fails the same way.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wecom_archive_fuzz::{fresh_scratch_dir, snapshot};
use wecom_store::{read_lines, LineKind, LocalSink, OutputLine, SinkOptions};

/// Starts a file in the input; followed by `m <first seq>` (a segment of `messages/`), `d <first
/// seq>` (of `deadletter/`) or `r` (`deadletter/resolved.ndjson`), then the file's bytes.
const MARKER: &[u8] = b"\xff\xfe";

/// The input, in a byte format that real files can seed (see `docs/fuzzing.md`):
/// `<cursor seq byte> <segment_max_bytes byte>` then files, each `MARKER tag [first] bytes…`.
#[derive(Debug, Default)]
struct Input {
    after_seq: u64,
    segment_max_bytes: u64,
    messages: Vec<(u64, Vec<u8>)>,
    deadletter: Vec<(u64, Vec<u8>)>,
    resolved: Option<Vec<u8>>,
}

/// Mostly small seqs, so that names, lines and the cursor meet; a few near `u64::MAX`.
fn seq(b: u8) -> u64 {
    match b {
        250..=255 => u64::MAX - u64::from(255 - b),
        n => u64::from(n),
    }
}

fn split_marker(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(MARKER.len()).position(|w| w == MARKER) {
        parts.push(&rest[..at]);
        rest = &rest[at + MARKER.len()..];
    }
    parts.push(rest);
    parts
}

impl Input {
    fn parse(data: &[u8]) -> Option<Input> {
        let parts = split_marker(data);
        let (head, files) = parts.split_first()?;
        let &[after, max, ..] = *head else {
            return None;
        };
        let mut input = Input {
            after_seq: seq(after),
            segment_max_bytes: u64::from(max.max(1)),
            ..Input::default()
        };
        for file in files {
            match file {
                [b'm', first, bytes @ ..] => input.messages.push((seq(*first), bytes.to_vec())),
                [b'd', first, bytes @ ..] => input.deadletter.push((seq(*first), bytes.to_vec())),
                [b'r', bytes @ ..] => input.resolved = Some(bytes.to_vec()),
                _ => {}
            }
        }
        Some(input)
    }
}

fn segment_name(first: u64) -> String {
    format!("seg-{first:020}.ndjson")
}

/// Writes the segments of one directory; returns their contents by first seq (a repeated first
/// seq keeps the last body, as the file is overwritten).
fn write_dir(dir: &Path, segments: &[(u64, Vec<u8>)]) -> BTreeMap<u64, Vec<u8>> {
    std::fs::create_dir_all(dir).expect("scratch dir");
    let mut files = BTreeMap::new();
    for (first, bytes) in segments {
        std::fs::write(dir.join(segment_name(*first)), bytes).expect("scratch file");
        files.insert(*first, bytes.clone());
    }
    files
}

/// Length of the complete lines of `bytes`.
fn complete_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

/// The newline-terminated lines of `bytes`, without their newline.
fn complete_lines(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let end = rest.iter().position(|&b| b == b'\n')?;
        let line = rest[..end].to_vec();
        rest = &rest[end + 1..];
        Some(line)
    })
}

/// What recovery must leave of one directory: the newest segment cut to its complete lines, and
/// removed if none. Returns the torn bytes.
fn expect_recovered(files: &mut BTreeMap<u64, Vec<u8>>) -> u64 {
    let Some(mut newest) = files.last_entry() else {
        return 0;
    };
    let keep = complete_len(newest.get());
    let torn = newest.get().len() - keep;
    newest.get_mut().truncate(keep);
    if keep == 0 {
        newest.remove();
    }
    torn as u64
}

/// The `seq` of every line that has one, in any file of `files`.
fn seqs_on_disk(files: &BTreeMap<u64, Vec<u8>>) -> BTreeSet<u64> {
    files
        .values()
        .flat_map(|bytes| complete_lines(bytes))
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(&line).ok())
        .filter_map(|v| v.get("seq").and_then(serde_json::Value::as_u64))
        .collect()
}

fn dir_files(dir: &Path) -> BTreeMap<u64, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("sink dir lists")
        .map(|e| e.expect("sink dir entry").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let first = name
                .strip_prefix("seg-")?
                .strip_suffix(".ndjson")?
                .parse()
                .ok()?;
            Some((first, std::fs::read(&path).expect("segment reads")))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let root = fresh_scratch_dir("store_recover");
    let mut messages = write_dir(&root.join("messages"), &input.messages);
    let mut deadletter = write_dir(&root.join("deadletter"), &input.deadletter);
    let mut resolved = input.resolved.clone();
    if let Some(bytes) = &resolved {
        std::fs::write(root.join("deadletter/resolved.ndjson"), bytes).expect("scratch file");
    }
    let after = input.after_seq;
    let opts = SinkOptions {
        segment_max_bytes: input.segment_max_bytes,
        fsync: false,
    };

    let mut sink = LocalSink::open(&root, opts.clone()).expect("sink opens");
    let first = match sink.recover(after) {
        Ok(report) => report,
        Err(err) => {
            let mut again = LocalSink::open(&root, opts).expect("sink opens");
            match again.recover(after) {
                Ok(_) => panic!("recovery failed ({err}), then succeeded"),
                Err(err2) => assert_eq!(err.to_string(), err2.to_string()),
            }
            return;
        }
    };

    // Exactly the torn tails were cut.
    let mut torn = expect_recovered(&mut messages) + expect_recovered(&mut deadletter);
    if let Some(bytes) = &mut resolved {
        let keep = complete_len(bytes);
        torn += (bytes.len() - keep) as u64;
        bytes.truncate(keep);
    }
    assert_eq!(first.truncated_bytes, torn, "reported cut bytes");
    assert_eq!(
        dir_files(sink.messages_dir()),
        messages,
        "messages/ after recovery"
    );
    assert_eq!(
        dir_files(sink.deadletter_dir()),
        deadletter,
        "deadletter/ after recovery"
    );
    if let Some(bytes) = &resolved {
        let on_disk = std::fs::read(root.join("deadletter/resolved.ndjson")).expect("reads");
        assert_eq!(&on_disk, bytes, "resolved.ndjson after recovery");
    }

    // Only seqs past the cursor that are on disk.
    let mut on_disk = seqs_on_disk(&messages);
    on_disk.extend(seqs_on_disk(&deadletter));
    assert!(
        first.present.iter().all(|s| *s > after),
        "a seq at or before the cursor"
    );
    assert!(
        first.present.is_subset(&on_disk),
        "a seq that no line carries"
    );
    assert_eq!(first.max_seq, first.present.last().copied());

    // Idempotent.
    let before = snapshot(&root);
    let mut again = LocalSink::open(&root, opts.clone()).expect("sink opens");
    let second = again
        .recover(after)
        .expect("a recovered sink recovers again");
    assert_eq!(
        second.present, first.present,
        "second recovery found other seqs"
    );
    assert_eq!(second.truncated_bytes, 0, "second recovery cut bytes");
    assert_eq!(snapshot(&root), before, "second recovery changed files");

    // read_lines yields the complete lines in order, or stops at an unterminated line in a
    // segment that is not the newest.
    let newest = messages.keys().next_back().copied();
    let mut want: Vec<Vec<u8>> = Vec::new();
    let mut want_error = false;
    for (first_seq, bytes) in &messages {
        let keep = complete_len(bytes);
        want.extend(complete_lines(&bytes[..keep]));
        if keep != bytes.len() && Some(*first_seq) != newest {
            want_error = true;
            break;
        }
    }
    let mut got = Vec::new();
    let mut got_error = false;
    for line in read_lines(sink.messages_dir()).expect("messages/ lists") {
        match line {
            Ok(line) => got.push(line),
            Err(_) => {
                got_error = true;
                break;
            }
        }
    }
    assert_eq!(got, want, "read_lines lines");
    assert_eq!(got_error, want_error, "read_lines error");

    // The protocol continues: write the next seq, recover, find it.
    let Some(next) = first.max_seq.unwrap_or(after).max(after).checked_add(1) else {
        return;
    };
    let json = format!("{{\"seq\":{next}}}").into_bytes();
    sink.write_batch(&[OutputLine {
        kind: LineKind::Record,
        seq: next,
        json: json.clone(),
    }])
    .expect("a recovered sink writes");
    let mut third = LocalSink::open(&root, opts).expect("sink opens");
    let report = third.recover(after).expect("recovery after a write");
    assert!(report.present.contains(&next), "written seq not found");
    assert_eq!(
        report.truncated_bytes, 0,
        "recovery after a clean write cut bytes"
    );
    if !want_error {
        let last = read_lines(third.messages_dir())
            .expect("messages/ lists")
            .last()
            .expect("a line was written")
            .expect("the last line reads");
        assert_eq!(last, json, "written line is not the last");
    }
});
