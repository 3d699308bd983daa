//! Client configuration: the `[fetch]` section of the config file ([`FetchConfig`]), the retry policy,
//! and the [`ClientConfig`] a client is built from.
//!
//! The `[fetch]` section lives here because this crate is what it configures; the program reads it,
//! calls [`FetchConfig::validate`], and builds the client with [`FetchConfig::client_config`].
//! `RetryPolicy` is serde-friendly for embedding in the config file: durations are written as integer
//! milliseconds in fields suffixed `_ms` (`initial_backoff_ms`, `max_backoff_ms`,
//! `rate_limited_backoff_ms`), while the Rust fields are `Duration`s.

use std::time::Duration;

use crate::calls::MAX_LIMIT;
use crate::error::ApiError;
use crate::Secret;

/// A config value outside what the client can run with. The message names the key as written in the
/// config file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} must be {expected}, got {got}")]
    Invalid {
        key: String,
        expected: &'static str,
        got: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, expected: &'static str, got: impl ToString) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            expected,
            got: got.to_string(),
        }
    }

    /// The same error with `section.` in front of its key.
    fn within(self, section: &str) -> Self {
        match self {
            ConfigError::Invalid { key, expected, got } => ConfigError::Invalid {
                key: format!("{section}.{key}"),
                expected,
                got,
            },
        }
    }
}

/// The `[fetch]` section: how the corp stream is paged and how every archive call is timed and retried.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Items per `get_chat_data` page, 1..=1000.
    pub limit: u32,
    /// How long to wait before asking again once caught up (live tail).
    pub poll_interval_ms: u64,
    /// Whole-request timeout of a JSON call; the idle read timeout of a media stream.
    pub request_timeout_ms: u64,
    pub retry: RetryPolicy,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            limit: MAX_LIMIT,
            poll_interval_ms: 2000,
            request_timeout_ms: 30_000,
            retry: RetryPolicy::default(),
        }
    }
}

impl FetchConfig {
    /// Refuses values the client cannot run with; messages name the key (`fetch.limit`, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(ConfigError::invalid("fetch.limit", "1..=1000", self.limit));
        }
        if self.poll_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "fetch.poll_interval_ms",
                "at least 1",
                0,
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "fetch.request_timeout_ms",
                "at least 1",
                0,
            ));
        }
        self.retry.check().map_err(|e| e.within("fetch.retry"))
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The client config for one corp at `base_url` with this section's timeout and retry policy (the
    /// other settings keep [`ClientConfig::new`]'s defaults).
    pub fn client_config(
        &self,
        base_url: impl Into<String>,
        corp_id: impl Into<String>,
        corp_secret: Secret,
    ) -> ClientConfig {
        ClientConfig {
            request_timeout: self.request_timeout(),
            retry: self.retry.clone(),
            ..ClientConfig::new(base_url, corp_id, corp_secret)
        }
    }
}

/// How a call is retried. Backoff is exponential with full jitter: before retry `n` (1-based) the client
/// sleeps a uniformly random time in `[0, min(max_backoff, initial_backoff * multiplier^(n-1))]`.
/// A rate-limit answer (errcode 45009) instead sleeps exactly `rate_limited_backoff`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts per call, the first one included (>= 1).
    pub max_attempts: u32,
    #[serde(rename = "initial_backoff_ms", with = "duration_ms")]
    pub initial_backoff: Duration,
    #[serde(rename = "max_backoff_ms", with = "duration_ms")]
    pub max_backoff: Duration,
    /// Growth factor of the backoff ceiling (>= 1.0).
    pub multiplier: f64,
    /// Wait after errcode 45009. WeCom blocks the caller for 60 s or 60 min.
    #[serde(rename = "rate_limited_backoff_ms", with = "duration_ms")]
    pub rate_limited_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            rate_limited_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Checks the invariants the retry loop relies on.
    pub fn validate(&self) -> Result<(), ApiError> {
        self.check()
            .map_err(|e| ApiError::InvalidArgument(e.within("retry").to_string()))
    }

    /// The same checks as [`RetryPolicy::validate`], keys named as in the config file (without the
    /// section: `max_attempts`, ...).
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::invalid("max_attempts", "at least 1", 0));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(ConfigError::invalid(
                "multiplier",
                "a finite number >= 1.0",
                self.multiplier,
            ));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(ConfigError::invalid(
                "initial_backoff_ms",
                "at most max_backoff_ms",
                self.initial_backoff.as_millis(),
            ));
        }
        Ok(())
    }

    /// The ceiling of the jittered wait before retry number `retry` (1-based).
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let exp = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exp);
        let max = self.max_backoff.as_secs_f64();
        if !secs.is_finite() || secs >= max {
            self.max_backoff
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// A full-jitter wait before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        use rand::Rng;
        let ceiling = self.backoff_ceiling(retry);
        if ceiling.is_zero() {
            return ceiling;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }
}

/// Everything [`crate::ArchiveClient::new`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Scheme, host and optional path prefix, e.g. `http://127.0.0.1:8080`; `/cgi-bin/...` is appended.
    pub base_url: String,
    pub corp_id: String,
    pub corp_secret: Secret,
    /// Whole-request timeout of JSON calls, and the idle read timeout of media streams (a media body
    /// has no total deadline, only a limit on silence between reads).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Refresh the access token this long before its `expires_in` runs out. When `expires_in` is not
    /// larger than the margin, the token is refreshed at half its lifetime instead.
    pub token_refresh_margin: Duration,
    /// Largest answer, in bytes, of the calls that return lists: `get_chat_data`, a room's page of
    /// items, the permit-user list. A larger answer is refused without being read.
    pub page_body_limit: u64,
    /// Largest answer, in bytes, of the other JSON calls (token, room info, consent). Media bodies are
    /// streamed and have no limit (an error envelope in their place is read up to 64 KiB).
    pub small_body_limit: u64,
}

/// Default [`ClientConfig::page_body_limit`]: 1000 items of the largest kind fit several times over.
pub const DEFAULT_PAGE_BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// Default [`ClientConfig::small_body_limit`].
pub const DEFAULT_SMALL_BODY_LIMIT: u64 = 1024 * 1024;

impl ClientConfig {
    /// A config with the defaults: 30 s request timeout, 10 s connect timeout, default retry policy,
    /// 300 s token refresh margin, 64 MiB for list answers and 1 MiB for the others.
    pub fn new(
        base_url: impl Into<String>,
        corp_id: impl Into<String>,
        corp_secret: Secret,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            corp_id: corp_id.into(),
            corp_secret,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            token_refresh_margin: Duration::from_secs(300),
            page_body_limit: DEFAULT_PAGE_BODY_LIMIT,
            small_body_limit: DEFAULT_SMALL_BODY_LIMIT,
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(200));
        assert_eq!(p.backoff_ceiling(2), Duration::from_millis(400));
        assert_eq!(p.backoff_ceiling(100), Duration::from_secs(30));
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(30));
        for n in 1..20 {
            assert!(p.backoff(n) <= p.backoff_ceiling(n));
        }
    }

    #[test]
    fn policy_serde_uses_milliseconds() {
        let p: RetryPolicy =
            serde_json::from_str(r#"{"max_attempts":3,"rate_limited_backoff_ms":5}"#).unwrap();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.rate_limited_backoff, Duration::from_millis(5));
        assert_eq!(p.initial_backoff, Duration::from_millis(200));
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["max_backoff_ms"], 30_000);
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"bogus":1}"#).is_err());
    }

    fn fetch(toml_text: &str) -> FetchConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn check_fetch(toml_text: &str, expected: Result<(), &str>) {
        let got = fetch(toml_text).validate().map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "{toml_text}");
    }

    #[test]
    fn fetch_section_defaults_and_refusals() {
        let d = fetch("");
        assert_eq!(d, FetchConfig::default());
        assert_eq!(
            (d.limit, d.poll_interval_ms, d.request_timeout_ms),
            (1000, 2000, 30_000)
        );
        check_fetch("", Ok(()));
        check_fetch("limit = 1", Ok(()));
        check_fetch("limit = 1000", Ok(()));
        check_fetch(
            "limit = 5000",
            Err("fetch.limit must be 1..=1000, got 5000"),
        );
        check_fetch("limit = 0", Err("fetch.limit must be 1..=1000, got 0"));
        check_fetch(
            "poll_interval_ms = 0",
            Err("fetch.poll_interval_ms must be at least 1, got 0"),
        );
        check_fetch(
            "request_timeout_ms = 0",
            Err("fetch.request_timeout_ms must be at least 1, got 0"),
        );
        check_fetch(
            "[retry]\nmax_attempts = 0",
            Err("fetch.retry.max_attempts must be at least 1, got 0"),
        );
        check_fetch(
            "[retry]\nmultiplier = 0.5",
            Err("fetch.retry.multiplier must be a finite number >= 1.0, got 0.5"),
        );
        check_fetch(
            "[retry]\ninitial_backoff_ms = 60000\nmax_backoff_ms = 1000",
            Err("fetch.retry.initial_backoff_ms must be at most max_backoff_ms, got 60000"),
        );
        assert!(toml::from_str::<FetchConfig>("limt = 5").is_err());
        assert!(toml::from_str::<FetchConfig>("[retry]\nmax_attempt = 5").is_err());
    }

    #[test]
    fn fetch_section_builds_the_client_config() {
        let f = fetch("request_timeout_ms = 1500\n[retry]\nmax_attempts = 3");
        let c = f.client_config("http://127.0.0.1:1", "ww1", Secret::new("s"));
        assert_eq!(c.base_url, "http://127.0.0.1:1");
        assert_eq!(c.corp_id, "ww1");
        assert_eq!(c.corp_secret.expose(), "s");
        assert_eq!(c.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(f.poll_interval(), Duration::from_secs(2));
    }

    #[test]
    fn policy_validation() {
        assert!(RetryPolicy::default().validate().is_ok());
        let bad = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert!(bad.validate().is_err());
        let bad = RetryPolicy {
            multiplier: 0.5,
            ..RetryPolicy::default()
        };
        assert!(bad.validate().is_err());
    }
}
