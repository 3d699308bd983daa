//! The gateway's forwarding of the metadata calls to Tencent's HTTP API, against a small upstream
//! that checks what reaches it: the gateway's own access token (never the client's bearer or token),
//! the client's body as sent, and answers relayed byte for byte.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use wecom_sdk::{start_gateway, GatewayConfig, GatewayHandle, SdkPool, Secret};

use crate::common::{pool_config, standin_lib};

const CORP: &str = "wwgatewaycorp";
const SECRET: &str = "corp-secret-of-the-gateway";
const BEARER: &str = "bearer-of-the-gateway";

/// One call that reached the upstream.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    access_token: Option<String>,
    authorization: Option<String>,
    body: Vec<u8>,
}

#[derive(Default)]
struct Upstream {
    gettokens: AtomicU64,
    valid: Mutex<Option<String>>,
    seen: Mutex<Vec<Seen>>,
    /// The next API call answers 42001 and invalidates the current token.
    expire_next: AtomicBool,
}

/// Canned answers, with spacing and fields of their own so that a re-serialisation would show.
fn answer(path: &str) -> &'static str {
    match path {
        "/cgi-bin/msgaudit/groupchat/get" => {
            r#"{"errcode":0,"errmsg":"ok", "roomname":"项目群","creator":"zhangsan","room_create_time":1592814860,"notice":"","members":[{"memberid":"zhangsan","jointime":1592814860}],"x_future_field":[1,2.50,null]}"#
        }
        "/cgi-bin/msgaudit/get_permit_user_list" => {
            r#"{"errcode":0,"errmsg":"ok","ids":["a","b"] }"#
        }
        "/cgi-bin/msgaudit/check_single_agree" => {
            r#"{"errcode":0,"errmsg":"ok","agreeinfo":[{"status_change_time":1562766651,"userid":"u","exteranalopenid":"wm","agree_status":"Agree"}]}"#
        }
        _ => {
            r#"{"errcode":0,"errmsg":"ok","voteinfo":[{"voteid":"v","status_change_time":1,"vote_status":"Agree"}]}"#
        }
    }
}

type Q = Query<std::collections::HashMap<String, String>>;

async fn up_gettoken(State(up): State<Arc<Upstream>>, Query(q): Q) -> impl IntoResponse {
    if q.get("corpid").map(String::as_str) != Some(CORP)
        || q.get("corpsecret").map(String::as_str) != Some(SECRET)
    {
        return r#"{"errcode":40001,"errmsg":"invalid credential"}"#.to_owned();
    }
    let n = up.gettokens.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("up-token-{n}");
    *up.valid.lock().unwrap() = Some(token.clone());
    format!(r#"{{"errcode":0,"errmsg":"ok","access_token":"{token}","expires_in":7200}}"#)
}

async fn up_api(
    State(up): State<Arc<Upstream>>,
    Query(q): Q,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let token = q.get("access_token").cloned();
    up.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        access_token: token.clone(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    });
    let mut valid = up.valid.lock().unwrap();
    let json = |s: &str| ([(header::CONTENT_TYPE, "application/json")], s.to_owned());
    if token.is_none() || *valid != token {
        return json(r#"{"errcode":40014,"errmsg":"invalid access_token"}"#);
    }
    if up.expire_next.swap(false, Ordering::SeqCst) {
        *valid = None;
        return json(r#"{"errcode":42001,"errmsg":"access_token expired"}"#);
    }
    json(answer(uri.path()))
}

async fn start_upstream() -> (Arc<Upstream>, String) {
    let up = Arc::new(Upstream::default());
    let app = Router::new()
        .route("/cgi-bin/gettoken", get(up_gettoken))
        .route("/cgi-bin/msgaudit/groupchat/get", post(up_api))
        .route("/cgi-bin/msgaudit/get_permit_user_list", post(up_api))
        .route("/cgi-bin/msgaudit/check_single_agree", post(up_api))
        .route("/cgi-bin/msgaudit/check_room_agree", post(up_api))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (up, format!("http://{addr}"))
}

async fn pool(secret: &str) -> SdkPool {
    let mut cfg = pool_config(standin_lib(), CORP, secret, 1);
    cfg.worker_env
        .push(("WECOM_STANDIN_BASE_URL".into(), "http://127.0.0.1:9".into()));
    SdkPool::start(cfg).await.expect("pool over the stand-in")
}

async fn gateway(pool: &SdkPool, upstream: &str) -> GatewayHandle {
    let mut cfg = GatewayConfig::new(CORP, Secret::new(BEARER));
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.upstream_base_url = upstream.to_owned();
    cfg.upstream_timeout = Duration::from_secs(5);
    start_gateway(pool.clone(), cfg).await.expect("gateway")
}

/// POSTs `body` to the gateway with the bearer; the raw answer.
async fn call(gw: &GatewayHandle, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", gw.base_url()))
        .bearer_auth(BEARER)
        .body(body.to_vec())
        .send()
        .await
        .expect("gateway answers");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

fn errcode(body: &[u8]) -> i64 {
    serde_json::from_slice::<Value>(body).expect("json")["errcode"]
        .as_i64()
        .expect("errcode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_calls_reach_upstream_with_the_gateways_token_and_come_back_unchanged() {
    let (up, base) = start_upstream().await;
    let pool = pool(SECRET).await;
    let gw = gateway(&pool, &base).await;

    let room = br#"{"roomid":"wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"}"#;
    for (path, body) in [
        ("/cgi-bin/msgaudit/groupchat/get", &room[..]),
        ("/cgi-bin/msgaudit/get_permit_user_list", b"{\"type\":1}"),
        (
            "/cgi-bin/msgaudit/check_single_agree",
            br#"{"info":[{"userid":"u","exteranalopenid":"wm"}]}"#,
        ),
        ("/cgi-bin/msgaudit/check_room_agree", br#"{"roomid":"wr1"}"#),
    ] {
        let (status, got) = call(&gw, path, body).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(String::from_utf8(got).unwrap(), answer(path), "{path}");
        let seen = up.seen.lock().unwrap().last().cloned().expect("forwarded");
        assert_eq!(seen.path, path);
        assert_eq!(seen.body, body, "{path}: the body reaches upstream as sent");
        assert_eq!(seen.access_token.as_deref(), Some("up-token-1"), "{path}");
        assert!(
            seen.authorization
                .as_deref()
                .is_none_or(|a| !a.contains(BEARER)),
            "{path}: the client's bearer stays at the gateway"
        );
    }
    assert_eq!(
        up.gettokens.load(Ordering::SeqCst),
        1,
        "the token is cached"
    );

    // A client authorised with the gateway's own access token: upstream still sees its own token.
    let v: Value = reqwest::get(format!(
        "{}/cgi-bin/gettoken?corpid={CORP}&corpsecret={BEARER}",
        gw.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let client_token = v["access_token"]
        .as_str()
        .expect("gateway token")
        .to_owned();
    let got = reqwest::Client::new()
        .post(format!(
            "{}/cgi-bin/msgaudit/groupchat/get?access_token={client_token}",
            gw.base_url()
        ))
        .body(room.to_vec())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        &got[..],
        answer("/cgi-bin/msgaudit/groupchat/get").as_bytes()
    );
    let seen = up.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.access_token.as_deref(), Some("up-token-1"));
    assert_ne!(seen.access_token.as_deref(), Some(client_token.as_str()));

    // Upstream expires the token: the gateway fetches a new one and repeats the call once.
    up.expire_next.store(true, Ordering::SeqCst);
    let before = up.seen.lock().unwrap().len();
    let (_, got) = call(
        &gw,
        "/cgi-bin/msgaudit/check_room_agree",
        b"{\"roomid\":\"wr1\"}",
    )
    .await;
    assert_eq!(
        String::from_utf8(got).unwrap(),
        answer("/cgi-bin/msgaudit/check_room_agree")
    );
    assert_eq!(up.gettokens.load(Ordering::SeqCst), 2);
    let tokens: Vec<Option<String>> = up.seen.lock().unwrap()[before..]
        .iter()
        .map(|s| s.access_token.clone())
        .collect();
    assert_eq!(
        tokens,
        [Some("up-token-1".to_owned()), Some("up-token-2".to_owned())]
    );

    // Not forwarded: room paging, an unauthorised caller, an oversized body, a body without roomid.
    let before = up.seen.lock().unwrap().len();
    let (_, got) = call(
        &gw,
        "/cgi-bin/msgaudit/groupchat/get",
        br#"{"roomid":"wr1","seq":0,"limit":10}"#,
    )
    .await;
    assert_eq!(errcode(&got), 48002);
    let (_, got) = call(&gw, "/cgi-bin/msgaudit/groupchat/get", br#"{"name":"x"}"#).await;
    assert_eq!(errcode(&got), 40058);
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/cgi-bin/msgaudit/get_permit_user_list",
            gw.base_url()
        ))
        .bearer_auth("not-the-bearer")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(errcode(&resp.bytes().await.unwrap()), 40014);
    let huge = format!(r#"{{"info":"{}"}}"#, "x".repeat(100 * 1024));
    let (status, _) = call(&gw, "/cgi-bin/msgaudit/check_single_agree", huge.as_bytes()).await;
    assert_eq!(status, 413);
    assert_eq!(
        up.seen.lock().unwrap().len(),
        before,
        "none of these reached upstream"
    );

    gw.shutdown().await.expect("gateway stops");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_come_back_as_envelopes_without_secrets() {
    let (up, base) = start_upstream().await;
    // The gateway's corp secret is not the one upstream knows.
    let wrong = pool("a-wrong-corp-secret").await;
    let gw = gateway(&wrong, &base).await;
    let (_, got) = call(&gw, "/cgi-bin/msgaudit/get_permit_user_list", b"{}").await;
    let text = String::from_utf8(got.clone()).unwrap();
    assert_eq!(errcode(&got), 40001, "{text}");
    assert!(text.contains("upstream gettoken failed"), "{text}");
    assert!(text.contains("check the gateway's corp secret"), "{text}");
    assert!(!text.contains("a-wrong-corp-secret"), "{text}");
    assert!(up.seen.lock().unwrap().is_empty());
    gw.shutdown().await.expect("gateway stops");

    // Upstream unreachable: retriable for the client.
    let gw = gateway(&wrong, "http://127.0.0.1:9").await;
    let (_, got) = call(
        &gw,
        "/cgi-bin/msgaudit/check_room_agree",
        b"{\"roomid\":\"r\"}",
    )
    .await;
    let text = String::from_utf8(got.clone()).unwrap();
    assert_eq!(errcode(&got), -1, "{text}");
    assert!(!text.contains("a-wrong-corp-secret"), "{text}");
    gw.shutdown().await.expect("gateway stops");
    wrong.shutdown().await;
}
