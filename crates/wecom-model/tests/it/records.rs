//! Normalization into `wecom-archive.message.v1`, conversation ids, media keys and dead letters.

use serde_json::json;
use wecom_model::api::{ChatDataItem, ChatDataResponse};
use wecom_model::message::parse_message;
use wecom_model::record::conversation_id;
use wecom_model::{
    media_object_key, normalize, DeadLetter, DeadLetterReason, MediaRef, MediaStatus,
    NormalizeContext, Record,
};

use crate::samples::{sample, SAMPLES};

const CTX: NormalizeContext<'static> = NormalizeContext {
    corp_id: "wwcorp",
    stream: "corp",
    seq: 42,
    key_version: 3,
};

fn record(input: &str) -> Record {
    normalize(&CTX, &parse_message(input.as_bytes()).unwrap())
}

/// Checks the conversation id of a message given as JSON, in the corp stream.
fn check_conversation(input: serde_json::Value, expected: &str) {
    let msg = parse_message(input.to_string().as_bytes()).unwrap();
    assert_eq!(conversation_id(&msg, "corp"), expected, "{input}");
}

#[test]
fn conversation_ids() {
    check_conversation(
        json!({"msgid": "1", "from": "a", "tolist": ["b", "c"], "roomid": "wr1"}),
        "wr1",
    );
    check_conversation(
        json!({"msgid": "1", "from": "alice", "tolist": ["bob"], "roomid": ""}),
        "single:alice|bob",
    );
    check_conversation(
        json!({"msgid": "2", "from": "bob", "tolist": ["alice"]}),
        "single:alice|bob",
    );
    check_conversation(
        json!({"msgid": "3", "from": "alice", "tolist": []}),
        "single:alice",
    );
    check_conversation(
        json!({"msgid": "4", "action": "switch", "time": 1, "user": "u1"}),
        "switch:u1",
    );
    check_conversation(json!({"msgid": "5"}), "msg:5");
    // A room stream's items without a roomid still belong to that room.
    let msg = parse_message(br#"{"msgid":"6","from":"a","tolist":["b"]}"#).unwrap();
    assert_eq!(conversation_id(&msg, "room:wr9"), "wr9");
}

#[test]
fn record_fields() {
    let r = record(sample("image"));
    assert_eq!(r.schema, "wecom-archive.message.v1");
    assert_eq!(
        (r.corp_id.as_str(), r.stream.as_str(), r.seq, r.key_version),
        ("wwcorp", "corp", 42, 3)
    );
    assert_eq!(r.send_time.as_deref(), Some("2019-01-10T02:38:18.862Z"));
    assert_eq!(r.msgtime_ms, Some(1_547_087_898_862));
    assert_eq!(r.conversation_id, "single:XuJinSheng|icefog");
    assert_eq!(r.text, "[image]");
    assert!(!r.external && !r.updown_stream);
    assert_eq!(
        r.media,
        [MediaRef {
            kind: "image".into(),
            sdkfileid: "CtYBMzA2OTAyMDEwMjA0NjIzMDYw".into(),
            md5sum: Some("50de8e5ae8ffe4f1df7a93841f71993a".into()),
            size: Some(70961),
            fileext: None,
            object_key: Some("media/wwcorp/md5/50de8e5ae8ffe4f1df7a93841f71993a.jpg".into()),
            status: Some(MediaStatus::Pending),
        }]
    );
    assert!(record(sample("external_redpacket")).external);
    let updown = record(
        r#"{"msgid":"77_1603875609_updown_stream","action":"send","msgtype":"text","text":{"content":"x"}}"#,
    );
    assert!(updown.updown_stream && !updown.external);
    let switch = record(sample("switch"));
    assert_eq!(
        switch.send_time.as_deref(),
        Some("2019-04-01T11:50:21.840Z"),
        "switch time"
    );
    assert_eq!(switch.msgtype.as_deref(), Some("switch"));
    assert_eq!(switch.text, "[switched enterprise: XuJinSheng]");
    let json = serde_json::to_value(&switch).unwrap();
    assert!(json.get("room").is_none(), "room omitted when unknown");
}

#[test]
fn media_object_keys() {
    let m = |kind: &str, md5: Option<&str>, ext: Option<&str>| MediaRef {
        kind: kind.into(),
        sdkfileid: "fileid-1".into(),
        md5sum: md5.map(Into::into),
        size: None,
        fileext: ext.map(Into::into),
        object_key: None,
        status: None,
    };
    let cases = [
        (
            m("image", Some("ABCDEF0123456789ABCDEF0123456789"), None),
            "media/c/md5/abcdef0123456789abcdef0123456789.jpg",
        ),
        (
            m("voice", Some("abcdef0123456789abcdef0123456789"), None),
            "media/c/md5/abcdef0123456789abcdef0123456789.amr",
        ),
        (
            m(
                "file",
                Some("abcdef0123456789abcdef0123456789"),
                Some("docx"),
            ),
            "media/c/md5/abcdef0123456789abcdef0123456789.docx",
        ),
        (
            m("emotion", None, Some("gif")),
            "media/c/fileid/b13e0dc1fb659b4a3c6f02a4c13053d8.gif",
        ),
        (
            m("video", Some("../../etc"), None),
            "media/c/fileid/b13e0dc1fb659b4a3c6f02a4c13053d8.mp4",
        ),
        (
            m("meeting_voice_call", None, None),
            "media/c/fileid/b13e0dc1fb659b4a3c6f02a4c13053d8",
        ),
    ];
    for (media, key) in cases {
        assert_eq!(media_object_key("c", &media), key, "{media:?}");
    }
    // The emotion type decides its extension.
    let r = record(sample("emotion"));
    assert_eq!(
        r.media[0].object_key.as_deref(),
        Some("media/wwcorp/md5/b178ce1cd74db4d0b4ae4a2a5db9d9a1.gif")
    );
}

#[test]
fn normalize_is_deterministic() {
    for (kind, input) in SAMPLES {
        let a = serde_json::to_string(&record(input)).unwrap();
        let b = serde_json::to_string(&record(input)).unwrap();
        assert_eq!(a, b, "{kind}");
    }
}

#[test]
fn chat_data_item_round_trips_unknown_fields() {
    let body = r#"{"errcode":0,"errmsg":"ok","chatdata":[{"seq":196,"msgid":"CAQQ2fbb4QUY0On2rYSAgAMgip/yzgs=","publickey_ver":3,"encrypt_random_key":"a2V5","encrypt_chat_msg":"bXNn","new_field":{"z":1},"seq_hint":18446744073709551615}]}"#;
    let resp: ChatDataResponse = serde_json::from_str(body).unwrap();
    assert_eq!(serde_json::to_string(&resp).unwrap(), body);
    let empty: ChatDataResponse =
        serde_json::from_str(r#"{"errcode":301053,"errmsg":"not enabled"}"#).unwrap();
    assert!(empty.chatdata.is_empty());

    let item: ChatDataItem = resp.chatdata[0].clone();
    let dl = DeadLetter::new(
        "wwcorp",
        "corp",
        DeadLetterReason::UnknownKeyVersion,
        "no key for publickey_ver 3",
        item,
    );
    let json = serde_json::to_value(&dl).unwrap();
    assert_eq!(json["schema"], "wecom-archive.deadletter.v1");
    assert_eq!(json["reason_kind"], "unknown_key_version");
    assert_eq!(json["seq"], 196);
    assert_eq!(json["item"]["new_field"], json!({"z": 1}));
    let back: DeadLetter = serde_json::from_value(json).unwrap();
    assert_eq!(back, dl);
}
