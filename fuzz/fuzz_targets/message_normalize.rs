//! A decrypted message (what `DecryptData` or the simulator's cipher yields), as raw bytes.
//!
//! Checks that `wecom_model::parse_message` then `wecom_model::normalize` never panic, and that the
//! record a sink writes
//! - is one line of JSON (the NDJSON sink refuses a newline) carrying the record's `seq`;
//! - reads back as an equal `Record` and serializes again to the same bytes;
//! - is deterministic (normalizing twice gives byte-identical JSON);
//! - names its media with object keys the object store accepts, under the corp's `media/` prefix.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wecom_model::{normalize, parse_message, NormalizeContext, Record};

const CORP: &str = "wwfuzzcorp";

/// Keys are checked the way the media worker turns them into store paths.
static OBJECTS: LazyLock<wecom_store::Objects> = LazyLock::new(wecom_store::Objects::in_memory);

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = parse_message(data) else {
        return;
    };
    for stream in ["corp", "room:wrfuzzroom"] {
        let ctx = NormalizeContext {
            corp_id: CORP,
            stream,
            seq: 42,
            key_version: 3,
        };
        let record = normalize(&ctx, &msg);
        let json = serde_json::to_vec(&record).expect("a record serializes");
        assert!(!json.contains(&b'\n'), "record json spans lines");
        let seq = serde_json::from_slice::<serde_json::Value>(&json)
            .expect("record json parses")
            .get("seq")
            .and_then(serde_json::Value::as_u64);
        assert_eq!(seq, Some(42), "record json lacks its seq");

        let back: Record = serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("record json does not read back: {e}"));
        assert_eq!(back, record, "record changed through json");
        let again = serde_json::to_vec(&back).expect("a record serializes");
        assert_eq!(again, json, "record json is not stable");
        let twice = serde_json::to_vec(&normalize(&ctx, &msg)).expect("a record serializes");
        assert_eq!(twice, json, "normalize is not deterministic");

        for media in &record.media {
            let key = media
                .object_key
                .as_deref()
                .expect("normalize sets object keys");
            assert!(
                key.starts_with(&format!("media/{CORP}/")),
                "object key {key:?} outside the corp's prefix"
            );
            if let Err(e) = OBJECTS.path(key) {
                panic!("object key from the message is not storable: {e}");
            }
        }
    }
});
