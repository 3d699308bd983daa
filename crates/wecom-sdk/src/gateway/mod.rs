//! The SDK gateway: the project's HTTP archive contract (reference §1) served from the SDK pool, so the
//! SDK runs on the whitelisted host while the pipeline runs elsewhere with `source = "http"`.
//!
//! - `GET /cgi-bin/gettoken?corpid=ID&corpsecret=TOKEN`: `corpid` must be the gateway's corp and
//!   `corpsecret` the gateway's **bearer token** (not the corp secret, which never leaves the gateway);
//!   answers a random access token valid `token_ttl`. A plain `wecom_api::ArchiveClient` configured
//!   with the bearer token as its secret therefore works unchanged.
//! - Every other call is authorised by `access_token=` from `gettoken` **or** by
//!   `Authorization: Bearer TOKEN` (handy for curl and health checks).
//! - `POST /cgi-bin/msgaudit/get_chat_data` `{"seq":S,"limit":L}`: `GetChatData`'s JSON passed through
//!   as it is (items stay encrypted: the gateway holds no private key).
//! - `GET /cgi-bin/media/get?sdkfileid=F`: the file streamed chunk by chunk from `GetMediaData`, one
//!   chunk in flight. `Range: bytes=N-` (or `N-M`) starts at `Range:bytes=N-…`, the index-buffer format
//!   of the SDK's own `outindexbuf`. The answer is 206; since the SDK never tells a file's size, its
//!   `Content-Range` is `bytes N-END/TOTAL` only when the first chunk finishes the file, else
//!   `bytes N-*/*` (start known, end and total not). An SDK failure before the first byte is an error
//!   envelope; one mid-stream aborts the body (the client resumes with `Range`).
//! - `GET /healthz`: 200 when a worker answers a ping.
//! - `POST /cgi-bin/msgaudit/groupchat/get` `{"roomid":R}`, `POST .../get_permit_user_list`,
//!   `POST .../check_single_agree`, `POST .../check_room_agree`: not the SDK's but Tencent's plain HTTP
//!   API, forwarded to `upstream_base_url` with the gateway's own access token (`gateway/upstream.rs`);
//!   the JSON answer is passed through unchanged. An upstream that cannot be reached answers -1
//!   (retriable). A `groupchat/get` body with `seq` or `limit` (a room's items) is answered with
//!   errcode 48002: the SDK has no per-room paging.
//! - Request bodies are capped at 64 KiB (larger ones get HTTP 413).
//!
//! Error envelopes (HTTP 200) use errcodes whose `wecom_api::ErrorClass` matches [`SdkError::class`]:
//!
//! | SdkError | errcode |
//! |---|---|
//! | SDK 10001 | 10001 (retriable) |
//! | SDK 10002 / 10003 on get_chat_data, timeouts, a crash on get_chat_data, a worker that cannot start for now, the pool shutting down | -1 (retriable) |
//! | SDK 10005, 10010, other codes | the code (item / item / fatal) |
//! | a crash or 10006/10008/10002 on media | 10002 (item) |
//! | bad parameter | 40058 |
//! | pool unusable (library, Init) | 10003 (fatal for the client) |

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::config::GatewayConfig;
use crate::{SdkError, SdkErrorClass, SdkPool};

mod forward;
mod media;
mod upstream;

use forward::{forward, groupchat_get};
use media::media_get;
use upstream::Upstream;

const ERR_INVALID_PARAM: i64 = 40058;
const ERR_NOT_SERVED: i64 = 48002;
const ERR_POOL_UNUSABLE: i64 = 10003;
const ERR_BUSY: i64 = -1;
/// Largest request body accepted (the biggest legitimate one, `check_single_agree` with 100 pairs,
/// is a few KiB).
const MAX_REQUEST_BODY: usize = 64 * 1024;

pub(super) struct Gw {
    pool: SdkPool,
    corp_id: String,
    bearer: wecom_api::Secret,
    token_ttl: Duration,
    tokens: Mutex<HashMap<String, Instant>>,
    upstream: Upstream,
}

/// A running gateway.
pub struct GatewayHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl GatewayHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (an ArchiveClient `base_url`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for in-flight responses (at most 10 s).
    pub async fn shutdown(mut self) -> Result<(), SdkError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let abort = self.task.abort_handle();
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(SdkError::Gateway(format!("server error: {e}"))),
            Ok(Err(e)) => Err(SdkError::Gateway(format!("server task failed: {e}"))),
            Err(_) => {
                abort.abort();
                Ok(())
            }
        }
    }
}

/// Binds `cfg.listen` and serves in a background task (port 0 picks a free port).
pub async fn start_gateway(pool: SdkPool, cfg: GatewayConfig) -> Result<GatewayHandle, SdkError> {
    if cfg.bearer_token.expose().trim().is_empty() {
        return Err(SdkError::Config("gateway bearer token is empty".into()));
    }
    if cfg.corp_id != pool.corp_id() {
        return Err(SdkError::Config(format!(
            "gateway corp {} differs from the sdk pool's corp {}",
            cfg.corp_id,
            pool.corp_id()
        )));
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| SdkError::Gateway(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SdkError::Gateway(format!("cannot listen on {}: {e}", cfg.listen)))?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "sdk gateway listens beyond loopback: put TLS in front of it");
    }
    let upstream = Upstream::new(&cfg, pool.corp_secret().clone())?;
    let state = Arc::new(Gw {
        pool,
        corp_id: cfg.corp_id,
        bearer: cfg.bearer_token,
        token_ttl: cfg.token_ttl,
        tokens: Mutex::new(HashMap::new()),
        upstream,
    });
    let app = Router::new()
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/msgaudit/get_chat_data", post(get_chat_data))
        .route("/cgi-bin/media/get", get(media_get))
        .route("/cgi-bin/msgaudit/groupchat/get", post(groupchat_get))
        .route("/cgi-bin/msgaudit/get_permit_user_list", post(forward))
        .route("/cgi-bin/msgaudit/check_single_agree", post(forward))
        .route("/cgi-bin/msgaudit/check_room_agree", post(forward))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    tracing::info!(%addr, "sdk gateway listening");
    Ok(GatewayHandle {
        addr,
        stop: Some(tx),
        task,
    })
}

/// Serves the gateway until `shutdown` completes. The pool is the caller's (not shut down here).
pub async fn serve_gateway(
    pool: SdkPool,
    cfg: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SdkError> {
    let handle = start_gateway(pool, cfg).await?;
    shutdown.await;
    handle.shutdown().await
}

pub(super) type S = State<Arc<Gw>>;
pub(super) type Q = Query<HashMap<String, String>>;

pub(super) fn envelope(errcode: i64, errmsg: &str) -> Response {
    Json(json!({"errcode": errcode, "errmsg": errmsg})).into_response()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Gw {
    /// `Some(rejection)` when the caller is not authorised.
    pub(super) fn authorize(
        &self,
        headers: &HeaderMap,
        q: &HashMap<String, String>,
    ) -> Option<Response> {
        if let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            if let Some(token) = auth.strip_prefix("Bearer ") {
                if ct_eq(token.trim().as_bytes(), self.bearer.expose().as_bytes()) {
                    return None;
                }
                return Some(envelope(40014, "invalid bearer token"));
            }
        }
        let Some(token) = q.get("access_token").filter(|t| !t.is_empty()) else {
            return Some(envelope(41001, "access_token missing"));
        };
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match tokens.get(token) {
            Some(exp) if Instant::now() < *exp => None,
            Some(_) => Some(envelope(42001, "access_token expired")),
            None => Some(envelope(40014, "invalid access_token")),
        }
    }

    fn issue_token(&self) -> String {
        use rand::Rng as _;
        let token: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        let now = Instant::now();
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.retain(|_, exp| *exp > now);
        tokens.insert(token.clone(), now + self.token_ttl);
        token
    }
}

/// The envelope errcode for an SDK error (table in the module documentation).
fn errcode_for(err: &SdkError, media: bool) -> i64 {
    match err {
        SdkError::Sdk { code, .. } => match (err.class(), *code) {
            (SdkErrorClass::Transient, 10001) => 10001,
            (SdkErrorClass::Transient, 10002) if media => 10002,
            (SdkErrorClass::Transient, _) => ERR_BUSY,
            (SdkErrorClass::Item, 10006 | 10008 | 10000) if media => 10002,
            (_, code) => i64::from(code),
        },
        SdkError::Api { errcode, .. } => *errcode,
        SdkError::WorkerCrashed { .. } => {
            if media {
                10002
            } else {
                ERR_BUSY
            }
        }
        SdkError::InvalidArgument(_) => ERR_INVALID_PARAM,
        other => match other.class() {
            SdkErrorClass::Transient => ERR_BUSY,
            _ => ERR_POOL_UNUSABLE,
        },
    }
}

pub(super) fn sdk_error_response(endpoint: &str, err: &SdkError, media: bool) -> Response {
    let errcode = errcode_for(err, media);
    tracing::warn!(endpoint, errcode, error = %err, "sdk gateway call failed");
    envelope(errcode, &err.to_string())
}

async fn gettoken(State(s): S, Query(q): Q) -> Response {
    let Some(corpid) = q.get("corpid").filter(|v| !v.is_empty()) else {
        return envelope(41002, "corpid missing");
    };
    let Some(secret) = q.get("corpsecret").filter(|v| !v.is_empty()) else {
        return envelope(41004, "corpsecret missing");
    };
    if *corpid != s.corp_id {
        return envelope(40013, "invalid corpid");
    }
    if !ct_eq(secret.as_bytes(), s.bearer.expose().as_bytes()) {
        return envelope(
            40001,
            "invalid credential (the gateway expects its bearer token)",
        );
    }
    let token = s.issue_token();
    Json(json!({
        "errcode": 0, "errmsg": "ok",
        "access_token": token, "expires_in": s.token_ttl.as_secs(),
    }))
    .into_response()
}

async fn get_chat_data(State(s): S, Query(q): Q, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(resp) = s.authorize(&headers, &q) {
        return resp;
    }
    let Some(body) = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(Value::is_object)
    else {
        return envelope(ERR_INVALID_PARAM, "invalid json body");
    };
    let seq = match body.get("seq") {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(seq) => seq,
            None => return envelope(ERR_INVALID_PARAM, "invalid seq"),
        },
    };
    let Some(limit) = body
        .get("limit")
        .and_then(Value::as_u64)
        .filter(|l| (1..=1000).contains(l))
        .and_then(|l| u32::try_from(l).ok())
    else {
        return envelope(ERR_INVALID_PARAM, "invalid limit, must be 1..1000");
    };
    match s.pool.get_chat_data(seq, limit).await {
        Ok(json) => json_response(Bytes::from(json)),
        Err(e) => sdk_error_response("get_chat_data", &e, false),
    }
}

pub(super) fn json_response(body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

async fn healthz(State(s): S, Query(q): Q, headers: HeaderMap) -> Response {
    if let Some(resp) = s.authorize(&headers, &q) {
        return resp;
    }
    match s.pool.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes_keep_the_client_class() {
        let sdk = |code| SdkError::Sdk { op: "X", code };
        assert_eq!(errcode_for(&sdk(10001), false), 10001);
        assert_eq!(errcode_for(&sdk(10003), false), -1);
        assert_eq!(errcode_for(&sdk(10010), true), 10010);
        assert_eq!(errcode_for(&sdk(10005), true), 10005);
        assert_eq!(errcode_for(&sdk(10009), false), 10009);
        let crash = SdkError::WorkerCrashed {
            reason: "sdk worker crashed: SIGABRT".into(),
        };
        assert_eq!(errcode_for(&crash, true), 10002);
        assert_eq!(errcode_for(&crash, false), -1);
        assert_eq!(errcode_for(&SdkError::Closed, false), ERR_BUSY);
        let lib = SdkError::Library {
            reason: "cannot load".into(),
        };
        assert_eq!(errcode_for(&lib, false), ERR_POOL_UNUSABLE);
    }
}
