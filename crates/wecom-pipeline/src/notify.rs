//! The `msgaudit_notify` callback: WeCom calls the corp's callback URL when new archive items are
//! waiting, and a verified call wakes the live fetch loops at once instead of at their next poll. The
//! poll stays the backstop: the service notifies at most every 15 s and a callback can be lost, so the
//! callback only shortens the wait, it never replaces a fetch.
//!
//! The receiver is a route of the ops server ([`CALLBACK_PATH`], [`crate::ops::serve`] with an
//! [`OpsEndpoint`] that carries it): `POST` for events, `GET` for the URL verification WeCom runs when
//! the URL is saved. Both are authenticated by [`CallbackVerifier`] (signature, then timestamp, then
//! decryption): a request that fails any check (unsigned, wrongly signed, stale, unreadable) is answered
//! 403, counted, and wakes nothing; no secret and no decrypted content is logged.
//!
//! The wake is process-wide (a `watch` generation every live fetch loop subscribes to): a process serves
//! one corp, and a wake is only a hint, so waking a stream that has nothing new costs one empty poll.
//! A generation rather than a `Notify` so that a callback arriving while a fetch is in flight is not
//! lost: the loop sees the new generation when it is about to sleep and asks again at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use metrics::counter;
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{debug, warn};
use wecom_api::{CallbackError, CallbackVerifier, Secret};

/// Where the ops server receives the callbacks (the URL to enter in the archive app's callback settings,
/// behind whatever proxy makes the ops port reachable from WeCom).
pub const CALLBACK_PATH: &str = "/callback/msgaudit_notify";
/// Environment variable that overrides `notify.token`.
pub const ENV_NOTIFY_TOKEN: &str = "WECOM_NOTIFY_TOKEN";
/// Environment variable that overrides `notify.encoding_aes_key`.
pub const ENV_NOTIFY_AES_KEY: &str = "WECOM_NOTIFY_AES_KEY";

/// Largest callback body accepted (WeCom's events are a few hundred bytes).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Refused callbacks are logged at WARN at most this often (anyone who reaches the port can send them).
const REFUSED_WARN_EVERY: Duration = Duration::from_secs(60);

/// `[notify]` as written: the callback settings of the archive app. Both values are secrets: prefer
/// [`ENV_NOTIFY_TOKEN`] and [`ENV_NOTIFY_AES_KEY`], which override the file. Needs `[ops] listen`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The callback `Token`.
    #[serde(default)]
    pub token: Option<String>,
    /// The 43-character `EncodingAESKey`.
    #[serde(default)]
    pub encoding_aes_key: Option<String>,
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field(
                "encoding_aes_key",
                &self.encoding_aes_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// The validated `[notify]`: secrets resolved and checked. Build the receiver with
/// [`NotifySettings::receiver`].
#[derive(Clone)]
pub struct NotifySettings {
    token: Secret,
    encoding_aes_key: Secret,
    corp_id: String,
}

impl std::fmt::Debug for NotifySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifySettings")
            .field("corp_id", &self.corp_id)
            .finish_non_exhaustive()
    }
}

impl NotifyConfig {
    /// Resolves the secrets (`env` looks a variable up; the process environment in production) and
    /// checks them; the reason names the key and what to do.
    pub fn resolve(
        &self,
        corp_id: &str,
        ops_listen_set: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NotifySettings, String> {
        let pick = |var: &str, file: &Option<String>, key: &str| {
            env(var)
                .filter(|s| !s.is_empty())
                .or_else(|| file.clone().filter(|s| !s.is_empty()))
                .ok_or_else(|| format!("no {key}: set {var} (or notify.{key} in the file)"))
        };
        let token = Secret::new(pick(ENV_NOTIFY_TOKEN, &self.token, "token")?);
        let key = Secret::new(pick(
            ENV_NOTIFY_AES_KEY,
            &self.encoding_aes_key,
            "encoding_aes_key",
        )?);
        if !ops_listen_set {
            return Err("callbacks are received by the ops server: set [ops] listen".into());
        }
        // The verifier's own checks (43 characters, base64 of 32 bytes), now rather than at the first callback.
        CallbackVerifier::new(token.clone(), key.clone(), corp_id.to_string()).map_err(|e| {
            format!("{e} (notify.encoding_aes_key or {ENV_NOTIFY_AES_KEY}, notify.token or {ENV_NOTIFY_TOKEN})")
        })?;
        Ok(NotifySettings {
            token,
            encoding_aes_key: key,
            corp_id: corp_id.to_string(),
        })
    }
}

/// Reads an environment variable of the process (for [`NotifyConfig::resolve`]).
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

impl NotifySettings {
    /// The receiver the ops server hosts.
    pub fn receiver(&self) -> Result<Arc<CallbackReceiver>, CallbackError> {
        let verifier = CallbackVerifier::new(
            self.token.clone(),
            self.encoding_aes_key.clone(),
            self.corp_id.clone(),
        )?;
        Ok(Arc::new(CallbackReceiver::new(verifier)))
    }
}

/// What the receiver has answered so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackCounts {
    /// Verified `msgaudit_notify` events (each woke the fetchers).
    pub woke: u64,
    /// Verified callbacks of another kind, and URL verifications.
    pub other: u64,
    /// Refused: unsigned, wrongly signed, stale or malformed.
    pub refused: u64,
}

/// Where the ops server listens and the callback receiver it hosts, if any (from `[ops] listen` and
/// [`NotifySettings::receiver`]). A bare address converts into one without a receiver.
#[derive(Debug, Clone)]
pub struct OpsEndpoint {
    pub listen: SocketAddr,
    pub callback: Option<Arc<CallbackReceiver>>,
}

impl From<SocketAddr> for OpsEndpoint {
    fn from(listen: SocketAddr) -> Self {
        Self {
            listen,
            callback: None,
        }
    }
}

/// Checks callbacks and wakes the fetch loops on a verified `msgaudit_notify`.
pub struct CallbackReceiver {
    verifier: CallbackVerifier,
    woke: AtomicU64,
    other: AtomicU64,
    refused: AtomicU64,
    /// Milliseconds after `started` of the last WARN about refused callbacks (0: none yet).
    last_refused_warn_ms: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for CallbackReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackReceiver")
            .field("verifier", &self.verifier)
            .field("counts", &self.counts())
            .finish()
    }
}

/// The signed query of a callback. Absent values are empty, which no signature matches.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CallbackQuery {
    #[serde(default)]
    msg_signature: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    nonce: String,
    /// URL verification only.
    #[serde(default)]
    echostr: Option<String>,
}

impl CallbackReceiver {
    pub fn new(verifier: CallbackVerifier) -> Self {
        Self {
            verifier,
            woke: AtomicU64::new(0),
            other: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            last_refused_warn_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    pub fn counts(&self) -> CallbackCounts {
        CallbackCounts {
            woke: self.woke.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// An event (`POST`): 200 once verified (woken or not), 403 otherwise.
    fn event(&self, q: &CallbackQuery, body: &[u8]) -> StatusCode {
        match self
            .verifier
            .open_event(&q.msg_signature, &q.timestamp, &q.nonce, body)
        {
            Ok(event) if event.is_msgaudit_notify() => {
                self.woke.fetch_add(1, Ordering::Relaxed);
                counter!("wecom_notify_callbacks_total", "result" => "woke").increment(1);
                debug!("msgaudit_notify callback: waking the fetchers");
                wake_fetchers();
                StatusCode::OK
            }
            Ok(event) => {
                self.other.fetch_add(1, Ordering::Relaxed);
                counter!("wecom_notify_callbacks_total", "result" => "other").increment(1);
                debug!(msg_type = %event.msg_type, event = ?event.event, "callback of another kind ignored");
                StatusCode::OK
            }
            Err(e) => self.refuse(&e),
        }
    }

    /// URL verification (`GET` with `echostr`): the decrypted echo string, or 403.
    fn verify_url(&self, q: &CallbackQuery) -> Response {
        let echostr = q.echostr.as_deref().unwrap_or_default();
        match self
            .verifier
            .verify_echo(&q.msg_signature, &q.timestamp, &q.nonce, echostr)
        {
            Ok(echo) => {
                self.other.fetch_add(1, Ordering::Relaxed);
                counter!("wecom_notify_callbacks_total", "result" => "other").increment(1);
                debug!("callback url verified");
                (StatusCode::OK, echo).into_response()
            }
            Err(e) => self.refuse(&e).into_response(),
        }
    }

    fn refuse(&self, e: &CallbackError) -> StatusCode {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        counter!("wecom_notify_callbacks_total", "result" => "refused").increment(1);
        // The error names what failed, never the token, the key or any content.
        let now_ms = u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let last = self.last_refused_warn_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= REFUSED_WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_refused_warn_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(error = %e, refused_total = n, "msgaudit_notify callback refused; check notify.token and notify.encoding_aes_key against the callback settings");
        } else {
            debug!(error = %e, "msgaudit_notify callback refused");
        }
        // Whatever failed (the signature, the timestamp, a body that cannot be opened), the request is
        // not an authentic callback: one answer for all, so a caller learns nothing from it.
        StatusCode::FORBIDDEN
    }
}

/// The callback route, to merge into the ops server's router.
pub(crate) fn router(receiver: Arc<CallbackReceiver>) -> axum::Router {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::get;

    // Every query field has a default, so a request without a query reaches the verifier (and is
    // refused there, counted) rather than being turned away by the extractor.
    async fn post_event(
        State(r): State<Arc<CallbackReceiver>>,
        Query(q): Query<CallbackQuery>,
        body: Bytes,
    ) -> StatusCode {
        r.event(&q, &body)
    }
    async fn get_verify(
        State(r): State<Arc<CallbackReceiver>>,
        Query(q): Query<CallbackQuery>,
    ) -> Response {
        r.verify_url(&q)
    }
    axum::Router::new()
        .route(CALLBACK_PATH, get(get_verify).post(post_event))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(receiver)
}

/// The process-wide wake generation; every live fetch loop holds a receiver.
static WAKE: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// A subscription to the wake; `changed()` completes once per wake after the last `borrow_and_update`.
pub(crate) fn subscribe() -> watch::Receiver<u64> {
    WAKE.subscribe()
}

/// Makes every live fetch loop ask the service again now (or right after its fetch in flight).
pub(crate) fn wake_fetchers() {
    WAKE.send_modify(|g| *g = g.wrapping_add(1));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;
    use wecom_api::{ArchiveClient, ClientConfig};

    use super::*;
    use crate::fetch::{fetch_loop, FetchParams, PageSource};
    use crate::ops::Probe;
    use crate::scope::Scope;
    use crate::stream::StreamSel;

    const CORP: &str = "wwnotifytest";
    const TOKEN: &str = "callback-token-value";
    /// 43 base64 characters (32 bytes).
    const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn settings() -> NotifySettings {
        NotifyConfig {
            token: Some(TOKEN.into()),
            encoding_aes_key: Some(AES_KEY.into()),
        }
        .resolve(CORP, true, |_| None)
        .expect("valid settings")
    }

    fn event_xml(event: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
             <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
             <Event><![CDATA[{event}]]></Event><AgentID>2000004</AgentID></xml>",
            now_secs()
        )
    }

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// A callback as WeCom sends it, signed with `token`: (path with query, body).
    fn signed(token: &str, event: &str) -> (String, String) {
        let v = CallbackVerifier::new(
            Secret::new(token.to_string()),
            Secret::new(AES_KEY.to_string()),
            CORP.into(),
        )
        .expect("verifier");
        let encrypt = v.encrypt(event_xml(event).as_bytes()).expect("encrypt");
        let (ts, nonce) = (now_secs().to_string(), "1234567890");
        let sig = v.signature(&ts, nonce, &encrypt);
        (
            format!("{CALLBACK_PATH}?msg_signature={sig}&timestamp={ts}&nonce={nonce}"),
            format!("<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[2000004]]></AgentID></xml>"),
        )
    }

    /// One HTTP/1.1 request; the status code and body.
    async fn http(addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status line");
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        (status, body)
    }

    /// An archive service that is always caught up and counts the pages asked for.
    async fn caught_up_service() -> (String, Arc<AtomicU64>) {
        use axum::routing::{get, post};
        let pages = Arc::new(AtomicU64::new(0));
        let counted = pages.clone();
        let app = axum::Router::new()
            .route(
                "/cgi-bin/gettoken",
                get(|| async {
                    r#"{"errcode":0,"errmsg":"ok","access_token":"tok","expires_in":7200}"#
                }),
            )
            .route(
                "/cgi-bin/msgaudit/get_chat_data",
                post(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async { r#"{"errcode":0,"errmsg":"ok","chatdata":[]}"# }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), pages)
    }

    async fn wait_for_pages(pages: &AtomicU64, n: u64) {
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            while pages.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the fetcher asked for {} pages, expected {n}",
            pages.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn a_signed_callback_wakes_a_sleeping_fetcher_and_a_forged_one_is_refused() {
        let (base_url, pages) = caught_up_service().await;
        let shutdown = CancellationToken::new();
        let receiver = settings().receiver().expect("receiver");
        let ops = crate::ops::serve(
            OpsEndpoint {
                listen: ([127, 0, 0, 1], 0).into(),
                callback: Some(receiver.clone()),
            },
            shutdown.clone(),
        )
        .await
        .expect("ops server");

        let client = ArchiveClient::new(ClientConfig::new(base_url, CORP, Secret::new("s")))
            .expect("client");
        let (tx, _rx) = mpsc::channel(1);
        let fetcher = tokio::spawn(fetch_loop(
            PageSource::Service {
                client,
                stream: StreamSel::Corp,
                limit: 100,
            },
            FetchParams {
                corp_id: CORP.into(),
                stream: "corp".into(),
                after_seq: 0,
                follow: true,
                // Without a wake the second page would be asked for in an hour.
                poll: Duration::from_secs(3600),
                scope: Scope::default(),
                probe: Arc::new(Probe::new(CORP, "corp", 0)),
                shutdown: shutdown.clone(),
            },
            tx,
        ));
        wait_for_pages(&pages, 1).await;

        let generation = *subscribe().borrow();
        let (target, body) = signed("another-token", "msgaudit_notify");
        assert_eq!(
            http(ops, "POST", &target, &body).await.0,
            403,
            "wrong token"
        );
        let unsigned = format!("{CALLBACK_PATH}?timestamp={}&nonce=1", now_secs());
        assert_eq!(
            http(ops, "POST", &unsigned, &body).await.0,
            403,
            "no signature"
        );
        assert_eq!(
            http(ops, "POST", CALLBACK_PATH, "").await.0,
            403,
            "no query"
        );
        let (target, body) = signed(TOKEN, "msgaudit_notify");
        let tampered = body.replace("<AgentID>", "<AgentID>1");
        let altered_query = target.replace("nonce=1234567890", "nonce=1234567891");
        assert_eq!(
            http(ops, "POST", &altered_query, &tampered).await.0,
            403,
            "altered nonce"
        );
        assert_eq!(
            *subscribe().borrow(),
            generation,
            "a refused callback woke the fetchers"
        );
        assert_eq!(pages.load(Ordering::SeqCst), 1);
        // A verified event of another kind is answered but wakes nothing either.
        let (other, other_body) = signed(TOKEN, "change_contact");
        assert_eq!(http(ops, "POST", &other, &other_body).await.0, 200);
        assert_eq!(*subscribe().borrow(), generation);

        assert_eq!(http(ops, "POST", &target, &body).await.0, 200);
        wait_for_pages(&pages, 2).await;
        assert_eq!(
            receiver.counts(),
            CallbackCounts {
                woke: 1,
                other: 1,
                refused: 4
            }
        );

        shutdown.cancel();
        fetcher
            .await
            .expect("fetch task")
            .expect("fetch loop ends cleanly");
    }

    #[tokio::test]
    async fn url_verification_echoes_only_when_signed() {
        let shutdown = CancellationToken::new();
        let receiver = settings().receiver().expect("receiver");
        let ops = crate::ops::serve(
            OpsEndpoint {
                listen: ([127, 0, 0, 1], 0).into(),
                callback: Some(receiver.clone()),
            },
            shutdown.clone(),
        )
        .await
        .expect("ops server");
        let v = CallbackVerifier::new(
            Secret::new(TOKEN.to_string()),
            Secret::new(AES_KEY.to_string()),
            CORP.into(),
        )
        .expect("verifier");
        let echostr = v.encrypt(b"echo-4711").expect("encrypt");
        let ts = now_secs().to_string();
        let sig = v.signature(&ts, "42", &echostr);
        let escaped: String = echostr
            .chars()
            .map(|c| match c {
                '+' => "%2B".to_string(),
                '/' => "%2F".to_string(),
                '=' => "%3D".to_string(),
                c => c.to_string(),
            })
            .collect();
        let target = format!(
            "{CALLBACK_PATH}?msg_signature={sig}&timestamp={ts}&nonce=42&echostr={escaped}"
        );
        assert_eq!(
            http(ops, "GET", &target, "").await,
            (200, "echo-4711".to_string())
        );
        let forged = target.replace("nonce=42", "nonce=43");
        assert_eq!(http(ops, "GET", &forged, "").await.0, 403);
        assert_eq!(receiver.counts().refused, 1);
        shutdown.cancel();
    }

    #[test]
    fn settings_need_both_secrets_an_ops_listener_and_a_valid_key() {
        let file = NotifyConfig {
            token: Some(TOKEN.into()),
            encoding_aes_key: Some(AES_KEY.into()),
        };
        let err = file.resolve(CORP, false, |_| None).unwrap_err();
        assert!(err.contains("[ops] listen"), "{err}");
        let err = NotifyConfig::default()
            .resolve(CORP, true, |_| None)
            .unwrap_err();
        assert!(err.contains(ENV_NOTIFY_TOKEN), "{err}");
        let short = NotifyConfig {
            token: Some(TOKEN.into()),
            encoding_aes_key: Some("tooshort".into()),
        };
        let err = short.resolve(CORP, true, |_| None).unwrap_err();
        assert!(err.contains("43") && !err.contains("tooshort"), "{err}");
        // The environment overrides the file and is enough on its own.
        let env = |var: &str| match var {
            ENV_NOTIFY_TOKEN => Some("env-token".to_string()),
            ENV_NOTIFY_AES_KEY => Some(AES_KEY.to_string()),
            _ => None,
        };
        let s = NotifyConfig::default()
            .resolve(CORP, true, env)
            .expect("from the environment");
        assert_eq!(s.token.expose(), "env-token");
        for shown in [format!("{s:?}"), format!("{file:?}")] {
            assert!(
                !shown.contains(TOKEN) && !shown.contains("env-token") && !shown.contains(AES_KEY),
                "{shown}"
            );
        }
    }
}
