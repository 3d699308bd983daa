//! The client proper: the token cache, the retry loop, the JSON calls and media streaming.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::config::{ClientConfig, RetryPolicy};
use crate::endpoint;
use crate::error::{ApiError, ErrorClass};
use crate::stats::{ClientStats, Stats};
use crate::wire::{self, ChatDataItem, RoomInfo};
use crate::Secret;

/// Largest page `get_chat_data` and `room_items` accept.
pub const MAX_LIMIT: u32 = 1000;

/// Largest body read whole when a media answer may be an error envelope.
const ENVELOPE_SNIFF_LIMIT: usize = 64 * 1024;

/// A media body being streamed.
pub struct MediaBody {
    /// Size of the whole object (not of the remaining part): the `Content-Range` total, else
    /// `Content-Length` (+ the offset for a partial answer). `None` when the server sent neither.
    pub total_len: Option<u64>,
    /// The bytes from the requested offset on. A mid-body error is yielded as `Err` (class
    /// `Retriable`); the caller resumes with a new `media` call at the offset it reached.
    pub stream: Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + Send>>,
}

impl fmt::Debug for MediaBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaBody")
            .field("total_len", &self.total_len)
            .finish_non_exhaustive()
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + Send>>;

/// The HTTP client of the archive contract. Cheap to clone: clones share the connection pool, the
/// token cache and the counters.
#[derive(Clone)]
pub struct ArchiveClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    corp_id: String,
    secret: Secret,
    request_timeout: Duration,
    retry: RetryPolicy,
    refresh_margin: Duration,
    token: tokio::sync::Mutex<TokenState>,
    stats: Stats,
}

#[derive(Default)]
struct TokenState {
    current: Option<CachedToken>,
    /// Incremented on every successful fetch.
    generation: u64,
}

struct CachedToken {
    token: Secret,
    generation: u64,
    refresh_at: Instant,
    expires_at: Instant,
}

impl fmt::Debug for ArchiveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveClient")
            .field("base_url", &self.inner.base)
            .field("corp_id", &self.inner.corp_id)
            .finish_non_exhaustive()
    }
}

impl ArchiveClient {
    /// Validates the config and builds the client. No request is sent until the first call.
    pub fn new(config: ClientConfig) -> Result<Self, ApiError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| ApiError::InvalidArgument(format!("base_url {base:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(ApiError::InvalidArgument(format!(
                "base_url {base:?} must be an http(s) url without a query"
            )));
        }
        if config.corp_id.trim().is_empty() {
            return Err(ApiError::InvalidArgument("corp_id is empty".into()));
        }
        if config.corp_secret.is_empty() {
            return Err(ApiError::InvalidArgument(format!(
                "corp secret for corp {} is empty",
                config.corp_id
            )));
        }
        config.retry.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.request_timeout)
            // A redirect would carry the access token in its query to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::from_reqwest("client", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                corp_id: config.corp_id,
                secret: config.corp_secret,
                request_timeout: config.request_timeout,
                retry: config.retry,
                refresh_margin: config.token_refresh_margin,
                token: tokio::sync::Mutex::new(TokenState::default()),
                stats: Stats::default(),
            }),
        })
    }

    pub fn corp_id(&self) -> &str {
        &self.inner.corp_id
    }

    /// Items with a seq greater than `seq`, at most `limit` (1..=1000). An empty vector means caught up.
    pub async fn get_chat_data(&self, seq: u64, limit: u32) -> Result<Vec<ChatDataItem>, ApiError> {
        check_limit(limit)?;
        let body = json_body(&wire::ChatDataBody { seq, limit })?;
        let env: wire::ChatDataEnvelope = self
            .inner
            .post_with_retry(
                endpoint::GET_CHAT_DATA,
                "/cgi-bin/msgaudit/get_chat_data",
                body,
            )
            .await?;
        Ok(env.chatdata)
    }

    /// One room's items with a per-room seq greater than `seq`, at most `limit` (1..=1000).
    pub async fn room_items(
        &self,
        roomid: &str,
        seq: u64,
        limit: u32,
    ) -> Result<Vec<ChatDataItem>, ApiError> {
        check_limit(limit)?;
        check_nonempty("roomid", roomid)?;
        let body = json_body(&wire::RoomItemsBody { roomid, seq, limit })?;
        let env: wire::ChatDataEnvelope = self
            .inner
            .post_with_retry(
                endpoint::GROUPCHAT_GET,
                "/cgi-bin/msgaudit/groupchat/get",
                body,
            )
            .await?;
        Ok(env.chatdata)
    }

    /// A room's metadata (name, creator, members).
    pub async fn room_info(&self, roomid: &str) -> Result<RoomInfo, ApiError> {
        check_nonempty("roomid", roomid)?;
        let body = json_body(&wire::RoomInfoBody { roomid })?;
        self.inner
            .post_with_retry(
                endpoint::GROUPCHAT_GET,
                "/cgi-bin/msgaudit/groupchat/get",
                body,
            )
            .await
    }

    /// The userids that consented to archiving.
    pub async fn permit_users(&self) -> Result<Vec<String>, ApiError> {
        let env: wire::PermitUsersEnvelope = self
            .inner
            .post_with_retry(
                endpoint::PERMIT_USERS,
                "/cgi-bin/msgaudit/get_permit_user_list",
                Bytes::from_static(b"{}"),
            )
            .await?;
        Ok(env.ids)
    }

    /// Starts streaming a media object from byte `offset`. Retries cover obtaining the response
    /// (status, headers, and telling a media body from an error envelope); the body itself is
    /// streamed, never buffered whole.
    pub async fn media(&self, sdkfileid: &str, offset: u64) -> Result<MediaBody, ApiError> {
        check_nonempty("sdkfileid", sdkfileid)?;
        let inner = &*self.inner;
        inner
            .with_retry(endpoint::MEDIA, move |token| {
                inner.media_once(sdkfileid, offset, token)
            })
            .await
    }

    /// How many access tokens were fetched so far.
    pub fn token_refreshes(&self) -> u64 {
        self.inner.stats.snapshot().token_refreshes
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }
}

fn check_limit(limit: u32) -> Result<(), ApiError> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(ApiError::InvalidArgument(format!(
            "limit must be within 1..={MAX_LIMIT}, got {limit}"
        )))
    }
}

fn check_nonempty(what: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        Err(ApiError::InvalidArgument(format!("{what} is empty")))
    } else {
        Ok(())
    }
}

fn json_body(body: &impl Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| ApiError::InvalidArgument(format!("request body: {e}")))
}

impl Inner {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Replaces the secret and the token wherever a server-supplied text might echo them.
    fn scrub(&self, text: &str, token: Option<&Secret>) -> String {
        let mut out = text.to_owned();
        for s in [Some(&self.secret), token].into_iter().flatten() {
            if !s.is_empty() && out.contains(s.expose()) {
                out = out.replace(s.expose(), "***");
            }
        }
        out
    }

    // ---- token cache ------------------------------------------------------------------------

    /// The cached token and its generation, fetching a new one when there is none or it is due for
    /// refresh. The lock is held across the fetch, so concurrent callers share one refresh.
    async fn token(&self) -> Result<(Secret, u64), ApiError> {
        let mut state = self.token.lock().await;
        let now = Instant::now();
        if let Some(c) = &state.current {
            if now < c.refresh_at {
                return Ok((c.token.clone(), c.generation));
            }
        }
        match self.fetch_token().await {
            Ok(body) => {
                state.generation += 1;
                let generation = state.generation;
                let fetched = Instant::now();
                let life = Duration::from_secs(body.expires_in);
                let refresh_after = if life > self.refresh_margin {
                    life - self.refresh_margin
                } else {
                    life / 2
                };
                let token = Secret::new(body.access_token);
                state.current = Some(CachedToken {
                    token: token.clone(),
                    generation,
                    refresh_at: fetched + refresh_after,
                    expires_at: fetched + life,
                });
                tracing::info!(
                    corp_id = %self.corp_id,
                    generation,
                    expires_in = body.expires_in,
                    "fetched access token"
                );
                Ok((token, generation))
            }
            Err(err) => {
                // An early refresh that failed transiently: the old token still works until it expires.
                if let Some(c) = &state.current {
                    if now < c.expires_at && err.class() == ErrorClass::Retriable {
                        tracing::warn!(
                            corp_id = %self.corp_id,
                            error = %err,
                            "token refresh failed; using the cached token until it expires"
                        );
                        return Ok((c.token.clone(), c.generation));
                    }
                }
                Err(err)
            }
        }
    }

    /// Drops the cached token if it is still the one of `generation` (a caller whose request was
    /// rejected with an older token must not throw away a token another caller just fetched).
    async fn invalidate(&self, generation: u64) {
        let mut state = self.token.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|c| c.generation == generation)
        {
            state.current = None;
        }
    }

    async fn fetch_token(&self) -> Result<wire::TokenBody, ApiError> {
        let ep = endpoint::GETTOKEN;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.fetch_token_once().await {
                Ok(body) => {
                    self.stats.token_refresh();
                    return Ok(body);
                }
                Err(err) => err,
            };
            self.stats.error(&err);
            let delay = self.plan_retry(ep, err, attempt)?;
            tokio::time::sleep(delay).await;
        }
    }

    async fn fetch_token_once(&self) -> Result<wire::TokenBody, ApiError> {
        let ep = endpoint::GETTOKEN;
        self.stats.call(ep);
        let resp = self
            .http
            .get(self.url("/cgi-bin/gettoken"))
            .query(&[
                ("corpid", self.corp_id.as_str()),
                ("corpsecret", self.secret.expose()),
            ])
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?;
        let token: wire::TokenBody = self.decode(ep, status, &body, None)?;
        if token.access_token.is_empty() {
            return Err(ApiError::Contract {
                endpoint: ep,
                reason: "empty access_token".into(),
            });
        }
        Ok(token)
    }

    // ---- retry loop -------------------------------------------------------------------------

    /// Decides whether `err` on attempt number `attempt` is retried, and after how long.
    fn plan_retry(
        &self,
        ep: &'static str,
        err: ApiError,
        attempt: u32,
    ) -> Result<Duration, ApiError> {
        if err.class() != ErrorClass::Retriable {
            return Err(err);
        }
        if attempt >= self.retry.max_attempts {
            return Err(ApiError::RetriesExhausted {
                endpoint: ep,
                attempts: attempt,
                last: Box::new(err),
            });
        }
        let delay = if err.errcode() == Some(45009) {
            self.retry.rate_limited_backoff
        } else {
            self.retry.backoff(attempt)
        };
        self.stats.retry(ep);
        tracing::warn!(
            endpoint = ep,
            corp_id = %self.corp_id,
            errcode = err.errcode(),
            attempt,
            max_attempts = self.retry.max_attempts,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %err,
            "archive api call failed; retrying"
        );
        Ok(delay)
    }

    /// Runs `op` with a valid token until it succeeds, fails for good, or the policy runs out. A
    /// token error (40014/42001, or 40001 on a data call) drops that token generation; the first one
    /// is retried at once without counting as an attempt, later ones back off like any retriable error.
    async fn with_retry<T, F, Fut>(&self, ep: &'static str, mut op: F) -> Result<T, ApiError>
    where
        F: FnMut(Secret) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 0;
        let mut free_token_retry = true;
        loop {
            let (token, generation) = self.token().await?;
            attempt += 1;
            let err = match op(token).await {
                Ok(v) => return Ok(v),
                Err(err) => err,
            };
            self.stats.error(&err);
            if err.is_token_error() {
                self.invalidate(generation).await;
                if free_token_retry {
                    free_token_retry = false;
                    attempt -= 1;
                    self.stats.retry(ep);
                    tracing::warn!(
                        endpoint = ep,
                        corp_id = %self.corp_id,
                        errcode = err.errcode(),
                        "access token rejected; refreshing it and retrying"
                    );
                    continue;
                }
            }
            let delay = self.plan_retry(ep, err, attempt)?;
            tokio::time::sleep(delay).await;
        }
    }

    async fn post_with_retry<T: DeserializeOwned>(
        &self,
        ep: &'static str,
        path: &'static str,
        body: Bytes,
    ) -> Result<T, ApiError> {
        self.with_retry(ep, |token| self.post_once(ep, path, token, body.clone()))
            .await
    }

    async fn post_once<T: DeserializeOwned>(
        &self,
        ep: &'static str,
        path: &'static str,
        token: Secret,
        body: Bytes,
    ) -> Result<T, ApiError> {
        self.stats.call(ep);
        let resp = self
            .http
            .post(self.url(path))
            .query(&[("access_token", token.expose())])
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.request_timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?;
        self.decode(ep, status, &bytes, Some(&token))
    }

    // ---- decoding ---------------------------------------------------------------------------

    /// An error envelope wins over the HTTP status (it says more); a success status with a body that
    /// is not JSON is a truncated body (retriable); JSON of the wrong shape breaks the contract.
    fn decode<T: DeserializeOwned>(
        &self,
        ep: &'static str,
        status: StatusCode,
        body: &[u8],
        token: Option<&Secret>,
    ) -> Result<T, ApiError> {
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) if !status.is_success() => {
                return Err(ApiError::Http {
                    endpoint: ep,
                    status: status.as_u16(),
                })
            }
            Err(e) => {
                return Err(ApiError::Decode {
                    endpoint: ep,
                    reason: self.scrub(&e.to_string(), token),
                })
            }
        };
        if let Some(err) = self.envelope_error(ep, &value, token) {
            return Err(err);
        }
        if !status.is_success() {
            return Err(ApiError::Http {
                endpoint: ep,
                status: status.as_u16(),
            });
        }
        serde_json::from_value(value).map_err(|e| ApiError::Contract {
            endpoint: ep,
            reason: self.scrub(&e.to_string(), token),
        })
    }

    /// `Some` when `value` is an envelope with a nonzero errcode.
    fn envelope_error(
        &self,
        ep: &'static str,
        value: &Value,
        token: Option<&Secret>,
    ) -> Option<ApiError> {
        let errcode = value.get("errcode")?.as_i64()?;
        if errcode == 0 {
            return None;
        }
        let errmsg = value
            .get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Some(ApiError::Api {
            endpoint: ep,
            corp_id: self.corp_id.clone(),
            errcode,
            errmsg: self.scrub(errmsg, token),
        })
    }

    // ---- media ------------------------------------------------------------------------------

    async fn media_once(
        &self,
        sdkfileid: &str,
        offset: u64,
        token: Secret,
    ) -> Result<MediaBody, ApiError> {
        let ep = endpoint::MEDIA;
        self.stats.call(ep);
        let mut req = self
            .http
            .get(self.url("/cgi-bin/media/get"))
            .query(&[("access_token", token.expose()), ("sdkfileid", sdkfileid)]);
        if offset > 0 {
            req = req.header(RANGE, format!("bytes={offset}-"));
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?;
        let status = resp.status();
        let headers = resp.headers();
        let is_json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        let content_len = header_u64(headers.get(CONTENT_LENGTH));
        let content_range = headers
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);

        if !status.is_success() || is_json {
            let (body, complete) = read_limited(&mut resp, ENVELOPE_SNIFF_LIMIT).await?;
            if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                if let Some(err) = self.envelope_error(ep, &value, Some(&token)) {
                    return Err(err);
                }
            }
            if !status.is_success() {
                return Err(ApiError::Http {
                    endpoint: ep,
                    status: status.as_u16(),
                });
            }
            let reason = if complete {
                "a json body without an error in place of media bytes"
            } else {
                "an oversized json body in place of media bytes"
            };
            return Err(ApiError::Contract {
                endpoint: ep,
                reason: reason.into(),
            });
        }

        let (skip, total_len) = if status == StatusCode::PARTIAL_CONTENT {
            let Some((start, total)) = content_range else {
                return Err(ApiError::Contract {
                    endpoint: ep,
                    reason: "206 without a usable content-range".into(),
                });
            };
            if start != offset {
                return Err(ApiError::Contract {
                    endpoint: ep,
                    reason: format!("asked for bytes from {offset}, got a range from {start}"),
                });
            }
            (0, total.or(content_len.map(|l| l + offset)))
        } else {
            // A full answer: either no range was asked, or the server ignored it; skip to the offset.
            (
                offset,
                content_range.and_then(|(_, total)| total).or(content_len),
            )
        };

        // A body that starts like JSON and is small may be an error envelope sent as octet-stream.
        let mut prefix: Vec<Bytes> = Vec::new();
        let mut ended = false;
        let first = resp
            .chunk()
            .await
            .map_err(|e| ApiError::from_reqwest(ep, e))?;
        match first {
            None => ended = true,
            Some(chunk) => {
                let looks_json = chunk.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                let mut buffered = chunk.len();
                prefix.push(chunk);
                let small = content_len.is_none_or(|l| l <= ENVELOPE_SNIFF_LIMIT as u64);
                if looks_json && small {
                    while buffered <= ENVELOPE_SNIFF_LIMIT {
                        match resp
                            .chunk()
                            .await
                            .map_err(|e| ApiError::from_reqwest(ep, e))?
                        {
                            Some(chunk) => {
                                buffered += chunk.len();
                                prefix.push(chunk);
                            }
                            None => {
                                ended = true;
                                break;
                            }
                        }
                    }
                    if ended {
                        let whole: Vec<u8> =
                            prefix.iter().flat_map(|c| c.iter().copied()).collect();
                        if let Ok(value) = serde_json::from_slice::<Value>(&whole) {
                            if let Some(err) = self.envelope_error(ep, &value, Some(&token)) {
                                return Err(err);
                            }
                        }
                    }
                }
            }
        }

        let head = futures::stream::iter(prefix.into_iter().map(Ok));
        let stream: ByteStream = if ended {
            Box::pin(head)
        } else {
            let rest = resp
                .bytes_stream()
                .map(move |r| r.map_err(|e| ApiError::from_reqwest(ep, e)));
            Box::pin(head.chain(rest))
        };
        Ok(MediaBody {
            total_len,
            stream: skip_bytes(stream, skip),
        })
    }
}

fn header_u64(value: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    value?.to_str().ok()?.trim().parse().ok()
}

/// `bytes START-END/TOTAL` -> (START, TOTAL if not `*`).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Reads at most about `limit` bytes of a (presumably small, error) body. The flag tells whether the
/// body ended within the limit.
async fn read_limited(
    resp: &mut reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), ApiError> {
    let mut out = Vec::new();
    while out.len() <= limit {
        match resp
            .chunk()
            .await
            .map_err(|e| ApiError::from_reqwest(endpoint::MEDIA, e))?
        {
            Some(chunk) => out.extend_from_slice(&chunk),
            None => return Ok((out, true)),
        }
    }
    Ok((out, false))
}

/// Drops the first `skip` bytes of a stream.
fn skip_bytes(stream: ByteStream, mut skip: u64) -> ByteStream {
    if skip == 0 {
        return stream;
    }
    Box::pin(stream.filter_map(move |item| {
        let out = match item {
            Ok(chunk) => {
                let len = chunk.len() as u64;
                if skip >= len {
                    skip -= len;
                    None
                } else {
                    // skip < len <= usize::MAX here
                    let cut = usize::try_from(skip).unwrap_or(0);
                    skip = 0;
                    Some(Ok(chunk.slice(cut..)))
                }
            }
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[tokio::test]
    async fn skipping_bytes_across_chunks() {
        let chunks = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"h"),
        ];
        let s: ByteStream = Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)));
        let out: Vec<Bytes> = skip_bytes(s, 5).map(|r| r.unwrap()).collect().await;
        assert_eq!(out.concat(), b"fgh");
    }
}
