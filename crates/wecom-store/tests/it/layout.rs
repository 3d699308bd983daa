//! StreamLayout: two streams never share a directory, so one stream's recovery never sees another's lines.

use wecom_store::{CursorStore, LocalSink, SinkOptions, StreamLayout};

use crate::common::lines;

#[test]
fn rooms_a_dot_b_and_a_underscore_b_keep_apart_through_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let dotted = StreamLayout::live(tmp.path(), "wwcorp", "room:a.b").unwrap();
    let under = StreamLayout::live(tmp.path(), "wwcorp", "room:a_b").unwrap();
    assert_ne!(dotted.dir(), under.dir());

    // Room a.b writes seqs 1..=5 (its own seq space) and commits nothing yet: a crash before the commit.
    let mut sink = LocalSink::open(dotted.dir(), SinkOptions::default()).unwrap();
    sink.recover(0).unwrap();
    sink.write_batch(&lines(1..=5)).unwrap();
    drop(sink);

    // Room a_b starts from scratch: its recovery must not report a.b's seqs as already written, or its
    // own seqs 1..=5 would be skipped and lost.
    let mut other = LocalSink::open(under.dir(), SinkOptions::default()).unwrap();
    let report = other.recover(0).unwrap();
    assert!(
        report.present.is_empty(),
        "room a_b sees room a.b's lines: {:?}",
        report.present
    );
    let cursors = CursorStore::open(under.dir()).unwrap();
    assert_eq!(cursors.load(under.stream()).unwrap(), None);
    assert_eq!(
        under.cursor_path().unwrap(),
        cursors.path_for(under.stream()).unwrap()
    );

    // And a.b's own recovery still finds them.
    let mut again = LocalSink::open(dotted.dir(), SinkOptions::default()).unwrap();
    let report = again.recover(0).unwrap();
    assert_eq!(report.present.len(), 5);
}
