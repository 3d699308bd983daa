//! LocalSink: layout, rotation, recovery of torn tails, the present set, redrive bookkeeping.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use wecom_store::{list_segments, LineKind, LocalSink, OutputLine, SinkOptions, StoreError};

use crate::common::{assert_exactly_once, json_of, kind_of, line, lines, read_all, seq_of};

fn opts(segment_max_bytes: u64) -> SinkOptions {
    SinkOptions {
        segment_max_bytes,
        fsync: true,
    }
}

fn open_recovered(dir: &Path, segment_max_bytes: u64, after: u64) -> LocalSink {
    let mut sink = LocalSink::open(dir, opts(segment_max_bytes)).unwrap();
    sink.recover(after).unwrap();
    sink
}

/// Writes seqs `1..=n` in batches of `batch`.
fn write_seqs(sink: &mut LocalSink, n: u64, batch: u64) {
    let mut next = 1;
    while next <= n {
        let end = (next + batch - 1).min(n);
        sink.write_batch(&lines(next..=end)).unwrap();
        next = end + 1;
    }
}

fn seg_first(path: &Path) -> u64 {
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("seg-") && name.ends_with(".ndjson"),
        "{name}"
    );
    assert_eq!(name.len(), "seg-".len() + 20 + ".ndjson".len(), "{name}");
    name[4..24].parse().unwrap()
}

fn set(seqs: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
    seqs.into_iter().collect()
}

#[test]
fn round_trip_with_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 300;
    let mut sink = open_recovered(tmp.path(), max, 0);
    write_seqs(&mut sink, 200, 7);

    assert_eq!(sink.messages_dir(), tmp.path().join("messages"));
    assert_eq!(sink.deadletter_dir(), tmp.path().join("deadletter"));
    for dir in [sink.messages_dir(), sink.deadletter_dir()] {
        let segments = list_segments(dir).unwrap();
        assert!(
            segments.len() >= 3,
            "expected rotation in {}",
            dir.display()
        );
        for seg in &segments {
            let bytes = std::fs::read(seg).unwrap();
            assert!(bytes.len() as u64 <= max, "{} too big", seg.display());
            assert_eq!(bytes.last(), Some(&b'\n'));
            let first_line = bytes.split(|b| *b == b'\n').next().unwrap();
            assert_eq!(
                seg_first(seg),
                seq_of(first_line),
                "segment named by first seq"
            );
        }
    }
    let all_records: Vec<_> = (1..=200)
        .filter(|s| kind_of(*s) == LineKind::Record)
        .map(json_of)
        .collect();
    assert_eq!(read_all(sink.messages_dir()), all_records);
    assert_exactly_once(sink.messages_dir(), sink.deadletter_dir(), 200);

    // Reopening continues the newest segment rather than starting a new one.
    drop(sink);
    let before = list_segments(&tmp.path().join("messages")).unwrap();
    let mut sink = open_recovered(tmp.path(), 100_000, 200);
    sink.write_batch(&lines(201..=204)).unwrap();
    assert_eq!(list_segments(sink.messages_dir()).unwrap(), before);
    assert_exactly_once(sink.messages_dir(), sink.deadletter_dir(), 204);
}

#[test]
fn oversized_line_gets_its_own_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = open_recovered(tmp.path(), 10, 0);
    sink.write_batch(&lines([1, 2, 3])).unwrap();
    let segs = list_segments(sink.messages_dir()).unwrap();
    assert_eq!(
        segs.iter().map(|p| seg_first(p)).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn fresh_dir_recovers_to_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = LocalSink::open(&tmp.path().join("new"), SinkOptions::default()).unwrap();
    let report = sink.recover(0).unwrap();
    assert!(report.present.is_empty());
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(report.max_seq, None);
    assert!(read_all(sink.messages_dir()).is_empty());
    assert!(sink.resolved_seqs().unwrap().is_empty());
}

#[test]
fn write_before_recover_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = LocalSink::open(tmp.path(), SinkOptions::default()).unwrap();
    let err = sink.write_batch(&lines([1])).unwrap_err();
    assert!(matches!(err, StoreError::NotRecovered { .. }), "{err}");
    assert!(matches!(
        sink.append_resolved(&[1]),
        Err(StoreError::NotRecovered { .. })
    ));
}

#[test]
fn invalid_lines_are_rejected_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = open_recovered(tmp.path(), 1 << 20, 0);
    let bad = OutputLine {
        kind: LineKind::Record,
        seq: 2,
        json: b"{\"seq\":2,\n\"a\":1}".to_vec(),
    };
    let err = sink.write_batch(&[line(1), bad]).unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidLine { seq: 2, .. }),
        "{err}"
    );
    assert!(read_all(sink.messages_dir()).is_empty());
    // Rejected input does not poison the sink.
    sink.write_batch(&lines([1])).unwrap();
}

/// `recover(after)` reports exactly the seqs after the cursor, from both directories, whatever
/// segment the cursor falls in.
#[test]
fn recover_from_a_cursor_reports_seqs_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 100;
    let mut sink = open_recovered(tmp.path(), 250, 0);
    write_seqs(&mut sink, n, 9);
    drop(sink);

    let check = |after: u64| {
        let mut sink = LocalSink::open(tmp.path(), opts(250)).unwrap();
        let report = sink.recover(after).unwrap();
        let expected = set(after.saturating_add(1)..=n);
        assert_eq!(report.present, expected, "after {after}");
        assert_eq!(report.max_seq, expected.last().copied(), "after {after}");
        assert_eq!(report.truncated_bytes, 0);
    };
    for after in [0, 1, 4, 5, 6, 17, 33, 50, 64, 95, 99, 100, 150, u64::MAX] {
        check(after);
    }
    // Segment boundaries are where an off-by-one would show.
    for seg in list_segments(&tmp.path().join("messages")).unwrap() {
        let first = seg_first(&seg);
        check(first - 1);
        check(first);
    }
}

/// Old segments are not read at all: garbage in them does not matter when recovering from a
/// later cursor, and is an error naming file and line when it could hold seqs past the cursor.
#[test]
fn recover_skips_old_segments_and_names_corrupt_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = open_recovered(tmp.path(), 250, 0);
    write_seqs(&mut sink, 100, 9);
    drop(sink);

    let segs = list_segments(&tmp.path().join("messages")).unwrap();
    let first_seg = &segs[0];
    let mut bytes = std::fs::read(first_seg).unwrap();
    let second_line = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    bytes.splice(second_line..second_line, b"not json\n".iter().copied());
    std::fs::write(first_seg, bytes).unwrap();

    let mut sink = LocalSink::open(tmp.path(), opts(250)).unwrap();
    let after = seg_first(&segs[2]);
    assert_eq!(sink.recover(after).unwrap().present, set(after + 1..=100));

    let err = sink.recover(0).unwrap_err();
    match &err {
        StoreError::Corrupt { path, line, .. } => {
            assert_eq!(path, first_seg);
            assert_eq!(*line, 2);
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("line 2") && msg.contains("seg-"), "{msg}");
    // A failed recovery leaves the sink refusing writes.
    assert!(sink.write_batch(&lines([101])).is_err());
}

#[test]
fn recover_truncates_a_torn_last_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = open_recovered(tmp.path(), 400, 0);
    write_seqs(&mut sink, 40, 6);
    drop(sink);

    let last = list_segments(&tmp.path().join("messages"))
        .unwrap()
        .pop()
        .unwrap();
    let clean_len = std::fs::metadata(&last).unwrap().len();
    let garbage = br#"{"schema":"test/1","seq":41,"kind":"rec"#;
    OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap()
        .write_all(garbage)
        .unwrap();

    let mut sink = LocalSink::open(tmp.path(), opts(400)).unwrap();
    let report = sink.recover(30).unwrap();
    assert_eq!(report.truncated_bytes, garbage.len() as u64);
    assert_eq!(report.present, set(31..=40));
    assert_eq!(report.max_seq, Some(40));
    assert_eq!(std::fs::metadata(&last).unwrap().len(), clean_len);

    sink.write_batch(&lines(41..=45)).unwrap();
    assert_exactly_once(sink.messages_dir(), sink.deadletter_dir(), 45);
    // Recovering again finds nothing to cut.
    assert_eq!(sink.recover(45).unwrap(), Default::default());
}

#[test]
fn torn_first_line_of_a_new_segment_removes_the_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = open_recovered(tmp.path(), 1 << 20, 0);
    write_seqs(&mut sink, 9, 9);
    drop(sink);
    let messages = tmp.path().join("messages");
    let torn = messages.join(format!("seg-{:020}.ndjson", 11));
    std::fs::write(&torn, br#"{"sch"#).unwrap();

    let mut sink = LocalSink::open(tmp.path(), opts(1 << 20)).unwrap();
    let report = sink.recover(9).unwrap();
    assert_eq!(report.truncated_bytes, 5);
    assert!(report.present.is_empty());
    assert!(!torn.exists());
    // A segment that is not the newest must never be torn.
    sink.write_batch(&lines(10..=12)).unwrap();
    assert_exactly_once(&messages, sink.deadletter_dir(), 12);
}

#[test]
fn unterminated_line_in_an_older_segment_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = open_recovered(tmp.path(), 200, 0);
    write_seqs(&mut sink, 30, 3);
    drop(sink);
    let segs = list_segments(&tmp.path().join("messages")).unwrap();
    let victim = &segs[segs.len() - 2];
    let len = std::fs::metadata(victim).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let mut sink = LocalSink::open(tmp.path(), opts(200)).unwrap();
    let err = sink.recover(0).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { path, .. } if path == victim),
        "{err}"
    );
    let read_err = wecom_store::read_lines(&tmp.path().join("messages"))
        .unwrap()
        .find_map(Result::err)
        .expect("reader reports it too");
    assert!(matches!(read_err, StoreError::Corrupt { .. }), "{read_err}");
}

/// Every way a crash can cut the last batch (any line of either file, whole or torn, the two
/// files independently): recover + skip + rewrite ends with each seq exactly once.
#[test]
fn any_torn_batch_recovers_to_exactly_once() {
    let template = tempfile::tempdir().unwrap();
    let cursor = 30;
    let n = 45;
    let mut sink = open_recovered(template.path(), 1 << 20, 0);
    write_seqs(&mut sink, cursor, 10);
    let len = |dir: &Path| {
        let seg = list_segments(dir).unwrap().pop().unwrap();
        (seg.clone(), std::fs::metadata(seg).unwrap().len())
    };
    let (m_seg, m0) = len(sink.messages_dir());
    let (d_seg, d0) = len(sink.deadletter_dir());
    sink.write_batch(&lines(cursor + 1..=n)).unwrap();
    let (_, m1) = len(sink.messages_dir());
    let (_, d1) = len(sink.deadletter_dir());
    drop(sink);
    let m_bytes = std::fs::read(&m_seg).unwrap();
    let d_bytes = std::fs::read(&d_seg).unwrap();

    // Every byte offset inside one line is the same case, so cut at each line boundary, just
    // after it, in the middle, and just before the newline.
    let cut_points = |bytes: &[u8], from: u64, to: u64| {
        let mut points = vec![to];
        let mut start = from;
        for (i, b) in bytes
            .iter()
            .enumerate()
            .take(to as usize)
            .skip(from as usize)
        {
            if *b == b'\n' {
                let end = i as u64;
                points.extend([start, start + 1, (start + end) / 2, end]);
                start = end + 1;
            }
        }
        points
    };
    let m_points = cut_points(&m_bytes, m0, m1);
    let d_points = cut_points(&d_bytes, d0, d1);
    let mut cuts: Vec<(u64, u64)> = Vec::new();
    for &m in &m_points {
        cuts.extend(d_points.iter().map(|&d| (m, d)));
    }
    for (m, d) in cuts {
        let tmp = tempfile::tempdir().unwrap();
        for (dir, seg, bytes, cut) in [
            ("messages", &m_seg, &m_bytes, m),
            ("deadletter", &d_seg, &d_bytes, d),
        ] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
            let target = tmp.path().join(dir).join(seg.file_name().unwrap());
            std::fs::write(target, &bytes[..cut as usize]).unwrap();
        }
        let mut sink = LocalSink::open(
            tmp.path(),
            SinkOptions {
                segment_max_bytes: 1 << 20,
                fsync: false,
            },
        )
        .unwrap();
        let report = sink.recover(cursor).unwrap();
        let todo: Vec<_> = lines((cursor + 1..=n).filter(|s| !report.present.contains(s)));
        sink.write_batch(&todo).unwrap();
        assert_exactly_once(sink.messages_dir(), sink.deadletter_dir(), n);
    }
}

#[test]
fn redrive_bookkeeping() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = open_recovered(tmp.path(), 200, 0);
    write_seqs(&mut sink, 40, 8);
    let dl_segments = list_segments(sink.deadletter_dir()).unwrap();

    sink.append_resolved(&[5, 15]).unwrap();
    sink.append_resolved(&[]).unwrap();
    sink.append_resolved(&[25]).unwrap();
    assert_eq!(sink.resolved_seqs().unwrap(), set([5, 15, 25]));
    // resolved.ndjson is not a segment and does not show up among dead letters.
    assert_eq!(list_segments(sink.deadletter_dir()).unwrap(), dl_segments);
    assert_eq!(read_all(sink.deadletter_dir()).len(), 8);

    // A torn append is ignored by the reader and cut by recovery.
    let resolved = sink.deadletter_dir().join("resolved.ndjson");
    OpenOptions::new()
        .append(true)
        .open(&resolved)
        .unwrap()
        .write_all(b"{\"seq\":3")
        .unwrap();
    assert_eq!(sink.resolved_seqs().unwrap(), set([5, 15, 25]));
    drop(sink);
    let mut sink = LocalSink::open(tmp.path(), opts(200)).unwrap();
    assert_eq!(sink.recover(40).unwrap().truncated_bytes, 8);
    sink.append_resolved(&[35]).unwrap();
    assert_eq!(sink.resolved_seqs().unwrap(), set([5, 15, 25, 35]));
}

/// A redrive writes old seqs as records; segment names must still increase so that name order
/// stays file order and no segment is overwritten.
#[test]
fn old_seqs_after_rotation_keep_segment_names_increasing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = open_recovered(tmp.path(), 200, 0);
    write_seqs(&mut sink, 40, 8);
    let redriven: Vec<OutputLine> = [5, 10, 15, 20, 25, 30, 35, 40]
        .into_iter()
        .map(|seq| OutputLine {
            kind: LineKind::Record,
            seq,
            json: json_of(seq),
        })
        .collect();
    sink.write_batch(&redriven).unwrap();

    let names: Vec<u64> = list_segments(sink.messages_dir())
        .unwrap()
        .iter()
        .map(|p| seg_first(p))
        .collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    let seqs: Vec<u64> = read_all(sink.messages_dir())
        .iter()
        .map(|j| seq_of(j))
        .collect();
    let mut expected: Vec<u64> = (1..=40)
        .filter(|s| kind_of(*s) == LineKind::Record)
        .collect();
    expected.extend([5, 10, 15, 20, 25, 30, 35, 40]);
    assert_eq!(seqs, expected);
}

#[test]
fn recovery_reports_records_and_dead_letters_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = open_recovered(tmp.path(), 1 << 20, 0);
    sink.write_batch(&lines(1..=10)).unwrap();
    // Seq 10 was dead-lettered, then (its key added, the page fetched again) written as a record.
    let mut again = line(10);
    again.kind = LineKind::Record;
    sink.write_batch(&[again]).unwrap();
    drop(sink);

    let mut sink = LocalSink::open(tmp.path(), opts(1 << 20)).unwrap();
    let report = sink.recover(2).unwrap();
    assert_eq!(report.present, set(3..=10));
    assert_eq!(report.dead_letters, set([5, 10]));
    assert_eq!(report.records, set([3, 4, 6, 7, 8, 9, 10]));
}
