//! [`Probe`]: what one run's stages report, one hook per event. Each hook updates the run's counters (the
//! summary, the progress line) and the metrics together, so an event is counted in one place.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use metrics::{counter, gauge, histogram};
use serde::{Deserialize, Serialize};
use tracing::error;

use crate::outputs::PageOutcome;
use crate::process::Processed;

/// The last error a stream hit (already logged where it happened).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastError {
    pub message: String,
    pub seq: u64,
    pub at: String,
}

/// What one run's stages report.
pub struct Probe {
    corp_id: String,
    stream: String,
    fetched: AtomicU64,
    duplicates: AtomicU64,
    records: AtomicU64,
    dead: AtomicU64,
    skipped: AtomicU64,
    /// The newest seq the fetcher has seen.
    pub(super) newest: AtomicU64,
    pub(super) committed: AtomicU64,
    caught_up: AtomicBool,
    token_ok: AtomicBool,
    sink_ok: AtomicBool,
    pub(super) fetch_stuck: AtomicBool,
    pub(super) sink_stuck: AtomicBool,
    pub(super) last_fetch: Mutex<Option<Instant>>,
    pub(super) last_commit: Mutex<Option<Instant>>,
    last_error: Mutex<Option<LastError>>,
}

/// A snapshot of a probe's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    pub fetched: u64,
    pub duplicates: u64,
    pub records: u64,
    pub dead_letters: u64,
    pub skipped: u64,
    pub newest: u64,
    pub committed: u64,
    pub caught_up: bool,
}

impl ProbeCounts {
    /// Items written (records and dead letters).
    pub fn done(&self) -> u64 {
        self.records + self.dead_letters
    }
}

/// What a written batch held, taken before the batch moves into the sink.
#[derive(Debug, Default)]
pub struct Acked {
    records: BTreeMap<String, u64>,
    dead: BTreeMap<&'static str, u64>,
    msgtimes_ms: Vec<u64>,
}

impl Acked {
    pub fn of(batch: &[Processed]) -> Self {
        let mut a = Acked::default();
        for p in batch {
            match p.dead {
                Some(reason) => *a.dead.entry(reason.as_str()).or_default() += 1,
                None => {
                    let t = p.msgtype.as_deref().unwrap_or("none");
                    *a.records.entry(t.to_string()).or_default() += 1;
                    if let Some(ms) = p.msgtime_ms {
                        a.msgtimes_ms.push(ms);
                    }
                }
            }
        }
        a
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Probe {
    /// The probe of `corp_id`'s `stream` whose cursor stands at `committed`.
    pub fn new(corp_id: &str, stream: &str, committed: u64) -> Self {
        Probe {
            corp_id: corp_id.to_string(),
            stream: stream.to_string(),
            fetched: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            records: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            newest: AtomicU64::new(committed),
            committed: AtomicU64::new(committed),
            caught_up: AtomicBool::new(false),
            token_ok: AtomicBool::new(false),
            // The stream directory was opened and recovered before the probe is made.
            sink_ok: AtomicBool::new(true),
            fetch_stuck: AtomicBool::new(false),
            sink_stuck: AtomicBool::new(false),
            last_fetch: Mutex::new(None),
            last_commit: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn corp(&self) -> &str {
        &self.corp_id
    }

    pub fn counts(&self) -> ProbeCounts {
        ProbeCounts {
            fetched: self.fetched.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            dead_letters: self.dead.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            newest: self.newest.load(Ordering::Relaxed),
            committed: self.committed.load(Ordering::Relaxed),
            caught_up: self.caught_up.load(Ordering::Relaxed),
        }
    }

    /// A page came back with `new_items` new items (0: caught up) and `dropped` repeats; `newest` is the
    /// largest seq seen so far.
    pub fn page_fetched(&self, new_items: usize, dropped: usize, newest: u64) {
        let s = self.stream.clone();
        counter!("wecom_items_fetched_total", "corp" => self.corp_id.clone(), "stream" => s.clone()).increment(new_items as u64);
        counter!("wecom_items_duplicates_dropped_total", "corp" => self.corp_id.clone(), "stream" => s.clone())
            .increment(dropped as u64);
        let newest = self.newest.fetch_max(newest, Ordering::Relaxed).max(newest);
        gauge!("wecom_newest_seq_seen", "corp" => self.corp_id.clone(), "stream" => s)
            .set(newest as f64);
        self.fetched.fetch_add(new_items as u64, Ordering::Relaxed);
        self.duplicates.fetch_add(dropped as u64, Ordering::Relaxed);
        self.caught_up.store(new_items == 0, Ordering::Relaxed);
        self.token_ok.store(true, Ordering::Relaxed);
        *lock(&self.last_fetch) = Some(Instant::now());
    }

    /// A finite source (the raw archive) has nothing more.
    pub fn caught_up(&self) {
        self.caught_up.store(true, Ordering::Relaxed);
    }

    /// A fetch failed after the client's retries (logged by the caller).
    pub fn fetch_failed(&self, seq: u64, err: &(dyn std::error::Error + 'static)) {
        counter!("wecom_fetch_errors_total", "corp" => self.corp_id.clone(), "stream" => self.stream.clone()).increment(1);
        self.set_error(seq, format!("fetch: {}", wecom_model::error_chain(err)));
    }

    /// Items came out of the decrypt stage.
    pub fn decrypted(&self, out: &[Processed]) {
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        for p in out.iter().filter(|p| p.dead.is_none()) {
            *by_type
                .entry(p.msgtype.as_deref().unwrap_or("none"))
                .or_default() += 1;
        }
        for (t, n) in by_type {
            counter!("wecom_items_decrypted_total", "corp" => self.corp_id.clone(), "stream" => self.stream.clone(), "msgtype" => t.to_string())
                .increment(n);
        }
    }

    /// Every output acknowledged a page and the cursor moved to `seq`.
    pub fn committed(&self, seq: u64, outcome: PageOutcome, acked: Acked) {
        let s = self.stream.clone();
        self.records.fetch_add(outcome.records, Ordering::Relaxed);
        self.dead.fetch_add(outcome.dead_letters, Ordering::Relaxed);
        self.skipped.fetch_add(outcome.skipped, Ordering::Relaxed);
        counter!("wecom_items_skipped_total", "corp" => self.corp_id.clone(), "stream" => s.clone()).increment(outcome.skipped);
        for (t, n) in acked.records {
            counter!("wecom_records_published_total", "corp" => self.corp_id.clone(), "stream" => s.clone(), "msgtype" => t)
                .increment(n);
        }
        for (r, n) in acked.dead {
            counter!("wecom_dead_letters_total", "corp" => self.corp_id.clone(), "stream" => s.clone(), "reason" => r).increment(n);
        }
        let now = wecom_store::now_unix_ms();
        let h = histogram!("wecom_e2e_latency_seconds", "corp" => self.corp_id.clone(), "stream" => s.clone());
        for ms in acked.msgtimes_ms {
            h.record(now.saturating_sub(ms) as f64 / 1000.0);
        }
        self.committed.fetch_max(seq, Ordering::Relaxed);
        gauge!("wecom_committed_seq", "corp" => self.corp_id.clone(), "stream" => s.clone())
            .set(seq as f64);
        gauge!("wecom_last_commit_timestamp_seconds", "corp" => self.corp_id.clone(), "stream" => s).set(now as f64 / 1000.0);
        self.sink_ok.store(true, Ordering::Relaxed);
        *lock(&self.last_commit) = Some(Instant::now());
    }

    /// A sink write or commit failed for the batch ending at `seq`. Logged here, naming corp, stream, seq.
    pub fn sink_failed(&self, seq: u64, err: &(dyn std::error::Error + 'static)) {
        counter!("wecom_sink_errors_total", "corp" => self.corp_id.clone(), "stream" => self.stream.clone()).increment(1);
        self.sink_ok.store(false, Ordering::Relaxed);
        let chain = wecom_model::error_chain(err);
        error!(corp = %self.corp_id, stream = %self.stream, seq, error = %chain, "sink write failed");
        self.set_error(seq, format!("sink: {chain}"));
    }

    fn set_error(&self, seq: u64, message: String) {
        *lock(&self.last_error) = Some(LastError {
            message,
            seq,
            at: super::rfc3339_now(),
        });
    }

    /// Why this stream is not ready, if it is not.
    pub(super) fn problems(&self) -> Vec<&'static str> {
        let mut p = Vec::new();
        if !self.token_ok.load(Ordering::Relaxed) {
            p.push("no access token yet");
        }
        if !self.sink_ok.load(Ordering::Relaxed) {
            p.push("sink not reachable");
        }
        if self.fetch_stuck.load(Ordering::Relaxed) {
            p.push("fetch stage stuck");
        }
        if self.sink_stuck.load(Ordering::Relaxed) {
            p.push("sink stage stuck");
        }
        p
    }

    pub(super) fn status(&self) -> super::StatusFile {
        let committed = self.committed.load(Ordering::Relaxed);
        super::StatusFile {
            stream: self.stream.clone(),
            corp_id: self.corp_id.clone(),
            newest_seq_seen: self.newest.load(Ordering::Relaxed).max(committed),
            committed_seq: committed,
            last_error: lock(&self.last_error).clone(),
            updated_at: super::rfc3339_now(),
        }
    }
}

/// Probes of the running streams, by registration id.
type Registry = Mutex<Vec<(u64, Arc<Probe>)>>;
static REGISTRY: LazyLock<Registry> = LazyLock::new(Default::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Registers a running stream's probe for `/ready`; returns the id to deregister it with.
pub(super) fn register(probe: Arc<Probe>) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock(&REGISTRY).push((id, probe));
    id
}

pub(super) fn deregister(id: u64) {
    lock(&REGISTRY).retain(|(i, _)| *i != id);
}

/// Readiness of every running stream: `Ok` when all pass (and at least one runs), else the problems.
pub fn readiness() -> Result<(), Vec<String>> {
    let reg = lock(&REGISTRY);
    if reg.is_empty() {
        return Err(vec!["no stream is running".to_string()]);
    }
    let problems: Vec<String> = reg
        .iter()
        .flat_map(|(_, p)| {
            let s = p.stream().to_string();
            p.problems().into_iter().map(move |m| format!("{s}: {m}"))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
