//! Property tests: nothing panics on arbitrary input, and records round-trip through JSON.

use proptest::prelude::*;
use serde_json::{Map, Value};
use wecom_model::message::parse_message;
use wecom_model::{normalize, NormalizeContext, Record};

use crate::samples::SAMPLES;

const MSGTYPES: &[&str] = &[
    "text",
    "image",
    "revoke",
    "agree",
    "disagree",
    "voice",
    "video",
    "card",
    "location",
    "emotion",
    "file",
    "link",
    "weapp",
    "chatrecord",
    "todo",
    "vote",
    "collect",
    "redpacket",
    "external_redpacket",
    "meeting",
    "docmsg",
    "markdown",
    "news",
    "calendar",
    "mixed",
    "meeting_voice_call",
    "voip_doc_share",
    "sphfeed",
    "voiptext",
    "qydiskfile",
    "jielong",
];

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        // A payload JSON inside a string, as chatrecord and mixed items carry it.
        "[a-z_]{0,8}".prop_map(|s| Value::String(format!(
            r#"{{"sdkfileid":"{s}","md5sum":"","filesize":1}}"#
        ))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("content".to_owned()),
                        Just("item".to_owned()),
                        Just("sdkfileid".to_owned()),
                        Just("filesize".to_owned()),
                        "[a-z]{1,6}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn msgtype() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(MSGTYPES).prop_map(str::to_owned),
        ".{0,10}"
    ]
}

fn check_no_panic(bytes: &[u8]) {
    if let Ok(msg) = parse_message(bytes) {
        let ctx = NormalizeContext {
            corp_id: "c",
            stream: "corp",
            seq: 1,
            key_version: 1,
        };
        let record = normalize(&ctx, &msg);
        let text = serde_json::to_string(&record).unwrap();
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}

proptest! {
    #[test]
    fn any_object_normalizes(
        msgtype in msgtype(),
        payload in any_json(),
        vote_top in any_json(),
        msgid in prop::option::of(any_json()),
        action in prop::option::of(any_json()),
        from in prop::option::of(any_json()),
        tolist in prop::option::of(any_json()),
        roomid in prop::option::of(any_json()),
        msgtime in prop::option::of(any_json()),
        with_msgtype in any::<bool>(),
    ) {
        let mut obj = Map::new();
        for (key, value) in [("msgid", msgid), ("action", action), ("from", from), ("tolist", tolist),
                             ("roomid", roomid), ("msgtime", msgtime)] {
            if let Some(v) = value {
                obj.insert(key.to_owned(), v);
            }
        }
        if with_msgtype {
            obj.insert("msgtype".to_owned(), Value::String(msgtype.clone()));
        }
        let key = wecom_model::message::payload_key(&msgtype).to_owned();
        obj.insert(key, payload);
        obj.insert("votetitle".to_owned(), vote_top);
        check_no_panic(Value::Object(obj).to_string().as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_no_panic(&bytes);
    }

    #[test]
    fn mutated_samples_never_panic(index in 0..SAMPLES.len(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = SAMPLES[index].1.as_bytes().to_vec();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        check_no_panic(&bytes);
    }
}

#[test]
fn records_round_trip_for_every_sample() {
    let ctx = NormalizeContext {
        corp_id: "wwcorp",
        stream: "corp",
        seq: 7,
        key_version: 2,
    };
    for (kind, input) in SAMPLES {
        let record = normalize(&ctx, &parse_message(input.as_bytes()).unwrap());
        let text = serde_json::to_string(&record).unwrap();
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record, "{kind}");
    }
}
