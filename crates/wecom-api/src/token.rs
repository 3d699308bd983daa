//! The access-token cache: one token per client, fetched on first use, refreshed a margin before it
//! expires, dropped when the server rejects it, and one refresh shared by concurrent callers.

use std::time::{Duration, Instant};

use crate::client::Inner;
use crate::endpoint;
use crate::error::{ApiError, ErrorClass};
use crate::wire;
use crate::Secret;

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
                let fetched = Instant::now();
                let life = Duration::from_secs(body.expires_in);
                let refresh_after = if life > self.token.refresh_margin {
                    life - self.token.refresh_margin
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
}
