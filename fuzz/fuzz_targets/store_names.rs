//! Names from outside (corp ids, stream names, room ids from the service) turned into path
//! components, and file names read back from a directory listing: `wecom_store::names` and the
//! stream directory and cursor file names of `wecom_store::layout`. The input is two names
//! separated by a NUL byte.
//!
//! Checks that the encoding is one safe path component (non-empty, no `/`, no leading `.`), that
//! it is injective (two different names never share a component, two streams never share a
//! directory), that decoding inverts it, and that decoding any file name either fails or gives a
//! name that encodes back to that file name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wecom_store::layout::{cursor_file_name, stream_dir_name, stream_of_cursor_file};
use wecom_store::{decode_component, encode_component};

fn safe_component(c: &str) -> bool {
    !c.is_empty() && !c.contains('/') && !c.starts_with('.')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (name, other) = text.split_once('\0').unwrap_or((text, ""));
    for name in [name, other] {
        if let Some(decoded) = decode_component(name) {
            assert_eq!(encode_component(&decoded).ok().as_deref(), Some(name));
        }
        if let Some(stream) = stream_of_cursor_file(name) {
            assert_eq!(cursor_file_name(&stream).ok().as_deref(), Some(name));
        }
        let Ok(encoded) = encode_component(name) else {
            assert!(name.is_empty(), "a non-empty name refused");
            continue;
        };
        assert!(safe_component(&encoded), "unsafe component {encoded:?}");
        assert_eq!(decode_component(&encoded).as_deref(), Some(name));
        let file = cursor_file_name(name).expect("an encodable name has a cursor file");
        assert_eq!(stream_of_cursor_file(&file).as_deref(), Some(name));
        match stream_dir_name(name) {
            Ok(dir) => assert!(safe_component(&dir), "unsafe directory {dir:?}"),
            // Only `corp` and `room:<roomid>` are streams the pipeline makes; others may be refused.
            Err(_) => assert!(
                name != "corp" && !name.strip_prefix("room:").is_some_and(|r| !r.is_empty()),
                "stream {name:?} has no directory"
            ),
        }
    }
    if name != other {
        if let (Ok(a), Ok(b)) = (encode_component(name), encode_component(other)) {
            assert_ne!(a, b, "names {name:?} and {other:?} share a component");
        }
        if let (Ok(a), Ok(b)) = (stream_dir_name(name), stream_dir_name(other)) {
            assert_ne!(a, b, "streams {name:?} and {other:?} share a directory");
        }
    }
});
