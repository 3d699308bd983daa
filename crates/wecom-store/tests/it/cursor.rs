//! CursorStore: round trip, file format, refusing bad files, and a model-based proptest.

use std::collections::HashMap;

use proptest::prelude::*;
use wecom_store::{encode_component, CursorStore, StoreError};

#[test]
fn commit_then_load_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CursorStore::open(&tmp.path().join("cursors")).unwrap();
    assert_eq!(store.load("corp").unwrap(), None);

    store.commit("corp", 123).unwrap();
    let c = store.load("corp").unwrap().unwrap();
    assert_eq!((c.stream.as_str(), c.seq), ("corp", 123));
    assert!(c.updated_at_unix_ms > 1_600_000_000_000);

    store.commit("room:wrAbc", 7).unwrap();
    store.commit("corp", 124).unwrap();
    assert_eq!(store.load("corp").unwrap().unwrap().seq, 124);
    assert_eq!(store.load("room:wrAbc").unwrap().unwrap().seq, 7);

    let mut names: Vec<String> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["corp.cursor.json", "room%3AwrAbc.cursor.json"]);

    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.dir().join("corp.cursor.json")).unwrap())
            .unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["stream"], "corp");
    assert_eq!(v["seq"], 124);
    assert!(v["updated_at_unix_ms"].is_u64());
}

#[test]
fn stream_names_are_sanitized_injectively() {
    let check = |stream: &str, expected: &str| {
        assert_eq!(encode_component(stream).unwrap(), expected, "{stream:?}");
    };
    check("corp", "corp");
    check("room:wrAbc", "room%3AwrAbc");
    check("a.b_c-D9", "a.b_c-D9");
    check("a/b", "a%2Fb");
    check("a%3A", "a%253A");
    check("..", "%2E.");
    check("群", "%E7%BE%A4");
    assert!(matches!(
        encode_component(""),
        Err(StoreError::InvalidStream { .. })
    ));
}

fn write_cursor_file(store: &CursorStore, stream: &str, contents: &str) -> std::path::PathBuf {
    let path = store.path_for(stream).unwrap();
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn bad_cursor_files_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CursorStore::open(tmp.path()).unwrap();
    let cases = [
        ("corrupt", "{\"version\":1,\"stream\":\"corr"),
        ("empty", ""),
        (
            "no_version",
            r#"{"stream":"no_version","seq":1,"updated_at_unix_ms":1}"#,
        ),
        (
            "neg",
            r#"{"version":1,"stream":"neg","seq":-1,"updated_at_unix_ms":1}"#,
        ),
        (
            "other",
            r#"{"version":1,"stream":"corp","seq":1,"updated_at_unix_ms":1}"#,
        ),
    ];
    for (stream, contents) in cases {
        let path = write_cursor_file(&store, stream, contents);
        let err = store.load(stream).unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidCursor { path: p, .. } if *p == path),
            "{stream}: {err}"
        );
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }

    let path = write_cursor_file(
        &store,
        "future",
        r#"{"version":2,"stream":"future","seq":1,"updated_at_unix_ms":1}"#,
    );
    let err = store.load("future").unwrap_err();
    assert!(
        matches!(&err, StoreError::CursorVersion { path: p, version: 2 } if *p == path),
        "{err}"
    );
    // Committing over a bad file repairs it: the pipeline never does that on its own.
    store.commit("future", 5).unwrap();
    assert_eq!(store.load("future").unwrap().unwrap().seq, 5);
}

proptest! {
    // Every commit fsyncs twice; 32 cases keep this test quick on slow disks.
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Model: a HashMap of the last committed seq per stream.
    #[test]
    fn load_returns_the_last_commit(
        ops in prop::collection::vec((0usize..3, any::<u64>()), 1..24)
    ) {
        let streams = ["corp", "room:wrAbc", "room:wr/x"];
        let tmp = tempfile::tempdir().unwrap();
        let store = CursorStore::open(tmp.path()).unwrap();
        let mut model: HashMap<&str, u64> = HashMap::new();
        for (i, seq) in ops {
            store.commit(streams[i], seq).unwrap();
            model.insert(streams[i], seq);
            for s in streams {
                let loaded = store.load(s).unwrap().map(|c| c.seq);
                prop_assert_eq!(loaded, model.get(s).copied());
            }
        }
        // No temp files are left behind.
        let files = std::fs::read_dir(tmp.path()).unwrap().count();
        prop_assert_eq!(files, model.len());
    }
}
