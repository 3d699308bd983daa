//! The archive contract over real HTTP (port 0): pages, decryption, determinism, media, faults,
//! retention, rooms, errors.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use md5::{Digest as _, Md5};
use serde_json::{json, Value};
use wecom_crypto::{MessageCipher as _, SimCipher};
use wecom_sim::{Fate, FaultConfig, SimServer, TruthItem};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_corpus_decrypts_and_matches_truth() {
    let mut cfg = config(7, 3000);
    cfg.faults = FaultConfig {
        duplicate_items: 1.0,
        seq_gaps: 0.1,
        corrupt_ciphertext: 0.01,
        unknown_key_version: 0.01,
        control_chars: 0.2,
        ..FaultConfig::default()
    };
    let sim = serve(cfg).await;
    let http = client();
    let served = walk(&http, &sim.base_url(), 1000).await;
    let by_seq = dedup(&served);
    assert!(served.len() > by_seq.len(), "duplicates were served");
    let truth: Vec<TruthItem> = sim.truth();
    assert_eq!(truth.len(), 3000);
    assert_eq!(by_seq.len(), 3000);
    let seqs: Vec<u64> = truth.iter().map(|t| t.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert!(seqs.windows(2).any(|w| w[1] - w[0] > 1), "seq gaps present");

    let keyring = keyring();
    let mut msgtypes = BTreeSet::new();
    let mut fates: HashMap<Fate, usize> = HashMap::new();
    let mut versions = BTreeSet::new();
    let mut control_seen = 0;
    for t in &truth {
        let item = &by_seq[&t.seq];
        assert_eq!(item["msgid"], t.msgid.as_str());
        let ver = item["publickey_ver"].as_u64().unwrap() as u32;
        assert_eq!(ver, t.key_version);
        versions.insert(ver);
        *fates.entry(t.fate).or_default() += 1;
        if t.fate == Fate::UnknownKeyVersion {
            assert_eq!(ver, 4);
            assert!(keyring
                .unwrap_random_key(ver, item["encrypt_random_key"].as_str().unwrap())
                .is_err());
            continue;
        }
        let key = keyring
            .unwrap_random_key(ver, item["encrypt_random_key"].as_str().unwrap())
            .unwrap();
        let plain = SimCipher.decrypt(&key, item["encrypt_chat_msg"].as_str().unwrap());
        if t.fate == Fate::CorruptCiphertext {
            assert!(plain.is_err(), "corrupt item {} decrypted", t.seq);
            continue;
        }
        let plain = plain.unwrap();
        let has_raw_controls = plain.iter().any(|b| *b < 0x20);
        assert_eq!(has_raw_controls, t.control_chars, "seq {}", t.seq);
        if has_raw_controls {
            control_seen += 1;
            assert!(serde_json::from_slice::<Value>(&plain).is_err());
        }
        let msg: Value = serde_json::from_str(&escape_controls(&plain)).unwrap();
        assert_eq!(msg["msgid"], t.msgid.as_str());
        assert_eq!(msg["action"], t.action.as_str());
        match &t.msgtype {
            Some(mt) => {
                assert_eq!(msg["msgtype"], mt.as_str());
                msgtypes.insert(mt.clone());
            }
            None => assert!(msg.get("msgtype").is_none() && msg["action"] == "switch"),
        }
        match &t.roomid {
            Some(r) => assert_eq!(msg["roomid"], r.as_str()),
            None => assert!(msg.get("roomid").is_none_or(|v| v == "")),
        }
        // Every media file of the item is named somewhere in the plaintext.
        let text = escape_controls(&plain);
        for m in &t.media {
            assert!(text.contains(&m.sdkfileid), "media of seq {}", t.seq);
            if m.md5_in_message {
                assert!(text.contains(&m.md5));
            }
        }
    }
    assert!(control_seen > 0);
    assert_eq!(versions, BTreeSet::from([1, 2, 3, 4]));
    assert!(fates[&Fate::CorruptCiphertext] > 0 && fates[&Fate::UnknownKeyVersion] > 0);
    let expected: BTreeSet<String> = wecom_sim::all_msgtypes()
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(msgtypes, expected);
    for must in [
        "meeting_voice_call",
        "voip_doc_share",
        "jielong",
        "note",
        "chatrecord",
        "mixed",
    ] {
        assert!(msgtypes.contains(must));
    }
    assert!(truth.iter().any(|t| t.action == "switch"));
    assert!(truth.iter().any(|t| t.msgid.ends_with("_external")));
    assert!(truth
        .iter()
        .any(|t| t.msgid.bytes().all(|b| b.is_ascii_digit())));
    sim.shutdown().await;
}

async fn page_bytes(http: &reqwest::Client, base: &str, seq: u64) -> Vec<u8> {
    let token = fetch_token(http, base).await;
    http.post(format!(
        "{base}/cgi-bin/msgaudit/get_chat_data?access_token={token}"
    ))
    .json(&json!({"seq": seq, "limit": 200}))
    .send()
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap()
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_serves_identical_bytes() {
    let mut a_cfg = config(11, 600);
    a_cfg.faults.seq_gaps = 0.2;
    let mut c_cfg = a_cfg.clone();
    c_cfg.seed = 12;
    let (a, b, c) = (
        serve(a_cfg.clone()).await,
        serve(a_cfg).await,
        serve(c_cfg).await,
    );
    let http = client();
    for seq in [0, 150] {
        let pa = page_bytes(&http, &a.base_url(), seq).await;
        assert_eq!(pa, page_bytes(&http, &b.base_url(), seq).await);
        assert_ne!(pa, page_bytes(&http, &c.base_url(), seq).await);
    }
    let ta = a.truth();
    assert_eq!(ta, b.truth());
    let m = ta.iter().flat_map(|t| &t.media).next().unwrap();
    let url = |s: &SimServer, tok: &str| {
        format!(
            "{}/cgi-bin/media/get?access_token={tok}&sdkfileid={}",
            s.base_url(),
            urlenc(&m.sdkfileid)
        )
    };
    let ka = fetch_token(&http, &a.base_url()).await;
    let kb = fetch_token(&http, &b.base_url()).await;
    let ba = http
        .get(url(&a, &ka))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let bb = http
        .get(url(&b, &kb))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(ba, bb);
    for s in [a, b, c] {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_matches_md5_and_resumes_with_range() {
    let mut cfg = config(3, 400);
    cfg.media.huge_media = vec![9 * 1024 * 1024 + 3];
    let sim = serve(cfg).await;
    let http = client();
    let base = sim.base_url();
    let token = fetch_token(&http, &base).await;
    let truth = sim.truth();
    let media: Vec<_> = truth.iter().flat_map(|t| t.media.clone()).collect();
    assert!(media.len() > 20);
    let get = |id: &str, range: Option<u64>| {
        let mut req = http.get(format!(
            "{base}/cgi-bin/media/get?access_token={token}&sdkfileid={}",
            urlenc(id)
        ));
        if let Some(r) = range {
            req = req.header("Range", format!("bytes={r}-"));
        }
        req.send()
    };
    for m in media.iter().take(12) {
        let resp = get(&m.sdkfileid, None).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/octet-stream");
        assert_eq!(resp.content_length(), Some(m.size));
        let body = resp.bytes().await.unwrap();
        assert_eq!(md5_hex(&body), m.md5);
        let mid = m.size / 2 + 1;
        let tail = get(&m.sdkfileid, Some(mid)).await.unwrap();
        assert_eq!(tail.status(), 206);
        assert_eq!(
            tail.headers()["content-range"].to_str().unwrap(),
            format!("bytes {mid}-{}/{}", m.size - 1, m.size)
        );
        let tail = tail.bytes().await.unwrap();
        let mut joined = body[..mid as usize].to_vec();
        joined.extend_from_slice(&tail);
        assert_eq!(md5_hex(&joined), m.md5);
    }
    // The huge file streams chunk by chunk; hash it incrementally.
    let huge = media
        .iter()
        .find(|m| m.size == 9 * 1024 * 1024 + 3)
        .expect("huge media in truth");
    let mut resp = get(&huge.sdkfileid, None).await.unwrap();
    let mut hasher = Md5::new();
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        n += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(n, huge.size);
    assert_eq!(hex::encode(hasher.finalize()), huge.md5);
    // Unknown and unsatisfiable.
    let bad: Value = get("bm9wZQ==", None).await.unwrap().json().await.unwrap();
    assert_eq!(bad["errcode"], 10005);
    assert_eq!(
        get(&media[0].sdkfileid, Some(media[0].size))
            .await
            .unwrap()
            .status(),
        416
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_client_gets_everything_through_faults() {
    let mut cfg = config(5, 1500);
    cfg.faults = FaultConfig {
        token_expire_early: 0.05,
        rate_limit_45009: 0.1,
        system_busy: 0.1,
        http_5xx: 0.1,
        connection_reset: 0.1,
        slow_response: 0.05,
        slow_ms: 20,
        duplicate_items: 0.2,
        seq_gaps: 0.05,
        ..FaultConfig::default()
    };
    let sim = serve(cfg).await;
    let http = client();
    let served = walk(&http, &sim.base_url(), 100).await;
    let got: Vec<u64> = dedup(&served).into_keys().collect();
    let want: Vec<u64> = sim.truth().iter().map(|t| t.seq).collect();
    assert_eq!(got, want);
    let stats: wecom_sim::SimStats = http
        .get(format!("{}/_sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for f in [
        "token_expire_early",
        "rate_limit_45009",
        "system_busy",
        "http_5xx",
        "connection_reset",
        "duplicate_items",
    ] {
        assert!(
            stats.faults.get(f).copied().unwrap_or(0) > 0,
            "{f} never injected: {stats:?}"
        );
    }
    assert!(stats.requests["get_chat_data"] > 15);
    assert!(stats.errcodes["42001"] > 0);

    // Media faults: a retrying download still ends with the right bytes.
    sim.set_faults(FaultConfig {
        media_truncate: 0.2,
        media_reset: 0.2,
        media_5xx: 0.2,
        media_md5_mismatch: 0.3,
        ..FaultConfig::default()
    });
    let truth = sim.truth();
    let token = fetch_token(&http, &sim.base_url()).await;
    for m in truth.iter().flat_map(|t| &t.media).take(15) {
        let url = format!(
            "{}/cgi-bin/media/get?access_token={token}&sdkfileid={}",
            sim.base_url(),
            urlenc(&m.sdkfileid)
        );
        let mut ok = false;
        for _ in 0..50 {
            let Ok(resp) = http.get(&url).send().await else {
                continue;
            };
            if resp.status() != 200 {
                continue;
            }
            let Ok(body) = resp.bytes().await else {
                continue;
            };
            if body.len() as u64 == m.size && md5_hex(&body) == m.md5 {
                ok = true;
                break;
            }
        }
        assert!(ok, "media {} never arrived intact", m.sdkfileid);
    }
    let stats = sim.stats();
    for f in [
        "media_truncate",
        "media_reset",
        "media_5xx",
        "media_md5_mismatch",
    ] {
        assert!(
            stats.faults.get(f).copied().unwrap_or(0) > 0,
            "{f} never injected"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_floor_restarts_silently_and_rooms_stream_their_items() {
    let mut cfg = config(9, 800);
    cfg.faults.seq_gaps = 0.1;
    let sim = serve(cfg).await;
    let http = client();
    let base = sim.base_url();
    let truth = sim.truth();
    let floor = truth[300].seq;
    let res: Value = http
        .post(format!("{base}/_sim/retention"))
        .json(&json!({"floor_seq": floor}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["errcode"], 0);
    let mut token = String::new();
    let page = call(
        &http,
        &base,
        &mut token,
        "/cgi-bin/msgaudit/get_chat_data",
        &json!({"seq": 5, "limit": 10}),
    )
    .await;
    assert_eq!(page["chatdata"][0]["seq"].as_u64().unwrap(), floor);
    sim.set_retention_floor_seq(0);

    // Room streams: exactly the corp items of that room, same msgid and ciphertext, room-local seqs.
    let corp = dedup(&walk(&http, &base, 1000).await);
    let mut rooms: BTreeMap<String, Vec<&TruthItem>> = BTreeMap::new();
    for t in &truth {
        if let Some(r) = &t.roomid {
            rooms.entry(r.clone()).or_default().push(t);
        }
    }
    assert!(rooms.len() > 1);
    for (roomid, items) in &rooms {
        let info = call(
            &http,
            &base,
            &mut token,
            "/cgi-bin/msgaudit/groupchat/get",
            &json!({"roomid": roomid}),
        )
        .await;
        assert!(info["roomname"].as_str().is_some_and(|n| !n.is_empty()));
        assert!(!info["members"].as_array().unwrap().is_empty());
        let mut got = Vec::new();
        let mut seq = 0;
        loop {
            let page = call(
                &http,
                &base,
                &mut token,
                "/cgi-bin/msgaudit/groupchat/get",
                &json!({"roomid": roomid, "seq": seq, "limit": 37}),
            )
            .await;
            let chat = page["chatdata"].as_array().unwrap().clone();
            if chat.is_empty() {
                break;
            }
            seq = chat.last().unwrap()["seq"].as_u64().unwrap();
            got.extend(chat);
        }
        assert_eq!(got.len(), items.len());
        for (g, t) in got.iter().zip(items) {
            assert_eq!(g["seq"].as_u64(), t.room_seq);
            let c = &corp[&t.seq];
            assert_eq!(g["msgid"], c["msgid"]);
            assert_eq!(g["encrypt_chat_msg"], c["encrypt_chat_msg"]);
        }
    }
    let unknown = http
        .post(format!(
            "{base}/cgi-bin/msgaudit/groupchat/get?access_token={token}"
        ))
        .json(&json!({"roomid": "wrnope"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_ne!(unknown["errcode"], 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_envelopes() {
    let sim = serve(config(2, 50)).await;
    let http = client();
    let base = sim.base_url();
    let get_json = |url: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let code = |v: Value| v["errcode"].as_i64().unwrap();
    assert_eq!(
        code(
            get_json(format!(
                "{base}/cgi-bin/gettoken?corpid=x&corpsecret=sim-secret"
            ))
            .await
        ),
        40013
    );
    assert_eq!(
        code(
            get_json(format!(
                "{base}/cgi-bin/gettoken?corpid=wwsimcorp0001&corpsecret=x"
            ))
            .await
        ),
        40001
    );
    let ok = get_json(format!(
        "{base}/cgi-bin/gettoken?corpid=wwsimcorp0001&corpsecret=sim-secret"
    ))
    .await;
    assert_eq!(ok["expires_in"], 7200);
    let token = ok["access_token"].as_str().unwrap().to_owned();
    let post = |tok: &str, body: Value| {
        let http = http.clone();
        let url = format!("{base}/cgi-bin/msgaudit/get_chat_data?access_token={tok}");
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(code(post("", json!({"seq": 0, "limit": 10})).await), 41001);
    assert_eq!(
        code(post("bogus", json!({"seq": 0, "limit": 10})).await),
        40014
    );
    assert_eq!(
        code(post(&token, json!({"seq": 0, "limit": 0})).await),
        40058
    );
    assert_eq!(
        code(post(&token, json!({"seq": 0, "limit": 1001})).await),
        40058
    );
    let all = post(&token, json!({"seq": 0, "limit": 1000})).await;
    assert_eq!(all["chatdata"].as_array().unwrap().len(), 50);
    let last = all["chatdata"][49]["seq"].as_u64().unwrap();
    let empty = post(&token, json!({"seq": last, "limit": 1000})).await;
    assert_eq!(empty["errcode"], 0);
    assert!(empty["chatdata"].as_array().unwrap().is_empty());
    let permit = http
        .post(format!(
            "{base}/cgi-bin/msgaudit/get_permit_user_list?access_token={token}"
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(permit["ids"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == "zhangsan"));
    let truth_lines = http
        .get(format!("{base}/_sim/truth"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(truth_lines.lines().count(), 50);
    let first: TruthItem = serde_json::from_str(truth_lines.lines().next().unwrap()).unwrap();
    assert_eq!(first, sim.truth()[0]);
    sim.shutdown().await;
}

/// Wrong bytes (the md5-mismatch fault) are never what two complete downloads in a row of the same
/// media carry, even when a response after them is cut short by another fault: a client that keeps
/// media without an md5 only when two downloads agree must never agree on wrong bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_media_bytes_never_come_twice_in_a_row() {
    let sim = serve(config(5, 300)).await;
    sim.set_faults(FaultConfig {
        media_truncate: 0.25,
        media_reset: 0.25,
        media_md5_mismatch: 0.4,
        ..FaultConfig::default()
    });
    let http = client();
    let truth = sim.truth();
    let token = fetch_token(&http, &sim.base_url()).await;
    let mut complete = 0;
    for m in truth.iter().flat_map(|t| &t.media).take(20) {
        let url = format!(
            "{}/cgi-bin/media/get?access_token={token}&sdkfileid={}",
            sim.base_url(),
            urlenc(&m.sdkfileid)
        );
        let mut previous_wrong: Option<String> = None;
        for _ in 0..30 {
            let Ok(resp) = http.get(&url).send().await else {
                continue;
            };
            if resp.status() != 200 {
                continue;
            }
            let Ok(body) = resp.bytes().await else {
                continue; // reset mid-body
            };
            if body.len() as u64 != m.size {
                continue; // cut short
            }
            complete += 1;
            let md5 = md5_hex(&body);
            if md5 == m.md5 {
                previous_wrong = None;
                continue;
            }
            assert_ne!(
                previous_wrong.as_deref(),
                Some(md5.as_str()),
                "media {}: two complete downloads in a row carried the same wrong bytes",
                m.sdkfileid
            );
            previous_wrong = Some(md5);
        }
    }
    assert!(complete > 100, "only {complete} complete downloads");
    let stats = sim.stats();
    assert!(stats.faults.get("media_md5_mismatch").copied().unwrap_or(0) > 20);
    sim.shutdown().await;
}
