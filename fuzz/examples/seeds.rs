//! Writes the seed corpus of the fuzz targets (`fuzz/corpus/<target>/`): real answers of the
//! simulator, the decrypted message of every msgtype it serves and the reference samples, frames
//! of every kind, the simulator's PEM keys, sink segments and cursor files as the crates write them.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (deterministic: the simulator is
//! seeded and the files are named by content, so rerunning it changes nothing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use wecom_crypto::{Keyring, MessageCipher as _, SimCipher};
use wecom_model::api::{ChatDataItem, ChatDataResponse};
use wecom_model::{normalize, parse_message, DeadLetter, DeadLetterReason, NormalizeContext};
use wecom_sdk::protocol::{encode_request, encode_response, Request, Response};
use wecom_store::{CursorStore, LineKind, LocalSink, OutputLine, SinkOptions};

const FUZZ_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(FUZZ_DIR).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(corpus(target).join(name), bytes).expect("seed file");
}

#[tokio::main]
async fn main() {
    let sim = wecom_sim::start(
        wecom_sim::SimConfig::default(),
        "127.0.0.1:0".parse().expect("address"),
    )
    .await
    .expect("simulator starts");
    let base = sim.base_url();
    let http = reqwest::Client::new();

    let token_body = http
        .get(format!(
            "{base}/cgi-bin/gettoken?corpid=wwsimcorp0001&corpsecret=sim-secret"
        ))
        .send()
        .await
        .expect("gettoken")
        .bytes()
        .await
        .expect("gettoken body");
    write("api_envelope", "gettoken.json", &token_body);
    let token: Value = serde_json::from_slice(&token_body).expect("token json");
    let token = token["access_token"].as_str().expect("a token").to_owned();

    let post = |path: &str, body: Value| {
        let url = format!("{base}{path}?access_token={token}");
        let http = http.clone();
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .expect("request")
                .bytes()
                .await
                .expect("body")
                .to_vec()
        }
    };

    let small_page = post(
        "/cgi-bin/msgaudit/get_chat_data",
        json!({"seq": 0, "limit": 3}),
    )
    .await;
    write("api_envelope", "get_chat_data.json", &small_page);
    let bad_token = http
        .post(format!(
            "{base}/cgi-bin/msgaudit/get_chat_data?access_token=expired"
        ))
        .body(r#"{"seq":0,"limit":3}"#)
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("body");
    write("api_envelope", "error_envelope.json", &bad_token);
    let permit = post("/cgi-bin/msgaudit/get_permit_user_list", json!({})).await;
    write("api_envelope", "get_permit_user_list.json", &permit);

    // Every item, decrypted: the first message of each msgtype is a seed.
    let mut keyring = Keyring::default();
    for (version, pem) in wecom_archive_fuzz::SIM_KEYS {
        keyring.insert_pem(version, pem).expect("simulator key");
    }
    let mut by_msgtype: BTreeMap<String, (ChatDataItem, Vec<u8>)> = BTreeMap::new();
    let mut seq = 0;
    loop {
        let page = post(
            "/cgi-bin/msgaudit/get_chat_data",
            json!({"seq": seq, "limit": 1000}),
        )
        .await;
        let page: ChatDataResponse = serde_json::from_slice(&page).expect("a page");
        let Some(last) = page.chatdata.last() else {
            break;
        };
        seq = last.seq;
        for item in page.chatdata {
            let Ok(key) = keyring.unwrap_random_key(item.publickey_ver, &item.encrypt_random_key)
            else {
                continue;
            };
            let Ok(plain) = SimCipher.decrypt(&key, &item.encrypt_chat_msg) else {
                continue;
            };
            let Ok(msg) = parse_message(&plain) else {
                continue;
            };
            let kind = if plain.iter().any(|&b| b < 0x20) {
                format!("{}-control-chars", msg.content.msgtype())
            } else {
                msg.content.msgtype().to_owned()
            };
            by_msgtype.entry(kind).or_insert((item, plain));
        }
    }
    let roomid = by_msgtype
        .values()
        .find_map(|(_, plain)| {
            let v: Value = serde_json::from_slice(plain).ok()?;
            v["roomid"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
        })
        .expect("a room message");
    write(
        "api_envelope",
        "groupchat_info.json",
        &post("/cgi-bin/msgaudit/groupchat/get", json!({"roomid": roomid})).await,
    );
    write(
        "api_envelope",
        "groupchat_items.json",
        &post(
            "/cgi-bin/msgaudit/groupchat/get",
            json!({"roomid": roomid, "seq": 0, "limit": 2}),
        )
        .await,
    );

    for (kind, (item, plain)) in &by_msgtype {
        write("message_normalize", &format!("sim-{kind}.json"), plain);
        let item = serde_json::to_vec(item).expect("item json");
        write("item_decrypt", &format!("sim-{kind}.json"), &item);
    }
    for (msgtype, json) in reference_samples() {
        write(
            "message_normalize",
            &format!("reference-{msgtype}.json"),
            json.as_bytes(),
        );
    }
    sim.shutdown().await;

    frames(&small_page);
    pems();
    let messages: Vec<Vec<u8>> = by_msgtype.values().map(|(_, p)| p.clone()).collect();
    store(&messages);
    write(
        "store_names",
        "corp-and-room",
        b"corp\0room:wrjc7bDwAASxc8tZvBErFE02BtPWyAAA",
    );
    write("store_names", "close-rooms", b"room:a.b\0room:a_b");
    eprintln!("seeds written under {FUZZ_DIR}/corpus");
}

/// `(msgtype, json)` of `crates/wecom-model/tests/it/samples.rs`: the reference's examples.
fn reference_samples() -> Vec<(String, String)> {
    let path = Path::new(FUZZ_DIR).join("../crates/wecom-model/tests/it/samples.rs");
    let text = std::fs::read_to_string(&path).expect("reference samples");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("r#\"") {
        let body = &rest[start + 3..];
        let end = body.find("\"#").expect("a closed raw string");
        let json = &body[..end];
        let msgtype = serde_json::from_str::<Value>(json)
            .ok()
            .and_then(|v| v["msgtype"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "none".to_owned());
        out.push((msgtype, json.to_owned()));
        rest = &body[end + 2..];
    }
    out
}

fn frames(page: &[u8]) {
    let requests = [
        Request::GetChatData {
            seq: 0,
            limit: 1000,
            proxy: b"http://proxy:3128".to_vec(),
            passwd: b"user:pass".to_vec(),
            timeout: 10,
        },
        Request::DecryptData {
            encrypt_key: b"0123456789abcdefghijklmnopqrstuv".to_vec(),
            encrypt_msg: b"bm90IHJlYWxseSBlbmNyeXB0ZWQ=".to_vec(),
        },
        Request::GetMediaData {
            indexbuf: b"Range:bytes=524288-1048575".to_vec(),
            sdkfileid: b"CtYBMzA2OTAyMDEwMjA0NjIzMDYw".to_vec(),
            proxy: Vec::new(),
            passwd: Vec::new(),
            timeout: 10,
        },
        Request::Ping,
    ];
    let responses = [
        Response::Ready { init_ret: 0 },
        Response::Reply {
            ret: 0,
            data: page.to_vec(),
            outindexbuf: Vec::new(),
            is_finish: true,
        },
        Response::Refused {
            reason: "argument contains a nul byte".to_owned(),
        },
        Response::StartupFailed {
            reason: "missing symbol NewSdk".to_owned(),
        },
    ];
    let mut stream = Vec::new();
    for (id, req) in (1u64..).zip(&requests) {
        let frame = encode_request(id, req);
        write("sdk_frame_decode", &format!("request-{}", req.op()), &frame);
        stream.extend_from_slice(&frame);
    }
    for (id, resp) in (1u64..).zip(&responses) {
        let frame = encode_response(id, resp);
        let name = format!("{resp:?}");
        let name = name.split([' ', '{']).next().unwrap_or("response");
        write("sdk_frame_decode", &format!("response-{name}"), &frame);
        stream.extend_from_slice(&frame);
    }
    write("sdk_frame_decode", "stream", &stream);
}

fn pems() {
    for (version, pem) in wecom_archive_fuzz::SIM_KEYS {
        write(
            "keyring_pem",
            &format!("sim-v{version}.pem"),
            pem.as_bytes(),
        );
    }
}

/// Segments, a resolved file and cursor files as the store writes them, in the input formats of
/// `store_recover` and `store_cursor`.
fn store(messages: &[Vec<u8>]) {
    let dir = std::env::temp_dir().join(format!("wecom-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sink = LocalSink::open(&dir, SinkOptions::default()).expect("sink");
    sink.recover(0).expect("recover");
    let mut lines = Vec::new();
    for (seq, plain) in (1u64..=4).zip(messages) {
        let msg = parse_message(plain).expect("a seed message parses");
        let ctx = NormalizeContext {
            corp_id: "wwsimcorp0001",
            stream: "corp",
            seq,
            key_version: 1,
        };
        let json = serde_json::to_vec(&normalize(&ctx, &msg)).expect("record json");
        lines.push(OutputLine {
            kind: LineKind::Record,
            seq,
            json,
        });
    }
    let item = ChatDataItem {
        seq: 5,
        msgid: "dead-1".to_owned(),
        publickey_ver: 9,
        ..ChatDataItem::default()
    };
    let dead = DeadLetter::new(
        "wwsimcorp0001",
        "corp",
        DeadLetterReason::UnknownKeyVersion,
        "no key for publickey_ver 9",
        item,
    );
    lines.push(OutputLine {
        kind: LineKind::DeadLetter,
        seq: 5,
        json: serde_json::to_vec(&dead).expect("dead letter json"),
    });
    sink.write_batch(&lines).expect("write");
    sink.append_resolved(&[5]).expect("resolved");

    let read = |sub: &str| {
        let segs = wecom_store::list_segments(&dir.join(sub)).expect("segments");
        std::fs::read(&segs[0]).expect("segment")
    };
    let messages = read("messages");
    let deadletter = read("deadletter");
    let resolved = std::fs::read(dir.join("deadletter/resolved.ndjson")).expect("resolved");
    let input = |after: u8, max: u8, messages: &[u8], tail: &[u8]| {
        let mut out = vec![after, max];
        for (tag, first, bytes) in [(b'm', 1, messages), (b'd', 5, deadletter.as_slice())] {
            out.extend_from_slice(b"\xff\xfe");
            out.extend_from_slice(&[tag, first]);
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(b"\xff\xfer");
        out.extend_from_slice(&resolved);
        out.extend_from_slice(tail);
        out
    };
    write("store_recover", "segments", &input(0, 255, &messages, b""));
    write(
        "store_recover",
        "segments-after-2",
        &input(2, 255, &messages, b""),
    );
    let torn = &messages[..messages.len() - messages.len() / 3];
    write(
        "store_recover",
        "torn-tail",
        &input(0, 255, torn, b"{\"seq\":"),
    );

    let cursors = CursorStore::open(&dir.join("cursors")).expect("cursor store");
    for (pick, stream) in [(0u8, "corp"), (1, "room:wrjc7bDwAASxc8tZvBErFE02BtPWyAAA")] {
        cursors.commit(stream, 1234).expect("commit");
        let mut seed = vec![pick];
        seed.extend(std::fs::read(cursors.path_for(stream).expect("path")).expect("cursor"));
        write("store_cursor", &format!("cursor-{pick}"), &seed);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
