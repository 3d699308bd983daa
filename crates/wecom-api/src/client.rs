//! The client's shared state and the one retry loop every call goes through.
//!
//! The calls themselves live beside it: the JSON calls in `calls.rs`, media streaming in `media.rs`, the
//! access-token cache in `token.rs`, and turning an answer into a value or an [`ApiError`] in
//! `decode.rs`. Each of them adds methods to [`Inner`]; retry decisions are made here only.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ClientConfig, RetryPolicy};
use crate::error::{ApiError, ErrorClass};
use crate::stats::{ClientStats, EventCounts, EventKind, Stats};
use crate::token::TokenCache;
use crate::Secret;

/// The HTTP client of the archive contract. Cheap to clone: clones share the connection pool, the
/// token cache and the counters.
#[derive(Clone)]
pub struct ArchiveClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    /// `base` without user info, for error messages.
    pub(crate) base_display: String,
    pub(crate) corp_id: String,
    pub(crate) secret: Secret,
    pub(crate) request_timeout: Duration,
    pub(crate) page_body_limit: u64,
    pub(crate) small_body_limit: u64,
    pub(crate) retry: RetryPolicy,
    pub(crate) token: TokenCache,
    pub(crate) stats: Stats,
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
        let mut url = reqwest::Url::parse(&base).map_err(|e| {
            ApiError::InvalidArgument(format!("base_url {:?}: {e}", without_userinfo(&base)))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(ApiError::InvalidArgument(format!(
                "base_url {:?} must be an http(s) url without a query",
                without_userinfo(&base)
            )));
        }
        // Neither can fail on an http(s) url.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let base_display = url.as_str().trim_end_matches('/').to_owned();
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
        if config.page_body_limit == 0 || config.small_body_limit == 0 {
            return Err(ApiError::InvalidArgument(
                "page_body_limit and small_body_limit must be at least 1 byte".into(),
            ));
        }
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
                base_display,
                corp_id: config.corp_id,
                secret: config.corp_secret,
                request_timeout: config.request_timeout,
                page_body_limit: config.page_body_limit,
                small_body_limit: config.small_body_limit,
                retry: config.retry,
                token: TokenCache::new(config.token_refresh_margin),
                stats: Stats::default(),
            }),
        })
    }

    pub fn corp_id(&self) -> &str {
        &self.inner.corp_id
    }

    /// How many access tokens were fetched so far.
    pub fn token_refreshes(&self) -> u64 {
        self.inner.stats.snapshot().token_refreshes
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// The event counters alone: cheap (no lock), for a periodic summary line of
    /// [`EventCounts::since`] the previous call.
    pub fn events(&self) -> EventCounts {
        self.inner.stats.events()
    }
}

/// `base` with any `user:password@` removed, for messages about a url that did not parse.
fn without_userinfo(base: &str) -> String {
    let Some(scheme_end) = base.find("://").map(|i| i + 3) else {
        return base.to_owned();
    };
    let rest = &base[scheme_end..];
    let authority = rest.find(['/', '?', '#']).map_or(rest, |end| &rest[..end]);
    match authority.rfind('@') {
        Some(at) => format!("{}{}", &base[..scheme_end], &rest[at + 1..]),
        None => base.to_owned(),
    }
}

impl Inner {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Replaces the secret and the token wherever a server-supplied text might echo them.
    pub(crate) fn scrub(&self, text: &str, token: Option<&Secret>) -> String {
        let mut out = text.to_owned();
        for s in [Some(&self.secret), token].into_iter().flatten() {
            if !s.is_empty() && out.contains(s.expose()) {
                out = out.replace(s.expose(), "***");
            }
        }
        out
    }

    /// The one retry decision of the crate (the token fetch and every call go through it): returns
    /// `err` when it is not retriable or `attempt` was the policy's last, else waits the backoff (the
    /// fixed rate-limit wait after 45009) and returns `Ok` for the next attempt.
    pub(crate) async fn back_off(
        &self,
        ep: &'static str,
        err: ApiError,
        attempt: u32,
    ) -> Result<(), ApiError> {
        if err.class() != ErrorClass::Retriable {
            return Err(err);
        }
        if attempt >= self.retry.max_attempts {
            self.stats.event(EventKind::RetriesExhausted);
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
        // Per-event noise: the counters carry it (see `stats.rs`); what outlasts the policy is
        // returned to the caller.
        tracing::debug!(
            endpoint = ep,
            corp_id = %self.corp_id,
            errcode = err.errcode(),
            attempt,
            max_attempts = self.retry.max_attempts,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %err,
            "archive api call failed; retrying"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Runs `op` with a valid token until it succeeds, fails for good, or the policy runs out. A
    /// token error (40014/42001, or 40001 on a data call) drops that token generation; the first one
    /// is retried at once without counting as an attempt, later ones back off like any retriable error.
    pub(crate) async fn with_retry<T, F, Fut>(
        &self,
        ep: &'static str,
        mut op: F,
    ) -> Result<T, ApiError>
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
                    tracing::debug!(
                        endpoint = ep,
                        corp_id = %self.corp_id,
                        errcode = err.errcode(),
                        "access token rejected; refreshing it and retrying"
                    );
                    continue;
                }
            }
            self.back_off(ep, err, attempt).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_cut_from_unparsed_urls() {
        for (given, shown) in [
            ("http://u:pw@host:1/p@x", "http://host:1/p@x"),
            ("http://host/a@b", "http://host/a@b"),
            ("no scheme u:pw@host", "no scheme u:pw@host"),
            ("https://pw@", "https://"),
        ] {
            assert_eq!(without_userinfo(given), shown, "{given}");
        }
    }
}
