//! Counters of one client, read as a snapshot for metrics and for summary log lines.
//!
//! Retried faults are logged at DEBUG one by one (a busy server can produce thousands); a caller that
//! wants them visible takes [`ArchiveClient::events`](crate::ArchiveClient::events) now and then and
//! logs [`EventCounts::since`] the previous one: one line per interval, a count per [`EventKind`].
//! Labels are bounded: endpoint names are a fixed set, errcodes and HTTP statuses are small sets in
//! practice.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::ApiError;

/// A kind of event the client counts. [`EventKind::name`] is stable (for log fields and metric labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// An access token was fetched (the first one or a refresh).
    TokenFetched,
    /// A data call was answered with a token error (40001/40014/42001); the token was dropped.
    TokenRejected,
    /// An early token refresh failed; the cached token was used until it expires.
    TokenRefreshFailed,
    /// Errcode -1: the server is busy.
    Busy,
    /// Errcode 45009: the corp is rate limited.
    RateLimited,
    /// Another retriable errcode (10001: the SDK gateway's network).
    RetriableErrcode,
    /// HTTP 5xx without an error envelope.
    ServerError,
    /// HTTP 408 or 429 without an error envelope.
    Throttled,
    /// The server could not be reached.
    ConnectFailed,
    /// A request or a read timed out.
    Timeout,
    /// A connection reset or a body cut short.
    Reset,
    /// A success status with a body that is not JSON (usually truncated).
    TruncatedBody,
    /// A page with more items than asked for.
    TooManyItems,
    /// An answer over the body limit.
    BodyTooLarge,
    /// JSON of the wrong shape.
    ContractMismatch,
    /// A retry was scheduled (after a backoff or a token refresh).
    Retried,
    /// A call gave up after its last attempt.
    RetriesExhausted,
    /// A media download was resumed at a nonzero offset.
    MediaResumed,
}

impl EventKind {
    /// Every kind, in the order summaries list them.
    pub const ALL: [EventKind; 18] = [
        EventKind::TokenFetched,
        EventKind::TokenRejected,
        EventKind::TokenRefreshFailed,
        EventKind::Busy,
        EventKind::RateLimited,
        EventKind::RetriableErrcode,
        EventKind::ServerError,
        EventKind::Throttled,
        EventKind::ConnectFailed,
        EventKind::Timeout,
        EventKind::Reset,
        EventKind::TruncatedBody,
        EventKind::TooManyItems,
        EventKind::BodyTooLarge,
        EventKind::ContractMismatch,
        EventKind::Retried,
        EventKind::RetriesExhausted,
        EventKind::MediaResumed,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            EventKind::TokenFetched => "token_fetched",
            EventKind::TokenRejected => "token_rejected",
            EventKind::TokenRefreshFailed => "token_refresh_failed",
            EventKind::Busy => "busy",
            EventKind::RateLimited => "rate_limited",
            EventKind::RetriableErrcode => "retriable_errcode",
            EventKind::ServerError => "server_error",
            EventKind::Throttled => "throttled",
            EventKind::ConnectFailed => "connect_failed",
            EventKind::Timeout => "timeout",
            EventKind::Reset => "reset",
            EventKind::TruncatedBody => "truncated_body",
            EventKind::TooManyItems => "too_many_items",
            EventKind::BodyTooLarge => "body_too_large",
            EventKind::ContractMismatch => "contract_mismatch",
            EventKind::Retried => "retried",
            EventKind::RetriesExhausted => "retries_exhausted",
            EventKind::MediaResumed => "media_resumed",
        }
    }

    /// The kind an error is counted as, if any (`InvalidArgument` is the caller's, not the server's).
    fn of(err: &ApiError) -> Option<EventKind> {
        Some(match err {
            ApiError::Api { errcode: -1, .. } => EventKind::Busy,
            ApiError::Api { errcode: 45009, .. } => EventKind::RateLimited,
            e @ ApiError::Api { .. } if e.is_token_error() => EventKind::TokenRejected,
            e @ ApiError::Api { .. } if e.class() == crate::ErrorClass::Retriable => {
                EventKind::RetriableErrcode
            }
            ApiError::Api { .. } => return None,
            ApiError::Http { status, .. } => match status {
                500..=599 => EventKind::ServerError,
                408 | 429 => EventKind::Throttled,
                _ => return None,
            },
            ApiError::Connect { .. } => EventKind::ConnectFailed,
            ApiError::Transport {
                timed_out: true, ..
            } => EventKind::Timeout,
            ApiError::Transport { .. } => EventKind::Reset,
            ApiError::Decode { .. } => EventKind::TruncatedBody,
            ApiError::TooManyItems { .. } => EventKind::TooManyItems,
            ApiError::BodyTooLarge { .. } => EventKind::BodyTooLarge,
            ApiError::Contract { .. } => EventKind::ContractMismatch,
            ApiError::RetriesExhausted { .. } => EventKind::RetriesExhausted,
            ApiError::InvalidArgument(_) => return None,
        })
    }
}

/// How many times each [`EventKind`] happened (since the client was created, or between two snapshots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts([u64; EventKind::ALL.len()]);

impl EventCounts {
    pub fn get(&self, kind: EventKind) -> u64 {
        self.0[kind as usize]
    }

    /// What happened between `earlier` (a previous snapshot of the same client) and this one.
    pub fn since(&self, earlier: &EventCounts) -> EventCounts {
        let mut out = *self;
        for (n, before) in out.0.iter_mut().zip(earlier.0) {
            *n = n.saturating_sub(before);
        }
        out
    }

    /// The kinds that happened, with their stable names and counts, in [`EventKind::ALL`] order.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        EventKind::ALL
            .iter()
            .map(|k| (k.name(), self.get(*k)))
            .filter(|(_, n)| *n > 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|n| *n == 0)
    }
}

/// `busy=3 retried=3` (nonzero kinds only), for one summary log line.
impl fmt::Display for EventCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, n)) in self.nonzero().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={n}")?;
        }
        Ok(())
    }
}

/// A snapshot of a client's counters since it was created (shared by its clones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent (every attempt counts), by endpoint.
    pub calls: BTreeMap<&'static str, u64>,
    /// Error envelopes received, by errcode.
    pub api_errors: BTreeMap<i64, u64>,
    /// Non-success HTTP statuses without an error envelope, by status.
    pub http_errors: BTreeMap<u16, u64>,
    /// Connect failures, timeouts, resets.
    pub transport_errors: u64,
    /// Bodies that were not JSON, did not match the contract, were too large, or held too many items.
    pub decode_errors: u64,
    /// Retries scheduled (after a backoff or a token refresh), by endpoint.
    pub retries: BTreeMap<&'static str, u64>,
    /// Access tokens fetched.
    pub token_refreshes: u64,
    /// Every counted event by kind.
    pub events: EventCounts,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// The labelled counters (their label sets grow, hence a map under a lock).
    labelled: Mutex<ClientStats>,
    /// One atomic per [`EventKind`]: read without a lock by [`Stats::events`].
    events: [AtomicU64; EventKind::ALL.len()],
}

impl Stats {
    fn with(&self, f: impl FnOnce(&mut ClientStats)) {
        // A poisoned lock only means a panic elsewhere mid-increment; counters stay usable.
        let mut guard = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard);
    }

    pub(crate) fn event(&self, kind: EventKind) {
        self.events[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn call(&self, endpoint: &'static str) {
        self.with(|s| *s.calls.entry(endpoint).or_default() += 1);
    }

    pub(crate) fn retry(&self, endpoint: &'static str) {
        self.event(EventKind::Retried);
        self.with(|s| *s.retries.entry(endpoint).or_default() += 1);
    }

    pub(crate) fn token_refresh(&self) {
        self.event(EventKind::TokenFetched);
        self.with(|s| s.token_refreshes += 1);
    }

    pub(crate) fn error(&self, err: &ApiError) {
        if let Some(kind) = EventKind::of(err) {
            self.event(kind);
        }
        self.with(|s| match err {
            ApiError::Api { errcode, .. } => *s.api_errors.entry(*errcode).or_default() += 1,
            ApiError::Http { status, .. } => *s.http_errors.entry(*status).or_default() += 1,
            ApiError::Connect { .. } | ApiError::Transport { .. } => s.transport_errors += 1,
            ApiError::Decode { .. }
            | ApiError::Contract { .. }
            | ApiError::BodyTooLarge { .. }
            | ApiError::TooManyItems { .. } => s.decode_errors += 1,
            ApiError::InvalidArgument(_) | ApiError::RetriesExhausted { .. } => {}
        });
    }

    pub(crate) fn events(&self) -> EventCounts {
        let mut out = EventCounts::default();
        for (n, counter) in out.0.iter_mut().zip(&self.events) {
            *n = counter.load(Ordering::Relaxed);
        }
        out
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        let mut out = self
            .labelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.events = self.events();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_indexes_match_all() {
        let names: std::collections::BTreeSet<_> =
            EventKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        for (i, k) in EventKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
    }

    #[test]
    fn since_is_the_difference_per_kind() {
        let stats = Stats::default();
        stats.event(EventKind::Busy);
        let before = stats.events();
        stats.event(EventKind::Busy);
        stats.event(EventKind::Busy);
        stats.event(EventKind::RateLimited);
        let delta = stats.events().since(&before);
        assert_eq!(delta.get(EventKind::Busy), 2);
        assert_eq!(delta.get(EventKind::RateLimited), 1);
        assert_eq!(delta.get(EventKind::Timeout), 0);
        assert_eq!(
            delta.nonzero().collect::<Vec<_>>(),
            vec![("busy", 2), ("rate_limited", 1)]
        );
        assert_eq!(delta.to_string(), "busy=2 rate_limited=1");
        assert!(stats.events().since(&stats.events()).is_empty());
    }
}
