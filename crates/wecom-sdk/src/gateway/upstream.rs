//! The gateway's client of Tencent's ordinary HTTP API (`https://qyapi.weixin.qq.com/cgi-bin/...`).
//!
//! Room metadata, the permit-user list and consent are plain HTTPS APIs, not the SDK's, but they need
//! the corp secret, which never leaves the gateway's host. So the gateway forwards those calls: it
//! authorises its own client as usual, then calls upstream with an access token of its own (from
//! `gettoken` with the corp secret, cached until shortly before it expires, refetched once when
//! upstream answers 40014, 42001 or 40001) and hands the JSON answer back unchanged.
//!
//! **No URL is ever logged or put in an error**: `gettoken`'s carries the corp secret and every
//! other one an access token (`reqwest` errors are stripped of their URL).

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use wecom_api::Secret;

use crate::config::GatewayConfig;
use crate::SdkError;

/// Largest upstream answer the gateway relays (a permit list of a very large corp is a few MiB).
pub(crate) const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// A token is refreshed this long before upstream says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Why an upstream call gave no answer to relay.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// Upstream could not be reached, failed (HTTP 5xx), or answered something unreadable.
    Unavailable(String),
    /// `gettoken` refused the gateway's corp secret (its errcode and errmsg).
    Token { errcode: i64, errmsg: String },
}

struct Token {
    value: String,
    refresh_at: Instant,
}

pub(crate) struct Upstream {
    http: reqwest::Client,
    base: String,
    corp_id: String,
    secret: Secret,
    /// Held while a token is fetched, so concurrent calls share one `gettoken` (it is throttled).
    token: tokio::sync::Mutex<Option<Token>>,
}

/// The error and its causes, without the request URL (it carries the secret or a token).
fn plain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The errcodes upstream uses for a stale or unknown access token.
fn is_token_error(answer: &[u8]) -> bool {
    serde_json::from_slice::<Value>(answer)
        .ok()
        .and_then(|v| v.get("errcode").and_then(Value::as_i64))
        .is_some_and(|c| matches!(c, 40014 | 42001 | 40001))
}

impl Upstream {
    pub(crate) fn new(cfg: &GatewayConfig, secret: Secret) -> Result<Self, SdkError> {
        let base = cfg.upstream_base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(SdkError::Config(format!(
                "gateway upstream base url {base:?} is not an http(s) url"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.upstream_timeout)
            .build()
            .map_err(|e| {
                SdkError::Gateway(format!("cannot build the upstream client: {}", plain(e)))
            })?;
        Ok(Self {
            http,
            base,
            corp_id: cfg.corp_id.clone(),
            secret,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// POSTs `body` to `path` with the gateway's access token; the answer as upstream gave it.
    pub(crate) async fn forward(&self, path: &str, body: Bytes) -> Result<Bytes, UpstreamError> {
        let mut token = self.token().await?;
        let mut answer = self.post(path, &token, body.clone()).await?;
        if is_token_error(&answer) {
            tracing::debug!(
                path,
                "upstream refused the gateway's access token; refreshing it"
            );
            self.forget(&token).await;
            token = self.token().await?;
            answer = self.post(path, &token, body).await?;
        }
        Ok(answer)
    }

    async fn post(&self, path: &str, token: &str, body: Bytes) -> Result<Bytes, UpstreamError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .query(&[("access_token", token)])
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("{path}: {}", plain(e))))?;
        read_answer(path, resp).await
    }

    /// The cached token, or a fresh one from `gettoken`.
    async fn token(&self) -> Result<String, UpstreamError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.value.clone());
        }
        let resp = self
            .http
            .get(format!("{}/cgi-bin/gettoken", self.base))
            .query(&[
                ("corpid", self.corp_id.as_str()),
                ("corpsecret", self.secret.expose()),
            ])
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(format!("gettoken: {}", plain(e))))?;
        let answer = read_answer("gettoken", resp).await?;
        let v: Value = serde_json::from_slice(&answer).map_err(|_| {
            UpstreamError::Unavailable("gettoken answered something that is not json".into())
        })?;
        let errcode = v.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        if errcode != 0 {
            let errmsg = v
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Err(UpstreamError::Token { errcode, errmsg });
        }
        let Some(value) = v.get("access_token").and_then(Value::as_str) else {
            return Err(UpstreamError::Unavailable(
                "gettoken answered no access_token".into(),
            ));
        };
        let lifetime =
            Duration::from_secs(v.get("expires_in").and_then(Value::as_u64).unwrap_or(7200));
        let refresh_at = Instant::now()
            + lifetime
                .saturating_sub(TOKEN_MARGIN)
                .max(Duration::from_secs(60));
        tracing::debug!("fetched an upstream access token");
        *cached = Some(Token {
            value: value.to_owned(),
            refresh_at,
        });
        Ok(value.to_owned())
    }

    /// Drops `token` from the cache (unless another call already replaced it).
    async fn forget(&self, token: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == token) {
            *cached = None;
        }
    }
}

/// The body of a 2xx answer, at most [`MAX_ANSWER_BYTES`].
async fn read_answer(what: &str, mut resp: reqwest::Response) -> Result<Bytes, UpstreamError> {
    let status = resp.status();
    if !status.is_success() {
        return Err(UpstreamError::Unavailable(format!(
            "{what}: upstream answered http {}",
            status.as_u16()
        )));
    }
    let too_large = || {
        UpstreamError::Unavailable(format!(
            "{what}: upstream answer exceeds {MAX_ANSWER_BYTES} bytes"
        ))
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| UpstreamError::Unavailable(format!("{what}: {}", plain(e))))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_are_recognised() {
        for (answer, want) in [
            (&br#"{"errcode":42001,"errmsg":"expired"}"#[..], true),
            (br#"{"errcode":40014}"#, true),
            (br#"{"errcode":40001}"#, true),
            (br#"{"errcode":0,"errmsg":"ok"}"#, false),
            (br#"{"errcode":301052}"#, false),
            (b"not json", false),
        ] {
            assert_eq!(
                is_token_error(answer),
                want,
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let mut cfg = GatewayConfig::new("corp", Secret::new("bearer"));
        cfg.upstream_base_url = "ftp://example".into();
        assert!(Upstream::new(&cfg, Secret::new("s")).is_err());
        cfg.upstream_base_url = "http://127.0.0.1:1/".into();
        let up = Upstream::new(&cfg, Secret::new("s")).unwrap();
        assert_eq!(up.base, "http://127.0.0.1:1");
    }
}
