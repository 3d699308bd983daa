//! The access-token cache: one token per client, fetched on first use, refreshed a margin before it
//! expires, dropped when the server rejects it, and one refresh shared by concurrent callers.

use std::time::{Duration, Instant};

use crate::client::Inner;
use crate::endpoint;
use crate::error::{ApiError, ErrorClass};
use crate::stats::EventKind;
use crate::wire;
use crate::Secret;

/// The longest a token is trusted, whatever `expires_in` says (WeCom's are 7200 s): a huge value
/// must neither overflow an `Instant` nor keep a token the server has long forgotten.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct TokenCache {
    state: tokio::sync::Mutex<TokenState>,
    refresh_margin: Duration,
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

impl TokenCache {
    pub(crate) fn new(refresh_margin: Duration) -> Self {
        Self {
            state: tokio::sync::Mutex::new(TokenState::default()),
            refresh_margin,
        }
    }
}

/// When a token fetched at `fetched` with the server's `expires_in` (seconds) is refreshed, and when
/// it stops being usable. The lifetime is clamped to [`MAX_TOKEN_LIFETIME`]; an `Instant` that cannot
/// be represented falls back to `fetched` (refresh at once) rather than panicking.
fn schedule(fetched: Instant, expires_in: u64, margin: Duration) -> (Instant, Instant) {
    let life = Duration::from_secs(expires_in).min(MAX_TOKEN_LIFETIME);
    let refresh_after = match life.checked_sub(margin) {
        Some(rest) if !rest.is_zero() => rest,
        _ => life / 2,
    };
    let at = |d: Duration| fetched.checked_add(d).unwrap_or(fetched);
    (at(refresh_after), at(life))
}

impl Inner {
    /// The cached token and its generation, fetching a new one when there is none or it is due for
    /// refresh. The lock is held across the fetch, so concurrent callers share one refresh.
    pub(crate) async fn token(&self) -> Result<(Secret, u64), ApiError> {
        let mut state = self.token.state.lock().await;
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
                let (refresh_at, expires_at) =
                    schedule(Instant::now(), body.expires_in, self.token.refresh_margin);
                let token = Secret::new(body.access_token);
                state.current = Some(CachedToken {
                    token: token.clone(),
                    generation,
                    refresh_at,
                    expires_at,
                });
                tracing::debug!(
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
                        self.stats.event(EventKind::TokenRefreshFailed);
                        tracing::debug!(
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
    pub(crate) async fn invalidate(&self, generation: u64) {
        let mut state = self.token.state.lock().await;
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
            self.back_off(ep, err, attempt).await?;
        }
    }

    async fn fetch_token_once(&self) -> Result<wire::TokenBody, ApiError> {
        let ep = endpoint::GETTOKEN;
        self.stats.call(ep);
        let req = self
            .http
            .get(self.url("/cgi-bin/gettoken"))
            .query(&[
                ("corpid", self.corp_id.as_str()),
                ("corpsecret", self.secret.expose()),
            ])
            .timeout(self.request_timeout);
        let resp = self.send(ep, req).await?;
        let token: wire::TokenBody = self
            .decode_response(ep, resp, self.small_body_limit, None)
            .await?;
        if token.access_token.is_empty() {
            return Err(ApiError::Contract {
                endpoint: ep,
                reason: "empty access_token".into(),
            });
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_lifetimes_are_clamped_without_overflow() {
        let now = Instant::now();
        let margin = Duration::from_secs(300);
        for expires_in in [1u64 << 63, u64::MAX, u64::MAX / 1000, 10 * 24 * 3600] {
            let (refresh_at, expires_at) = schedule(now, expires_in, margin);
            assert_eq!(expires_at - now, MAX_TOKEN_LIFETIME, "{expires_in}");
            assert_eq!(
                refresh_at - now,
                MAX_TOKEN_LIFETIME - margin,
                "{expires_in}"
            );
        }
    }

    #[test]
    fn short_lifetimes_refresh_at_half() {
        let now = Instant::now();
        let margin = Duration::from_secs(300);
        let (refresh_at, expires_at) = schedule(now, 7200, margin);
        assert_eq!(
            (refresh_at - now, expires_at - now),
            (Duration::from_secs(6900), Duration::from_secs(7200))
        );
        let (refresh_at, expires_at) = schedule(now, 300, margin);
        assert_eq!(
            (refresh_at - now, expires_at - now),
            (Duration::from_secs(150), Duration::from_secs(300))
        );
        let (refresh_at, expires_at) = schedule(now, 0, margin);
        assert_eq!((refresh_at, expires_at), (now, now));
    }
}
