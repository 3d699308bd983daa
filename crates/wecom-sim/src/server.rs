//! The HTTP side: routes of the archive contract, tokens, per-request fault injection and the admin
//! endpoints under `/_sim/` (media in `media.rs`, consent in `consent.rs`, admin in `admin.rs`).

mod admin;
mod consent;
mod media;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use rand::Rng as _;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::config::{FaultConfig, SimConfig};
use crate::corpus::{now_ms, Corpus, Stream};
use crate::rng::{self, fast_rng};
use crate::truth::SimStats;
use crate::SimError;

/// errcode for a malformed or out-of-range parameter (limit, seq, roomid, sdkfileid missing).
pub(crate) const ERR_INVALID_PARAM: i64 = 40058;
/// errcode for an sdkfileid the simulator never issued (the SDK's "bad fileid").
pub(crate) const ERR_BAD_FILEID: i64 = 10005;
/// errcode for media whose message is older than the retention window (the SDK's "data expired").
pub(crate) const ERR_MEDIA_EXPIRED: i64 = 10010;

struct Tokens {
    current: Option<(String, Instant)>,
    issued: HashSet<String>,
    rng: ChaCha8Rng,
}

pub(crate) struct Shared {
    pub(crate) corpus: Corpus,
    corp_id: String,
    corp_secret: String,
    token_ttl: Duration,
    faults: Mutex<FaultConfig>,
    request_rng: Mutex<ChaCha8Rng>,
    tokens: Mutex<Tokens>,
    stats: Mutex<SimStats>,
    floor_seq: AtomicU64,
    /// Media ids whose previous attempt served wrong bytes: the next attempt is correct.
    md5_retry_ok: Mutex<HashSet<u64>>,
}

/// The per-request fault decisions, drawn all at once so the RNG advances the same way per request.
#[derive(Debug, Default)]
struct Draw {
    slow: bool,
    http_5xx: Option<StatusCode>,
    reset: bool,
    busy: bool,
    limited: bool,
    expire: bool,
    dups: usize,
    media_truncate: bool,
    media_reset: bool,
    media_5xx: bool,
    media_md5: bool,
    /// Where a truncated or reset body stops, as a fraction of its length.
    cut: f64,
    slow_ms: u64,
}

impl Shared {
    pub(crate) fn new(cfg: &SimConfig) -> Result<Self, SimError> {
        Ok(Self {
            corpus: Corpus::new(cfg)?,
            corp_id: cfg.corp_id.clone(),
            corp_secret: cfg.corp_secret.clone(),
            token_ttl: Duration::from_secs(cfg.token_ttl_secs),
            faults: Mutex::new(cfg.faults.clone()),
            request_rng: Mutex::new(fast_rng(cfg.seed, rng::D_REQUESTS, 0)),
            tokens: Mutex::new(Tokens {
                current: None,
                issued: HashSet::new(),
                rng: fast_rng(cfg.seed, rng::D_TOKENS, 0),
            }),
            stats: Mutex::new(SimStats::default()),
            floor_seq: AtomicU64::new(0),
            md5_retry_ok: Mutex::new(HashSet::new()),
        })
    }

    pub(crate) fn stats(&self) -> SimStats {
        let mut stats = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        let (visible, seq, msgtime) = self.corpus.newest();
        stats.visible_items = visible;
        stats.newest_seq = seq;
        stats.newest_msgtime_ms = msgtime;
        stats.now_ms = now_ms();
        stats
    }

    /// Counts one `msgaudit_notify` callback.
    pub(crate) fn count_notify(&self, ok: bool) {
        self.with_stats(|s| {
            if ok {
                s.notify_sent += 1;
            } else {
                s.notify_failed += 1;
            }
        });
    }

    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        self.tokens
            .lock()
            .map(|t| t.issued.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn set_faults(&self, faults: FaultConfig) {
        if let Ok(mut f) = self.faults.lock() {
            *f = faults;
        }
    }

    pub(crate) fn set_floor(&self, floor_seq: u64) {
        self.floor_seq.store(floor_seq, Ordering::SeqCst);
    }

    fn with_stats(&self, f: impl FnOnce(&mut SimStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    fn count_request(&self, endpoint: &str) {
        self.with_stats(|s| *s.requests.entry(endpoint.to_owned()).or_default() += 1);
    }

    fn count_fault(&self, name: &str) {
        self.with_stats(|s| *s.faults.entry(name.to_owned()).or_default() += 1);
    }

    fn draw(&self) -> Draw {
        let f = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        let Ok(mut r) = self.request_rng.lock() else {
            return Draw::default();
        };
        let mut u = [0f64; 12];
        for x in &mut u {
            *x = r.gen();
        }
        let codes = [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
        ];
        Draw {
            slow: u[0] < f.slow_response,
            http_5xx: (u[1] < f.http_5xx).then(|| codes[(u[11] * 3.0) as usize % 3]),
            reset: u[2] < f.connection_reset,
            busy: u[3] < f.system_busy,
            limited: u[4] < f.rate_limit_45009,
            expire: u[5] < f.token_expire_early,
            dups: if u[6] < f.duplicate_items {
                1 + (u[11] * 3.0) as usize % 3
            } else {
                0
            },
            media_truncate: u[7] < f.media_truncate,
            media_reset: u[8] < f.media_reset,
            media_5xx: u[9] < f.media_5xx,
            media_md5: u[10] < f.media_md5_mismatch,
            cut: 0.1 + 0.8 * u[11],
            slow_ms: f.slow_ms,
        }
    }

    /// An HTTP 200 error envelope, counted by errcode.
    fn envelope(&self, errcode: i64, errmsg: &str) -> Response {
        self.with_stats(|s| *s.errcodes.entry(errcode.to_string()).or_default() += 1);
        Json(json!({"errcode": errcode, "errmsg": errmsg})).into_response()
    }

    fn check_token(&self, q: &HashMap<String, String>) -> Result<(), (i64, &'static str)> {
        let Some(token) = q.get("access_token").filter(|t| !t.is_empty()) else {
            return Err((41001, "access_token missing"));
        };
        let tokens = self.tokens.lock().map_err(|_| (-1, "system busy"))?;
        match &tokens.current {
            Some((t, exp)) if t == token => {
                if Instant::now() < *exp {
                    Ok(())
                } else {
                    Err((42001, "access_token expired"))
                }
            }
            _ if tokens.issued.contains(token) => Err((42001, "access_token expired")),
            _ => Err((40014, "invalid access_token")),
        }
    }

    fn expire_token(&self, q: &HashMap<String, String>) {
        if let (Ok(mut tokens), Some(token)) = (self.tokens.lock(), q.get("access_token")) {
            if tokens.current.as_ref().is_some_and(|(t, _)| t == token) {
                tokens.current = None;
            }
        }
    }

    /// Faults and checks shared by the JSON endpoints; `Some` is the response to send instead.
    async fn preflight(
        &self,
        endpoint: &str,
        q: &HashMap<String, String>,
        d: &Draw,
        needs_token: bool,
    ) -> Option<Response> {
        self.count_request(endpoint);
        if d.slow {
            self.count_fault("slow_response");
            tokio::time::sleep(Duration::from_millis(d.slow_ms)).await;
        }
        if let Some(status) = d.http_5xx {
            self.count_fault("http_5xx");
            return Some((status, "simulated server error").into_response());
        }
        if needs_token {
            if let Err((code, msg)) = self.check_token(q) {
                return Some(self.envelope(code, msg));
            }
            if d.expire {
                self.count_fault("token_expire_early");
                self.expire_token(q);
                return Some(self.envelope(42001, "access_token expired"));
            }
        }
        if d.limited {
            self.count_fault("rate_limit_45009");
            return Some(self.envelope(45009, "api freq out of limit"));
        }
        if d.busy {
            self.count_fault("system_busy");
            return Some(self.envelope(-1, "system busy"));
        }
        None
    }

    /// A successful JSON response, or (connection_reset) half of it and then an aborted body.
    fn finish_json(&self, d: &Draw, value: &Value) -> Response {
        let body = serde_json::to_vec(value).unwrap_or_default();
        if d.reset {
            self.count_fault("connection_reset");
            return aborted(Bytes::from(body), d.cut);
        }
        let mut resp = Response::new(Body::from(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        resp
    }
}

/// A response announcing the full length that sends `cut` of the body and then fails the stream,
/// which makes the server drop the connection.
fn aborted(body: Bytes, cut: f64) -> Response {
    let total = body.len();
    let keep = ((total as f64 * cut) as usize).min(total.saturating_sub(1));
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(body.slice(..keep)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated connection reset",
        )),
    ];
    let mut resp = Response::new(Body::from_stream(futures::stream::iter(parts)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    resp
}

type Q = Query<HashMap<String, String>>;
type S = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/msgaudit/get_chat_data", post(get_chat_data))
        .route("/cgi-bin/msgaudit/groupchat/get", post(groupchat_get))
        .route("/cgi-bin/media/get", get(media::media_get))
        .route(
            "/cgi-bin/msgaudit/get_permit_user_list",
            post(permit_users).get(permit_users),
        )
        .route(
            "/cgi-bin/msgaudit/check_single_agree",
            post(consent::check_single_agree),
        )
        .route(
            "/cgi-bin/msgaudit/check_room_agree",
            post(consent::check_room_agree),
        )
        .route("/_sim/stats", get(admin::admin_stats))
        .route("/_sim/truth", get(admin::admin_truth))
        .route("/_sim/truth/consent", get(admin::admin_consent))
        .route("/_sim/faults", put(admin::admin_faults))
        .route("/_sim/retention", post(admin::admin_retention))
        .with_state(shared)
}

async fn gettoken(State(s): S, Query(q): Q) -> Response {
    let d = s.draw();
    if let Some(resp) = s.preflight("gettoken", &q, &d, false).await {
        return resp;
    }
    let Some(corpid) = q.get("corpid").filter(|v| !v.is_empty()) else {
        return s.envelope(41002, "corpid missing");
    };
    let Some(secret) = q.get("corpsecret").filter(|v| !v.is_empty()) else {
        return s.envelope(41004, "corpsecret missing");
    };
    if *corpid != s.corp_id {
        return s.envelope(40013, "invalid corpid");
    }
    if *secret != s.corp_secret {
        return s.envelope(40001, "invalid credential");
    }
    let (token, remaining) = {
        let Ok(mut tokens) = s.tokens.lock() else {
            return s.envelope(-1, "system busy");
        };
        let now = Instant::now();
        match &tokens.current {
            Some((t, exp)) if *exp > now => (t.clone(), exp.duration_since(now)),
            _ => {
                let t: String = (0..64)
                    .map(|_| {
                        const A: &[u8] =
                            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                        A[tokens.rng.gen_range(0..A.len())] as char
                    })
                    .collect();
                tokens.issued.insert(t.clone());
                tokens.current = Some((t.clone(), now + s.token_ttl));
                (t, s.token_ttl)
            }
        }
    };
    s.finish_json(
        &d,
        &json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": remaining.as_secs()}),
    )
}

/// `seq` and `limit` of a paging body; `Err` is the envelope to answer.
fn paging(body: &Value) -> Result<(u64, usize), &'static str> {
    let seq = match body.get("seq") {
        None => 0,
        Some(v) => v.as_u64().ok_or("invalid seq")?,
    };
    let limit = body
        .get("limit")
        .and_then(Value::as_u64)
        .filter(|l| (1..=1000).contains(l))
        .ok_or("invalid limit, must be 1..1000")?;
    Ok((seq, limit as usize))
}

async fn serve_page(s: Arc<Shared>, d: Draw, stream: Stream, seq: u64, limit: usize) -> Response {
    if d.dups > 0 {
        s.count_fault("duplicate_items");
    }
    let floor = s.floor_seq.load(Ordering::SeqCst);
    let s2 = s.clone();
    let built = tokio::task::spawn_blocking(move || {
        let idx = s2.corpus.page(stream, seq, limit, floor, d.dups);
        idx.iter()
            .map(|&i| s2.corpus.chatdata_entry(i, stream))
            .collect::<Result<Vec<_>, SimError>>()
    })
    .await;
    match built {
        Ok(Ok(entries)) => {
            let n = entries.len() as u64;
            s.with_stats(|st| st.items_served += n);
            s.finish_json(
                &d,
                &json!({"errcode": 0, "errmsg": "ok", "chatdata": entries}),
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "simulator failed to build a page");
            (StatusCode::INTERNAL_SERVER_ERROR, "simulator error").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "simulator page task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "simulator error").into_response()
        }
    }
}

fn parse_body(body: &Bytes) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

async fn get_chat_data(State(s): S, Query(q): Q, body: Bytes) -> Response {
    let d = s.draw();
    if let Some(resp) = s.preflight("get_chat_data", &q, &d, true).await {
        return resp;
    }
    let Some(body) = parse_body(&body) else {
        return s.envelope(ERR_INVALID_PARAM, "invalid json body");
    };
    match paging(&body) {
        Ok((seq, limit)) => serve_page(s, d, Stream::Corp, seq, limit).await,
        Err(msg) => s.envelope(ERR_INVALID_PARAM, msg),
    }
}

async fn groupchat_get(State(s): S, Query(q): Q, body: Bytes) -> Response {
    let d = s.draw();
    let Some(body) = parse_body(&body) else {
        s.count_request("groupchat_info");
        return s.envelope(ERR_INVALID_PARAM, "invalid json body");
    };
    let items_mode = body.get("seq").is_some() || body.get("limit").is_some();
    let endpoint = if items_mode {
        "groupchat_items"
    } else {
        "groupchat_info"
    };
    if let Some(resp) = s.preflight(endpoint, &q, &d, true).await {
        return resp;
    }
    let Some(room) = body
        .get("roomid")
        .and_then(Value::as_str)
        .and_then(|r| s.corpus.room_index(r))
    else {
        return s.envelope(ERR_INVALID_PARAM, "invalid roomid");
    };
    if items_mode {
        return match paging(&body) {
            Ok((seq, limit)) => serve_page(s, d, Stream::Room(room), seq, limit).await,
            Err(msg) => s.envelope(ERR_INVALID_PARAM, msg),
        };
    }
    let info = s.corpus.room(room);
    let members: Vec<Value> = s
        .corpus
        .room_members(room)
        .into_iter()
        .map(|(id, join)| json!({"memberid": id, "jointime": join}))
        .collect();
    s.finish_json(
        &d,
        &json!({
            "errcode": 0, "errmsg": "ok",
            "roomname": info.name,
            "creator": s.corpus.room_creator(room),
            "room_create_time": info.create_time,
            "notice": info.notice,
            "members": members,
        }),
    )
}

async fn permit_users(State(s): S, Query(q): Q) -> Response {
    let d = s.draw();
    if let Some(resp) = s.preflight("get_permit_user_list", &q, &d, true).await {
        return resp;
    }
    s.finish_json(
        &d,
        &json!({"errcode": 0, "errmsg": "ok", "ids": s.corpus.users()}),
    )
}
