//! Counters of one client, read as a snapshot for metrics. Labels are bounded: endpoint names are a
//! fixed set, errcodes and HTTP statuses are small sets in practice.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::ApiError;

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
    /// Bodies that were not JSON or did not match the contract.
    pub decode_errors: u64,
    /// Retries scheduled (after a backoff or a token refresh), by endpoint.
    pub retries: BTreeMap<&'static str, u64>,
    /// Access tokens fetched.
    pub token_refreshes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats(Mutex<ClientStats>);

impl Stats {
    fn with(&self, f: impl FnOnce(&mut ClientStats)) {
        // A poisoned lock only means a panic elsewhere mid-increment; counters stay usable.
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard);
    }

    pub(crate) fn call(&self, endpoint: &'static str) {
        self.with(|s| *s.calls.entry(endpoint).or_default() += 1);
    }

    pub(crate) fn retry(&self, endpoint: &'static str) {
        self.with(|s| *s.retries.entry(endpoint).or_default() += 1);
    }

    pub(crate) fn token_refresh(&self) {
        self.with(|s| s.token_refreshes += 1);
    }

    pub(crate) fn error(&self, err: &ApiError) {
        self.with(|s| match err {
            ApiError::Api { errcode, .. } => *s.api_errors.entry(*errcode).or_default() += 1,
            ApiError::Http { status, .. } => *s.http_errors.entry(*status).or_default() += 1,
            ApiError::Transport { .. } => s.transport_errors += 1,
            ApiError::Decode { .. } | ApiError::Contract { .. } => s.decode_errors += 1,
            ApiError::InvalidArgument(_) | ApiError::RetriesExhausted { .. } => {}
        });
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
