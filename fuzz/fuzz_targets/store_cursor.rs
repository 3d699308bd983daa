//! A cursor file as found on disk (`<stream>.cursor.json`), read by
//! `wecom_store::CursorStore::load`. The first input byte picks the stream, the rest is the file.
//!
//! Checks that loading never panics, never changes the file, and only accepts a file of the
//! requested stream; that a file of a newer format is reported as such; and that committing the
//! loaded seq and loading again gives the same seq.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wecom_archive_fuzz::fresh_scratch_dir;
use wecom_store::{CursorStore, StoreError, CURSOR_VERSION};

const STREAMS: [&str; 4] = [
    "corp",
    "room:wrjc7bDwAASxc8tZvBErFE02BtPWyAAA",
    "room:a/b",
    "ré:%2F",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let stream = STREAMS[usize::from(pick) % STREAMS.len()];
    let dir = fresh_scratch_dir("store_cursor");
    let store = CursorStore::open(&dir).expect("cursor dir opens");
    let path = store.path_for(stream).expect("a valid stream has a path");
    assert!(path.starts_with(&dir), "cursor path outside the store");
    std::fs::write(&path, file).expect("scratch file");

    let loaded = store.load(stream);
    assert_eq!(
        std::fs::read(&path).expect("cursor reads"),
        file,
        "load changed the file"
    );
    match loaded {
        Ok(Some(cursor)) => {
            assert_eq!(cursor.stream, stream, "cursor of another stream accepted");
            store.commit(stream, cursor.seq).expect("commit");
            let again = store.load(stream).expect("a committed cursor loads");
            assert_eq!(again.map(|c| c.seq), Some(cursor.seq));
        }
        Ok(None) => panic!("an existing cursor file reported absent"),
        Err(StoreError::CursorVersion { version, .. }) => {
            assert_ne!(
                version, CURSOR_VERSION,
                "current version reported unsupported"
            );
        }
        Err(_) => {}
    }
});
