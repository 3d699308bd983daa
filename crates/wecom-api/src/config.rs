//! Client configuration and the retry policy.
//!
//! `RetryPolicy` is serde-friendly for embedding in the pipeline's config file: durations are written as
//! integer milliseconds in fields suffixed `_ms` (`initial_backoff_ms`, `max_backoff_ms`,
//! `rate_limited_backoff_ms`), while the Rust fields are `Duration`s.

use std::time::Duration;

use crate::error::ApiError;
use crate::Secret;

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
        if self.max_attempts == 0 {
            return Err(ApiError::InvalidArgument(
                "retry max_attempts must be at least 1".into(),
            ));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(ApiError::InvalidArgument(format!(
                "retry multiplier must be a finite number >= 1.0, got {}",
                self.multiplier
            )));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(ApiError::InvalidArgument(
                "retry initial_backoff must not exceed max_backoff".into(),
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
}

impl ClientConfig {
    /// A config with the defaults: 30 s request timeout, 10 s connect timeout, default retry policy,
    /// 300 s token refresh margin.
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
