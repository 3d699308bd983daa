//! Helpers shared by the test modules: config, a retrying client, walking and decrypting the stream.

use std::collections::BTreeMap;
use std::time::Duration;

use md5::{Digest as _, Md5};
use serde_json::{json, Value};
use wecom_crypto::{Keyring, MessageCipher as _, SimCipher};
use wecom_sim::{start, Fate, SimConfig, SimServer, REPO_ROOT};

pub fn anchor() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now - now % 60_000
}

pub fn config(seed: u64, messages: u64) -> SimConfig {
    SimConfig {
        seed,
        messages,
        anchor_unix_ms: Some(anchor()),
        ..SimConfig::default()
    }
}

pub async fn serve(cfg: SimConfig) -> SimServer {
    start(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub fn keyring() -> Keyring {
    let mut k = Keyring::default();
    for v in 1..=3 {
        k.load_pem_file(
            v,
            &std::path::Path::new(REPO_ROOT).join(format!("config/sim-keys/v{v}.pem")),
        )
        .unwrap();
    }
    k
}

/// Escapes raw control characters (they only occur inside strings in the simulator's compact JSON).
pub fn escape_controls(raw: &[u8]) -> String {
    let s = std::str::from_utf8(raw).expect("utf-8 plaintext");
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c as u32) < 0x20 {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// One API call with retries on every transient failure; returns the JSON body with errcode 0.
pub async fn call(
    http: &reqwest::Client,
    base: &str,
    token: &mut String,
    path: &str,
    body: &Value,
) -> Value {
    for _ in 0..200 {
        if token.is_empty() {
            *token = fetch_token(http, base).await;
        }
        let url = format!("{base}{path}?access_token={token}");
        let Ok(resp) = http.post(&url).json(body).send().await else {
            continue;
        };
        if !resp.status().is_success() {
            continue;
        }
        let Ok(bytes) = resp.bytes().await else {
            continue;
        };
        let v: Value = serde_json::from_slice(&bytes).expect("complete bodies are json");
        match v["errcode"].as_i64().unwrap() {
            0 => return v,
            40014 | 42001 => token.clear(),
            -1 | 45009 => {}
            other => panic!("unexpected errcode {other}: {v}"),
        }
    }
    panic!("too many retries for {path}");
}

pub async fn fetch_token(http: &reqwest::Client, base: &str) -> String {
    for _ in 0..200 {
        let url = format!("{base}/cgi-bin/gettoken?corpid=wwsimcorp0001&corpsecret=sim-secret");
        let Ok(resp) = http.get(&url).send().await else {
            continue;
        };
        let Ok(v) = resp.json::<Value>().await else {
            continue;
        };
        if v["errcode"] == 0 {
            return v["access_token"].as_str().unwrap().to_owned();
        }
    }
    panic!("no token");
}

/// Walks the corp stream from 0 to the end; returns every item as served (duplicates included).
pub async fn walk(http: &reqwest::Client, base: &str, limit: u64) -> Vec<Value> {
    walk_upto(http, base, limit, u64::MAX).await
}

/// Like [`walk`], but stops once an item with seq `upto` or above arrived (for live corpora).
pub async fn walk_upto(http: &reqwest::Client, base: &str, limit: u64, upto: u64) -> Vec<Value> {
    let mut token = String::new();
    let mut seq = 0u64;
    let mut all = Vec::new();
    loop {
        let page = call(
            http,
            base,
            &mut token,
            "/cgi-bin/msgaudit/get_chat_data",
            &json!({"seq": seq, "limit": limit}),
        )
        .await;
        let items = page["chatdata"].as_array().unwrap().clone();
        let max = items.iter().map(|i| i["seq"].as_u64().unwrap()).max();
        match max {
            Some(m) if m > seq => seq = m,
            _ => break,
        }
        all.extend(items);
        if seq >= upto {
            break;
        }
    }
    all
}

pub fn dedup(items: &[Value]) -> BTreeMap<u64, Value> {
    let mut by_seq = BTreeMap::new();
    for it in items {
        let seq = it["seq"].as_u64().unwrap();
        if let Some(prev) = by_seq.insert(seq, it.clone()) {
            assert_eq!(prev, *it, "a repeated item is byte-identical");
        }
    }
    by_seq
}

pub fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// Every item of the corp stream that decrypts, as message JSON by corp seq (raw control characters
/// escaped first).
pub async fn decrypted_messages(sim: &SimServer) -> BTreeMap<u64, Value> {
    decrypted_messages_upto(sim, u64::MAX).await
}

/// Like [`decrypted_messages`], up to the first item with seq `upto` or above.
pub async fn decrypted_messages_upto(sim: &SimServer, upto: u64) -> BTreeMap<u64, Value> {
    let http = client();
    let items = dedup(&walk_upto(&http, &sim.base_url(), 1000, upto).await);
    let keyring = keyring();
    let truth = sim.truth();
    let mut out = BTreeMap::new();
    for t in truth
        .iter()
        .filter(|t| t.fate == Fate::Ok && items.contains_key(&t.seq))
    {
        let item = &items[&t.seq];
        let ver = item["publickey_ver"].as_u64().unwrap() as u32;
        let key = keyring
            .unwrap_random_key(ver, item["encrypt_random_key"].as_str().unwrap())
            .unwrap();
        let plain = SimCipher
            .decrypt(&key, item["encrypt_chat_msg"].as_str().unwrap())
            .unwrap();
        out.insert(
            t.seq,
            serde_json::from_str(&escape_controls(&plain)).unwrap(),
        );
    }
    out
}

/// The bytes of one media file (no faults expected).
pub async fn media_bytes(
    http: &reqwest::Client,
    sim: &SimServer,
    sdkfileid: &str,
    from: u64,
) -> Vec<u8> {
    let token = fetch_token(http, &sim.base_url()).await;
    let mut req = http.get(format!(
        "{}/cgi-bin/media/get?access_token={token}&sdkfileid={}",
        sim.base_url(),
        urlenc(sdkfileid)
    ));
    if from > 0 {
        req = req.header("Range", format!("bytes={from}-"));
    }
    let resp = req.send().await.unwrap();
    assert!(
        resp.status().is_success(),
        "media {sdkfileid}: {}",
        resp.status()
    );
    resp.bytes().await.unwrap().to_vec()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
