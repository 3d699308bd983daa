//! `msgaudit_notify` callbacks, received by a small server in the test that checks the signature and
//! decrypts the event with its own few lines of WeCom's scheme.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut as _, KeyIvInit as _};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use wecom_sim::{NotifyConfig, SimConfig};

use crate::common::*;

const TOKEN: &str = "simNotifyToken42";
/// 43 characters whose last one carries non-zero trailing bits, as real keys do.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    /// The decrypted event XML.
    msg: String,
    receive_id: String,
    outer: String,
}

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Received>>,
    /// Answer HTTP 500 to this many callbacks first.
    fail_first: Mutex<usize>,
}

fn cdata<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}><![CDATA[");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {tag} in {xml}"))
        + open.len();
    let end = start + xml[start..].find("]]>").unwrap();
    &xml[start..end]
}

/// WeCom's scheme, written independently of the simulator: check the signature, then decrypt.
fn open_callback(q: &HashMap<String, String>, body: &str) -> (String, String) {
    let encrypted = cdata(body, "Encrypt");
    let mut parts = [TOKEN, &q["timestamp"], &q["nonce"], encrypted];
    parts.sort();
    let sig = hex::encode(Sha1::digest(parts.concat()));
    assert_eq!(sig, q["msg_signature"], "signature");
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let key = lenient.decode(format!("{AES_KEY}=")).unwrap();
    assert_eq!(key.len(), 32);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encrypted)
        .unwrap();
    assert_eq!(raw.len() % 32, 0, "padded to 32 bytes");
    let plain = cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &key[..16])
        .unwrap()
        .decrypt_padded_vec_mut::<NoPadding>(&raw)
        .unwrap();
    let pad = *plain.last().unwrap() as usize;
    assert!((1..=32).contains(&pad));
    assert!(plain[plain.len() - pad..]
        .iter()
        .all(|b| *b as usize == pad));
    let content = &plain[16..plain.len() - pad];
    let len = u32::from_be_bytes(content[..4].try_into().unwrap()) as usize;
    let msg = String::from_utf8(content[4..4 + len].to_vec()).unwrap();
    let receive_id = String::from_utf8(content[4 + len..].to_vec()).unwrap();
    (msg, receive_id)
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> StatusCode {
    let (msg, receive_id) = open_callback(&q, &body);
    r.got.lock().unwrap().push(Received {
        at: Instant::now(),
        msg,
        receive_id,
        outer: body,
    });
    let mut fail = r.fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn receiver(fail_first: usize) -> (Arc<Receiver>, SocketAddr) {
    let r = Arc::new(Receiver {
        fail_first: Mutex::new(fail_first),
        ..Receiver::default()
    });
    let app = axum::Router::new()
        .route("/callback", axum::routing::post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, addr)
}

fn notify_config(url: String, rate: f64, interval_ms: u64) -> SimConfig {
    let mut cfg = config(61, 30);
    cfg.live_rate_per_sec = rate;
    cfg.notify = Some(NotifyConfig {
        url,
        token: TOKEN.to_owned(),
        encoding_aes_key: AES_KEY.to_owned(),
        agent_id: "2000004".to_owned(),
        min_interval_ms: interval_ms,
    });
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_signed_encrypted_and_spaced() {
    let (r, addr) = receiver(0).await;
    let sim = serve(notify_config(format!("http://{addr}/callback"), 100.0, 200)).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let got = r.got.lock().unwrap().clone();
    assert!(got.len() >= 3, "{} callbacks", got.len());
    for c in &got {
        assert_eq!(c.receive_id, "wwsimcorp0001");
        assert_eq!(cdata(&c.outer, "ToUserName"), "wwsimcorp0001");
        assert_eq!(cdata(&c.outer, "AgentID"), "2000004");
        assert_eq!(cdata(&c.msg, "Event"), "msgaudit_notify");
        assert_eq!(cdata(&c.msg, "MsgType"), "event");
        assert_eq!(cdata(&c.msg, "FromUserName"), "sys");
        assert!(c.msg.contains("<AgentID>2000004</AgentID>"), "{}", c.msg);
        let created: i64 = c
            .msg
            .split("<CreateTime>")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((created - now_ms() / 1000).abs() < 60);
    }
    for w in got.windows(2) {
        // At most one callback per interval (receive times jitter a little with the transport).
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(150),
            "{:?}",
            w[1].at - w[0].at
        );
    }
    let stats = sim.stats();
    assert_eq!(stats.notify_failed, 0);
    assert!(stats.notify_sent as usize + 1 >= got.len() && stats.notify_sent as usize <= got.len());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_items_no_callback() {
    let (r, addr) = receiver(0).await;
    let sim = serve(notify_config(format!("http://{addr}/callback"), 0.0, 50)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(r.got.lock().unwrap().is_empty());
    assert_eq!(sim.stats().notify_sent, 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_callbacks_are_retried_and_never_disturb_serving() {
    // A receiver that answers 500 twice, then 200.
    let (r, addr) = receiver(2).await;
    let sim = serve(notify_config(format!("http://{addr}/callback"), 50.0, 100)).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let stats = sim.stats();
    assert_eq!(stats.notify_failed, 2, "{stats:?}");
    assert!(
        stats.notify_sent >= 1,
        "retried after the failures: {stats:?}"
    );
    assert!(r.got.lock().unwrap().len() >= 3);
    sim.shutdown().await;

    // Nobody listening: every callback fails, the archive API still answers.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sim = serve(notify_config(
        format!("http://{closed}/callback"),
        50.0,
        100,
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let newest = sim.stats().newest_seq;
    let walked = walk_upto(&client(), &sim.base_url(), 1000, newest).await;
    assert!(walked.len() >= 30);
    let stats = sim.stats();
    assert!(stats.notify_failed >= 2, "{stats:?}");
    assert_eq!(stats.notify_sent, 0);
    sim.shutdown().await;
}

#[test]
fn notify_config_is_validated_and_redacted() {
    let good = notify_config("http://127.0.0.1:1/cb".to_owned(), 1.0, 100);
    good.validate().unwrap();
    let debug = format!("{good:?}");
    assert!(!debug.contains(TOKEN) && !debug.contains(AES_KEY) && !debug.contains("sim-secret"));
    let with = |f: &dyn Fn(&mut NotifyConfig)| {
        let mut c = good.clone();
        f(c.notify.as_mut().unwrap());
        c.validate().unwrap_err().to_string()
    };
    assert!(with(&|n| {
        n.encoding_aes_key.pop();
    })
    .contains("notify.encoding_aes_key"));
    assert!(
        with(&|n| n.encoding_aes_key.replace_range(0..1, "*")).contains("notify.encoding_aes_key")
    );
    assert!(with(&|n| n.url = "ftp://x".to_owned()).contains("notify.url"));
    assert!(with(&|n| n.token.clear()).contains("notify.token"));
    assert!(with(&|n| n.min_interval_ms = 0).contains("notify.min_interval_ms"));
    let toml = r#"
        [notify]
        url = "http://127.0.0.1:9/cb"
        token = "t"
        encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
        min_interval_ms = 500
        [big_messages]
        every = 10
    "#;
    let parsed = SimConfig::from_toml(toml).unwrap();
    assert_eq!(parsed.notify.as_ref().unwrap().min_interval_ms, 500);
    assert_eq!(parsed.notify.as_ref().unwrap().agent_id, "2000004");
    assert_eq!(parsed.big_messages.every, 10);
    let err = SimConfig::from_toml(
        "[notify]\nurl = \"http://x\"\ntoken = \"t\"\nencoding_aes_key = \"k\"\nagentid = \"1\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("agentid"), "{err}");
    let err = SimConfig::from_toml("[big_messages]\ntext_byte = 1\n").unwrap_err();
    assert!(err.to_string().contains("text_byte"), "{err}");
}
