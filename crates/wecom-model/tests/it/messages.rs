//! Parsing decrypted messages: every msgtype, media extraction, plain text, and the lenient edges.

use serde_json::{json, Value};
use wecom_model::message::{parse_message, Content};
use wecom_model::ModelError;

use crate::samples::{sample, SAMPLES};

/// Parses `input` and checks the content kind, that it is typed, the media (`kind:sdkfileid`) and the text.
fn check(input: &str, kind: &str, media: &[&str], text: &str) -> Content {
    let msg = parse_message(input.as_bytes()).unwrap_or_else(|e| panic!("{kind}: {e}"));
    assert_eq!(msg.content.msgtype(), kind, "kind of {input}");
    assert!(
        msg.content.is_typed(),
        "{kind} fell back to unknown: {:?}",
        msg.content
    );
    let found: Vec<String> = msg
        .content
        .media()
        .iter()
        .map(|m| format!("{}:{}", m.kind, m.sdkfileid))
        .collect();
    assert_eq!(found, media, "media of {kind}");
    assert_eq!(msg.content.plain_text(), text, "text of {kind}");
    assert_eq!(
        msg.raw,
        serde_json::from_str::<Value>(input).unwrap_or(Value::Null)
    );
    msg.content
}

#[test]
fn every_msgtype_parses_into_its_variant() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("text", &[], "test"),
        ("image", &["image:CtYBMzA2OTAyMDEwMjA0NjIzMDYw"], "[image]"),
        ("revoke", &[], "[recalled 14822339130656386894_1603875600]"),
        ("agree", &[], "[agreed to archiving]"),
        ("disagree", &[], "[refused archiving]"),
        ("voice", &["voice:kcyZjZqOXhETGYxajB2Zkp6Z2wv"], "[voice 10s]"),
        ("video", &["video:MzAzMjMwMzEzMjRhNGMzNDM1MzQzOTMz"], "[video]"),
        ("card", &[], "[card: 微信联调 wmGAgeDQAAHuRJbt4ZQI_1cqoQcf41WQ]"),
        ("location", &[], "[location: xxx管理中心 北京市xxx区xxx路xxx大厦x座]"),
        ("emotion", &["emotion:Cs4BMzA2YjAyMDEwMjA0NjQzMDYy"], "[emotion]"),
        ("file", &["file:E4ODRkZjIzYjNkMmQzYjg2NjdiOWYwEgwxNjE4NjExNzQ3NzI"], "[file: 资料.docx]"),
        (
            "link",
            &[],
            "邀请你加入群聊\n技术支持群，进入可查看详情\nhttps://work.weixin.qq.com/wework_admin/external_room/join/exceed",
        ),
        ("weapp", &[], "[mini program: 开始聊天前请仔细阅读服务须知事项]\n客户需同意存档聊天记录"),
        (
            "chatrecord",
            &["image:nested-image-id", "file:nested-file-id"],
            "[chat record: 群聊]\ntest\n[image]\n[file: a.pdf]",
        ),
        ("todo", &[], "[todo: 来自test的待办]\n收集需求"),
        ("vote", &[], "[vote: 去哪吃]\n- 火锅\n- 烧烤"),
        ("collect", &[], "[form: 这是一个表单]\n- 表单出现了\n- 备注"),
        ("redpacket", &[], "[red packet: 恭喜发财，大吉大利]"),
        ("external_redpacket", &[], "[red packet: 恭喜发财]"),
        ("meeting", &[], "[meeting: 夕会]"),
        ("docmsg", &[], "[doc: 测试&演示客户]\nhttps://doc.weixin.qq.com/txdoc/excel?docid=xxx"),
        ("markdown", &[], "请前往系统查看，谢谢。"),
        ("news", &[], "service \ntest"),
        ("calendar", &[], "[calendar: xxxx]"),
        ("mixed", &["image:mixed-image-id"], "你好[微笑]\n\n[image]"),
        ("meeting_voice_call", &["meeting_voice_call:CpsBKjAqd0xhb2JWRUJldGtwcE5DVTB6"], "[meeting voice call]"),
        ("voip_doc_share", &["voip_doc_share:CpsBKjAqZUlLdWJMd2gvQ1JxMjNlNzRn"], "[file: 欢迎使用微盘.pdf.pdf]"),
        ("sphfeed", &[], "[channels: 腾讯]\n欢迎使用视频号"),
        ("voiptext", &[], "[call 7s]"),
        ("qydiskfile", &[], "[file: 季度报告.xlsx]"),
        ("switch", &[], "[switched enterprise: XuJinSheng]"),
    ];
    assert_eq!(cases.len(), SAMPLES.len(), "every sample has a case");
    for (kind, media, text) in cases {
        check(sample(kind), kind, media, text);
    }
}

#[test]
fn typed_fields_are_read() {
    let Content::Meeting(m) = check(sample("meeting"), "meeting", &[], "[meeting: 夕会]") else {
        unreachable!()
    };
    assert_eq!(
        m.meetingid,
        Some(17_919_323_316_651_302_410),
        "meetingid above i64::MAX"
    );
    assert_eq!(m.starttime, Some(1_603_875_840));

    let Content::Collect(c) = parse_message(sample("collect").as_bytes()).unwrap().content else {
        panic!("collect")
    };
    assert_eq!(c.details[1].id, Some(u64::MAX));

    let Content::Emotion(e) = parse_message(sample("emotion").as_bytes()).unwrap().content else {
        panic!("emotion")
    };
    assert_eq!(
        (e.r#type, e.width, e.imagesize),
        (Some(1), Some(290), Some(962_604))
    );
    assert_eq!(e.extra.len(), 0);

    let Content::MeetingVoiceCall(call) = parse_message(sample("meeting_voice_call").as_bytes())
        .unwrap()
        .content
    else {
        panic!("meeting_voice_call")
    };
    assert_eq!(
        call.voiceid, "grb8a4c48a3c094a70982c518d55e40557",
        "top-level voiceid"
    );
    assert_eq!(call.demofiledata[0].demoer, "test");
    assert_eq!(call.sharescreendata.len(), 1);

    let Content::VoipDocShare(share) = parse_message(sample("voip_doc_share").as_bytes())
        .unwrap()
        .content
    else {
        panic!("voip_doc_share")
    };
    assert_eq!(
        share.voipid, "gr2751c98b19300571f8afb3b74514bd32",
        "top-level voipid"
    );

    let msg = parse_message(sample("meeting_voice_call").as_bytes()).unwrap();
    assert_eq!(msg.roomid, None, "roomid absent");
    let msg = parse_message(sample("text").as_bytes()).unwrap();
    assert_eq!(msg.roomid, None, "roomid empty");
    assert_eq!(msg.msgtime, Some(1_547_087_894_783));
    assert_eq!(msg.tolist, ["icefog"]);
}

#[test]
fn info_types_dispatch_on_msgtype_not_on_key() {
    // The same `info` payload read as four msgtypes gives four variants.
    let info = json!({"content": "c", "filename": "f", "callduration": 3, "item": []});
    for (msgtype, kind) in [
        ("markdown", "markdown"),
        ("news", "news"),
        ("voiptext", "voiptext"),
        ("qydiskfile", "qydiskfile"),
    ] {
        let input =
            json!({"msgid": "1", "action": "send", "msgtype": msgtype, "info": info}).to_string();
        let msg = parse_message(input.as_bytes()).unwrap();
        assert_eq!(msg.content.msgtype(), kind);
        assert!(msg.content.is_typed());
    }
    // A voiptext payload under `voiptext` (one SDK's mistake) is not read as info: it stays verbatim.
    let input =
        r#"{"msgid":"1","action":"send","msgtype":"voiptext","voiptext":{"callduration":3}}"#;
    let msg = parse_message(input.as_bytes()).unwrap();
    assert_eq!(
        msg.content,
        Content::Unknown {
            msgtype: "voiptext".into(),
            payload: json!({"voiptext": {"callduration": 3}})
        }
    );
}

#[test]
fn vote_at_top_level_and_nested() {
    let top = sample("vote");
    let nested = r#"{"msgid":"2707525736001","action":"send","from":"test","tolist":["ab"],"roomid":"wrSwLgEAAA8UlJVhYMpCe0GrXfXyGv9A","msgtime":1603875800000,"msgtype":"vote","vote":{"votetitle":"去哪吃","voteitem":["火锅","烧烤"],"votetype":102,"voteid":"2707525736000"}}"#;
    for input in [top, nested] {
        let Content::Vote(v) = check(input, "vote", &[], "[vote: 去哪吃]\n- 火锅\n- 烧烤")
        else {
            unreachable!()
        };
        assert_eq!(v.voteid, "2707525736000");
        assert!(
            v.extra.is_empty(),
            "envelope keys are not payload: {:?}",
            v.extra
        );
    }
}

#[test]
fn nested_media_in_chatrecord_and_mixed() {
    let Content::ChatRecord(r) = parse_message(sample("chatrecord").as_bytes())
        .unwrap()
        .content
    else {
        panic!("chatrecord")
    };
    assert_eq!(
        r.item[0].msgtime,
        Some(1_603_875_610),
        "item msgtime in seconds, kept as is"
    );
    assert!(r.item[2].from_chatroom);
    assert_eq!(
        r.item[1].content,
        r#"{"md5sum":"ABCDEF0123456789abcdef0123456789","filesize":100,"sdkfileid":"nested-image-id"}"#
    );
    let media = Content::ChatRecord(r).media();
    assert_eq!(
        media[0].md5sum.as_deref(),
        Some("ABCDEF0123456789abcdef0123456789")
    );
    assert_eq!(media[1].md5sum, None, "empty md5sum");
    assert_eq!(media[1].fileext.as_deref(), Some("pdf"));

    // A chatrecord inside a chatrecord, holding a mixed message with a video.
    let mixed = json!({"item": [{"type": "video", "content": json!({"sdkfileid": "deep-video", "filesize": 9}).to_string()}]});
    let inner = json!({"title": "inner", "item": [{"type": "ChatRecordMixed", "msgtime": 1, "content": mixed.to_string()}]});
    let outer = json!({"msgid": "n1", "action": "send", "msgtype": "chatrecord",
        "chatrecord": {"title": "outer", "item": [{"type": "ChatRecordChatRecord", "msgtime": 2, "content": inner.to_string()}]}});
    let msg = parse_message(outer.to_string().as_bytes()).unwrap();
    let media = msg.content.media();
    assert_eq!(media.len(), 1);
    assert_eq!(
        (
            media[0].kind.as_str(),
            media[0].sdkfileid.as_str(),
            media[0].size
        ),
        ("video", "deep-video", Some(9))
    );
    assert_eq!(
        msg.content.plain_text(),
        "[chat record: outer]\n[chat record: inner] [video]"
    );

    // An item whose content is not JSON is kept as text.
    let odd = json!({"msgid": "n2", "action": "send", "msgtype": "mixed",
        "mixed": {"item": [{"type": "text", "content": "plain words"}]}});
    let msg = parse_message(odd.to_string().as_bytes()).unwrap();
    assert_eq!(msg.content.plain_text(), "plain words");
}

#[test]
fn unknown_msgtype_and_extra_fields_are_kept_verbatim() {
    let input = r#"{"msgid":"j1","action":"send","from":"a","tolist":["b"],"roomid":"wr1","msgtime":1,"msgtype":"jielong","jielong":{"title":"接龙","items":[1,2,{"x":null}],"big":18446744073709551615}}"#;
    let msg = parse_message(input.as_bytes()).unwrap();
    let Content::Unknown { msgtype, payload } = &msg.content else {
        panic!("not unknown: {:?}", msg.content)
    };
    assert_eq!(msgtype, "jielong");
    assert_eq!(
        payload.to_string(),
        r#"{"title":"接龙","items":[1,2,{"x":null}],"big":18446744073709551615}"#
    );
    assert_eq!(msg.content.plain_text(), "[jielong]");

    // An unknown msgtype whose payload has no key of its own keeps the non-envelope top-level keys.
    let input = r#"{"msgid":"j2","action":"send","msgtype":"note","note_title":"笔记","x":1}"#;
    let msg = parse_message(input.as_bytes()).unwrap();
    assert_eq!(
        msg.content,
        Content::Unknown {
            msgtype: "note".into(),
            payload: json!({"note_title": "笔记", "x": 1})
        }
    );

    // A known type with an extra field keeps it in `extra`, in order, and writes it back.
    let input = r#"{"msgid":"i1","action":"send","msgtype":"image","image":{"sdkfileid":"f","md5sum":"","filesize":1,"zeta":{"k":[1]},"alpha":"新"}}"#;
    let msg = parse_message(input.as_bytes()).unwrap();
    let Content::Image(img) = &msg.content else {
        panic!("image")
    };
    assert_eq!(
        Value::Object(img.extra.clone()).to_string(),
        r#"{"zeta":{"k":[1]},"alpha":"新"}"#
    );
    let written = serde_json::to_value(&msg.content).unwrap();
    assert_eq!(written["data"]["zeta"], json!({"k": [1]}));
}

#[test]
fn lenient_numbers_and_fallback() {
    // Numbers as strings and nulls are read, not rejected.
    let input = r#"{"msgid":"l1","action":"send","msgtype":"file","msgtime":"1603875608214","file":{"filename":"a.bin","fileext":null,"sdkfileid":"s","filesize":"5000000000","md5sum":""}}"#;
    let msg = parse_message(input.as_bytes()).unwrap();
    assert_eq!(msg.msgtime, Some(1_603_875_608_214));
    let Content::File(f) = &msg.content else {
        panic!("file: {:?}", msg.content)
    };
    assert_eq!(f.filesize, Some(5_000_000_000));
    assert_eq!(
        msg.content.media()[0].fileext.as_deref(),
        Some("bin"),
        "ext from filename"
    );

    // A payload that still cannot be typed falls back to Unknown with the payload verbatim.
    let input = r#"{"msgid":"l2","action":"send","msgtype":"image","image":{"sdkfileid":"s","filesize":"lots"}}"#;
    let msg = parse_message(input.as_bytes()).unwrap();
    assert_eq!(
        msg.content,
        Content::Unknown {
            msgtype: "image".into(),
            payload: json!({"sdkfileid": "s", "filesize": "lots"})
        }
    );
    let input = r#"{"msgid":"l3","action":"send","msgtype":"text","text":"just a string"}"#;
    let msg = parse_message(input.as_bytes()).unwrap();
    assert_eq!(
        msg.content,
        Content::Unknown {
            msgtype: "text".into(),
            payload: json!("just a string")
        }
    );
}

#[test]
fn filesize_above_two_to_the_32() {
    let input = r#"{"msgid":"big","action":"send","msgtype":"video","video":{"sdkfileid":"v","filesize":8589934593,"play_length":1,"md5sum":"d06fc80c01d6fbffcca3b229ba41eac6"}}"#;
    let msg = parse_message(input.as_bytes()).unwrap();
    assert_eq!(msg.content.media()[0].size, Some(8_589_934_593));
}

#[test]
fn raw_control_characters_are_escaped_not_deleted() {
    let input = b"{\"msgid\":\"c1\",\"action\":\"send\",\"msgtype\":\"text\",\"text\":{\"content\":\"line1\nline2\ttab\x01one\\\"q\"}}";
    let msg = parse_message(input).unwrap();
    let Content::Text(t) = &msg.content else {
        panic!("text: {:?}", msg.content)
    };
    assert_eq!(t.content, "line1\nline2\ttab\u{1}one\"q");
    // Whitespace between tokens is untouched.
    let msg = parse_message(b"{\n\t\"msgid\": \"c2\"\r\n}").unwrap();
    assert_eq!(msg.msgid, "c2");
    // Inside a chatrecord item's JSON string too (the outer escape turns them into raw characters there).
    let input = b"{\"msgid\":\"c3\",\"action\":\"send\",\"msgtype\":\"mixed\",\"mixed\":{\"item\":[{\"type\":\"text\",\"content\":\"{\\\"content\\\":\\\"a\nb\\\"}\"}]}}";
    let msg = parse_message(input).unwrap();
    assert_eq!(msg.content.plain_text(), "a\nb");
}

#[test]
fn switch_and_external() {
    let msg = parse_message(sample("switch").as_bytes()).unwrap();
    let Content::Switch(s) = &msg.content else {
        panic!("switch")
    };
    assert_eq!(
        (s.time, s.user.as_str()),
        (Some(1_554_119_421_840), "XuJinSheng")
    );
    assert_eq!(
        (msg.msgtype.as_deref(), msg.from.as_deref(), msg.msgtime),
        (None, None, None)
    );
}

#[test]
fn errors_name_the_problem() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"not json",
            "decrypted message is not valid json: expected ident at line 1 column 2",
        ),
        (
            b"[1,2]",
            "decrypted message is not a json object (found array)",
        ),
        (b"{\"action\":\"send\"}", "decrypted message has no msgid"),
        (b"{\"msgid\":\"\"}", "decrypted message has no msgid"),
        (
            b"",
            "decrypted message is not valid json: EOF while parsing a value at line 1 column 0",
        ),
    ];
    for (input, message) in cases {
        let err = parse_message(input).unwrap_err();
        assert_eq!(err.to_string(), *message);
    }
    assert_eq!(
        parse_message(b"\xff\xfe").unwrap_err(),
        parse_message(b"\xff\xfe").unwrap_err()
    );
    assert!(matches!(
        parse_message(b"\"s\""),
        Err(ModelError::NotObject { found: "string" })
    ));
    // Bare-digit msgids given as numbers are accepted as text.
    assert_eq!(parse_message(b"{\"msgid\":123}").unwrap().msgid, "123");
}
