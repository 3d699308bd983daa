//! Running it like a service: Prometheus metrics, `/health` and `/ready`, stuck-stage detection, and the
//! per-stream `status.json` that `wecom-archive status` reads. The metric names, types and labels are
//! documented in `docs/metrics.md`; keep the two in step.
//!
//! Shape: a run owns one [`Probe`] (atomics updated by the stages through one-line hooks in `run.rs`) and
//! a [`WatchGuard`] from [`watch`]: a task that once a second polls the API client's counters, the page
//! channel's depth and the process RSS into metrics, decides whether a stage is stuck, and rewrites
//! `status.json`. Probes of running streams are registered process-wide; `/ready` asks them.
//! The HTTP server ([`serve`]) is started by the binary when `[ops] listen` is set.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use wecom_api::ArchiveClient;

use crate::process::Processed;

/// `[ops]`: the service side. Absent: no HTTP server; stuck detection and `status.json` still run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Address of the `/metrics`, `/health`, `/ready` server, e.g. `"127.0.0.1:9108"`.
    pub listen: Option<SocketAddr>,
    /// A stage with pending work and no progress for this long makes `/ready` fail (logged at ERROR once).
    pub stuck_after_secs: u64,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            stuck_after_secs: 300,
        }
    }
}

/// Buckets of `wecom_e2e_latency_seconds`: from a second to a week (the archive is read after the fact).
const LATENCY_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0, 604800.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install_recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Full("wecom_e2e_latency_seconds".into()),
                        LATENCY_BUCKETS,
                    )
                    .expect("non-empty bucket list")
            };
            match builder().install_recorder() {
                Ok(h) => h,
                // Another recorder is already global: render our own (empty) one rather than fail.
                Err(e) => {
                    warn!(error = %e, "a metrics recorder is already installed; /metrics will be empty");
                    builder().build_recorder().handle()
                }
            }
        })
        .clone()
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339_now() -> String {
    wecom_model::record::format_msgtime(now_unix_ms()).unwrap_or_default()
}

/// The last error a stream hit (already logged where it happened).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastError {
    pub message: String,
    pub seq: u64,
    pub at: String,
}

/// What one run's stages report. `Default` so it can live in the run's counters; [`watch`] names it.
#[derive(Default)]
pub struct Probe {
    corp_id: OnceLock<String>,
    stream: OnceLock<String>,
    newest: AtomicU64,
    committed: AtomicU64,
    token_ok: AtomicBool,
    sink_ok: AtomicBool,
    fetch_stuck: AtomicBool,
    sink_stuck: AtomicBool,
    last_fetch: Mutex<Option<Instant>>,
    last_commit: Mutex<Option<Instant>>,
    last_error: Mutex<Option<LastError>>,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Probe {
    fn stream(&self) -> String {
        self.stream.get().cloned().unwrap_or_default()
    }
    fn corp(&self) -> &str {
        self.corp_id.get().map_or("", |s| s.as_str())
    }

    /// A fetch call returned: `new_items` new items (0 when caught up), `dropped` repeats, newest seq seen.
    pub fn fetched(&self, new_items: usize, dropped: usize, newest: u64) {
        let s = self.stream();
        counter!("wecom_items_fetched_total", "stream" => s.clone()).increment(new_items as u64);
        counter!("wecom_items_duplicates_dropped_total", "stream" => s.clone())
            .increment(dropped as u64);
        let newest = self.newest.fetch_max(newest, Ordering::Relaxed).max(newest);
        gauge!("wecom_newest_seq_seen", "stream" => s).set(newest as f64);
        self.token_ok.store(true, Ordering::Relaxed);
        *lock(&self.last_fetch) = Some(Instant::now());
    }

    /// A fetch failed after the client's retries (logged by the caller).
    pub fn fetch_failed(&self, seq: u64, err: &dyn std::fmt::Display) {
        counter!("wecom_fetch_errors_total", "stream" => self.stream()).increment(1);
        self.set_error(seq, format!("fetch: {err}"));
    }

    /// Items came out of the decrypt stage.
    pub fn decrypted(&self, out: &[Processed]) {
        let s = self.stream();
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        for p in out.iter().filter(|p| p.dead.is_none()) {
            *by_type
                .entry(p.msgtype.as_deref().unwrap_or("none"))
                .or_default() += 1;
        }
        for (t, n) in by_type {
            counter!("wecom_items_decrypted_total", "stream" => s.clone(), "msgtype" => t.to_string())
                .increment(n);
        }
    }

    /// Items already in the sink after recovery, not written again.
    pub fn skipped(&self, n: u64) {
        counter!("wecom_items_skipped_total", "stream" => self.stream()).increment(n);
    }

    /// The sink acknowledged a batch and the cursor moved to `seq`.
    pub fn committed(&self, seq: u64, acked: Acked) {
        let s = self.stream();
        for (t, n) in acked.records {
            counter!("wecom_records_published_total", "stream" => s.clone(), "msgtype" => t)
                .increment(n);
        }
        for (r, n) in acked.dead {
            counter!("wecom_dead_letters_total", "stream" => s.clone(), "reason" => r).increment(n);
        }
        let now = now_unix_ms();
        let h = histogram!("wecom_e2e_latency_seconds", "stream" => s.clone());
        for ms in acked.msgtimes_ms {
            h.record(now.saturating_sub(ms) as f64 / 1000.0);
        }
        self.committed.fetch_max(seq, Ordering::Relaxed);
        gauge!("wecom_committed_seq", "stream" => s.clone()).set(seq as f64);
        gauge!("wecom_last_commit_timestamp_seconds", "stream" => s).set(now as f64 / 1000.0);
        self.sink_ok.store(true, Ordering::Relaxed);
        *lock(&self.last_commit) = Some(Instant::now());
    }

    /// A sink write or commit failed for the batch ending at `seq`. Logged here, naming corp, stream, seq.
    pub fn sink_failed(&self, seq: u64, err: &dyn std::fmt::Display) {
        counter!("wecom_sink_errors_total", "stream" => self.stream()).increment(1);
        self.sink_ok.store(false, Ordering::Relaxed);
        error!(corp = %self.corp(), stream = %self.stream(), seq, error = %err, "sink write failed");
        self.set_error(seq, format!("sink: {err}"));
    }

    fn set_error(&self, seq: u64, message: String) {
        *lock(&self.last_error) = Some(LastError {
            message,
            seq,
            at: rfc3339_now(),
        });
    }

    /// Why this stream is not ready, if it is not.
    fn problems(&self) -> Vec<&'static str> {
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

    fn status(&self) -> StatusFile {
        let committed = self.committed.load(Ordering::Relaxed);
        StatusFile {
            stream: self.stream(),
            corp_id: self.corp().to_string(),
            newest_seq_seen: self.newest.load(Ordering::Relaxed).max(committed),
            committed_seq: committed,
            last_error: lock(&self.last_error).clone(),
            updated_at: rfc3339_now(),
        }
    }
}

/// `<stream dir>/status.json`, rewritten atomically by a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusFile {
    pub stream: String,
    pub corp_id: String,
    pub newest_seq_seen: u64,
    pub committed_seq: u64,
    pub last_error: Option<LastError>,
    pub updated_at: String,
}

pub const STATUS_FILE: &str = "status.json";

fn write_status(dir: &Path, status: &StatusFile) -> std::io::Result<()> {
    let tmp = dir.join(".status.json.tmp");
    let json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, dir.join(STATUS_FILE))
}

/// Probes of the running streams, by registration id.
type Registry = Mutex<Vec<(u64, Arc<Probe>)>>;
static REGISTRY: LazyLock<Registry> = LazyLock::new(Default::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Readiness of every running stream: `Ok` when all pass (and at least one runs), else the problems.
pub fn readiness() -> Result<(), Vec<String>> {
    let reg = lock(&REGISTRY);
    if reg.is_empty() {
        return Err(vec!["no stream is running".to_string()]);
    }
    let problems: Vec<String> = reg
        .iter()
        .flat_map(|(_, p)| {
            let s = p.stream();
            p.problems().into_iter().map(move |m| format!("{s}: {m}"))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Stops the watcher, takes a last sample and writes the final `status.json` when dropped.
pub struct WatchGuard {
    id: u64,
    probe: Arc<Probe>,
    client: ArchiveClient,
    dir: PathBuf,
    stop: CancellationToken,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        lock(&REGISTRY).retain(|(id, _)| *id != self.id);
        export_client_stats(&self.client);
        if let Err(e) = write_status(&self.dir, &self.probe.status()) {
            warn!(corp = %self.probe.corp(), stream = %self.probe.stream(), seq = self.probe.committed.load(Ordering::Relaxed), error = %e, "cannot write status.json");
        }
    }
}

/// Names the probe, registers it for `/ready`, and starts the once-a-second watcher.
#[allow(clippy::too_many_arguments)]
pub fn watch<T: Send + 'static>(
    cfg: &OpsConfig,
    corp_id: &str,
    stream: &str,
    dir: &Path,
    probe: Arc<Probe>,
    client: ArchiveClient,
    queue: mpsc::WeakSender<T>,
    queue_capacity: usize,
    start_seq: u64,
) -> WatchGuard {
    let _ = probe.corp_id.set(corp_id.to_string());
    let _ = probe.stream.set(stream.to_string());
    probe.committed.fetch_max(start_seq, Ordering::Relaxed);
    probe.newest.fetch_max(start_seq, Ordering::Relaxed);
    // The stream directory was opened and recovered before the run gets here.
    probe.sink_ok.store(true, Ordering::Relaxed);
    gauge!("wecom_committed_seq", "stream" => stream.to_string()).set(start_seq as f64);
    gauge!("wecom_stage_queue_capacity", "stream" => stream.to_string(), "stage" => "fetch_pages")
        .set(queue_capacity as f64);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock(&REGISTRY).push((id, probe.clone()));
    let stop = CancellationToken::new();
    tokio::spawn(watch_loop(
        probe.clone(),
        client.clone(),
        dir.to_path_buf(),
        queue,
        Duration::from_secs(cfg.stuck_after_secs.max(1)),
        stop.clone(),
    ));
    WatchGuard {
        id,
        probe,
        client,
        dir: dir.to_path_buf(),
        stop,
    }
}

async fn watch_loop<T>(
    probe: Arc<Probe>,
    client: ArchiveClient,
    dir: PathBuf,
    queue: mpsc::WeakSender<T>,
    stuck_after: Duration,
    stop: CancellationToken,
) {
    let s = probe.stream();
    let started = Instant::now();
    let mut sink_idle_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            () = stop.cancelled() => return,
        }
        export_client_stats(&client);
        export_process_stats();
        if let Some(tx) = queue.upgrade() {
            let depth = tx.max_capacity() - tx.capacity();
            drop(tx);
            gauge!("wecom_stage_queue_depth", "stream" => s.clone(), "stage" => "fetch_pages")
                .set(depth as f64);
        }
        let committed = probe.committed.load(Ordering::Relaxed);
        let newest = probe.newest.load(Ordering::Relaxed);
        gauge!("wecom_commit_lag_seqs", "stream" => s.clone())
            .set(newest.saturating_sub(committed) as f64);

        // The fetcher always has work (it polls when caught up): no completed call for too long is stuck.
        let last_fetch = lock(&probe.last_fetch).unwrap_or(started);
        let fetch_stuck = last_fetch.elapsed() >= stuck_after;
        // The sink has work when seqs were fetched past the cursor; stuck when none commits for too long.
        let sink_stuck = if newest > committed {
            let last_commit = lock(&probe.last_commit).unwrap_or(started);
            let since = *sink_idle_since.get_or_insert(Instant::now());
            since.max(last_commit).elapsed() >= stuck_after
        } else {
            sink_idle_since = None;
            false
        };
        for (stage, stuck, flag) in [
            ("fetch", fetch_stuck, &probe.fetch_stuck),
            ("sink", sink_stuck, &probe.sink_stuck),
        ] {
            let was = flag.swap(stuck, Ordering::Relaxed);
            gauge!("wecom_stage_stuck", "stream" => s.clone(), "stage" => stage).set(if stuck {
                1.0
            } else {
                0.0
            });
            if stuck && !was {
                error!(corp = %probe.corp(), stream = %s, seq = committed, stage, stuck_after_secs = stuck_after.as_secs(), "stage stuck: pending work and no progress; /ready now fails");
            } else if was && !stuck {
                info!(corp = %probe.corp(), stream = %s, seq = committed, stage, "stage progressing again");
            }
        }
        let ready = probe.problems().is_empty();
        gauge!("wecom_ready", "stream" => s.clone()).set(if ready { 1.0 } else { 0.0 });
        let status = probe.status();
        let dir = dir.clone();
        let written = tokio::task::spawn_blocking(move || write_status(&dir, &status)).await;
        if let Ok(Err(e)) = written {
            warn!(corp = %probe.corp(), stream = %s, seq = committed, error = %e, "cannot write status.json");
        }
        if let Some(h) = HANDLE.get() {
            h.run_upkeep();
        }
    }
}

/// Copies the client's cumulative counters into the metrics (absolute values: the client counts).
pub fn export_client_stats(client: &ArchiveClient) {
    let st = client.stats();
    for (endpoint, n) in &st.calls {
        counter!("wecom_api_calls_total", "endpoint" => *endpoint).absolute(*n);
    }
    for (errcode, n) in &st.api_errors {
        counter!("wecom_api_errors_total", "errcode" => errcode.to_string()).absolute(*n);
    }
    for (status, n) in &st.http_errors {
        counter!("wecom_api_http_errors_total", "status" => status.to_string()).absolute(*n);
    }
    counter!("wecom_api_transport_errors_total").absolute(st.transport_errors);
    counter!("wecom_api_decode_errors_total").absolute(st.decode_errors);
    for (endpoint, n) in &st.retries {
        counter!("wecom_api_retries_total", "endpoint" => *endpoint).absolute(*n);
    }
    counter!("wecom_api_token_refreshes_total").absolute(st.token_refreshes);
}

/// `process_resident_memory_bytes` from `/proc/self/status` (Linux; a no-op elsewhere).
pub fn export_process_stats() {
    if let Some(bytes) = rss_bytes() {
        gauge!("process_resident_memory_bytes").set(bytes as f64);
    }
}

fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Starts the `/metrics`, `/health`, `/ready` server on `listen` until `shutdown`; returns the bound address.
pub async fn serve(listen: SocketAddr, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;

    let handle = install_recorder();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    export_process_stats();
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/ready",
            get(|| async {
                match readiness() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
                    Err(problems) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::CONTENT_TYPE, "application/json")],
                        serde_json::json!({ "ready": false, "problems": problems }).to_string(),
                    )
                        .into_response(),
                }
            }),
        );
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "ops server stopped with an error");
        }
    });
    info!(%addr, "ops server listening (/metrics, /health, /ready)");
    Ok(addr)
}

/// One stream's line of `wecom-archive status` (field names are stable: scripts read `--json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamStatus {
    pub stream: String,
    pub dir: PathBuf,
    pub committed_seq: u64,
    pub newest_seq_known: u64,
    pub lag: u64,
    pub dead_letters: u64,
    pub dead_letters_resolved: u64,
    pub last_error: Option<LastError>,
    pub updated_at: Option<String>,
}

/// `wecom-archive status --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub corp_id: String,
    pub streams: Vec<StreamStatus>,
}

/// Reads every stream directory under `<data_dir>/<corp_id>/` (the corp stream, room streams, replays):
/// cursor files, `status.json`, dead letters. Read-only; safe while a run is writing.
pub fn collect_status(data_dir: &Path, corp_id: &str) -> std::io::Result<StatusReport> {
    let root = data_dir.join(corp_id);
    let mut streams = Vec::new();
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    dirs.sort();
    for dir in dirs {
        let status: Option<StatusFile> = std::fs::read(dir.join(STATUS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut cursors: BTreeMap<String, u64> = BTreeMap::new();
        for e in std::fs::read_dir(&dir)?.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".cursor.json") && !name.starts_with('.') {
                let v: Option<serde_json::Value> = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                if let Some(v) = v {
                    if let (Some(s), Some(seq)) = (v["stream"].as_str(), v["seq"].as_u64()) {
                        cursors.insert(s.to_string(), seq);
                    }
                }
            }
        }
        if status.is_none() && cursors.is_empty() {
            continue; // not a stream directory (or never committed)
        }
        let (dead, resolved) = dead_letter_counts(&dir.join("deadletter"));
        let mut names: BTreeSet<String> = cursors.keys().cloned().collect();
        if let Some(st) = &status {
            names.insert(st.stream.clone());
        }
        for name in names {
            let committed = cursors.get(&name).copied().unwrap_or(0);
            let own = status.as_ref().filter(|s| s.stream == name);
            let newest = own.map_or(0, |s| s.newest_seq_seen).max(committed);
            streams.push(StreamStatus {
                stream: name,
                dir: dir.clone(),
                committed_seq: committed,
                newest_seq_known: newest,
                lag: newest - committed,
                dead_letters: dead,
                dead_letters_resolved: resolved,
                last_error: own.and_then(|s| s.last_error.clone()),
                updated_at: own.map(|s| s.updated_at.clone()),
            });
        }
    }
    Ok(StatusReport {
        corp_id: corp_id.to_string(),
        streams,
    })
}

/// (unresolved dead-lettered seqs, resolved ones) of a `deadletter/` directory.
fn dead_letter_counts(dir: &Path) -> (u64, u64) {
    if !dir.is_dir() {
        return (0, 0);
    }
    let seq_of = |line: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["seq"].as_u64())
    };
    let mut dead = BTreeSet::new();
    if let Ok(lines) = wecom_store::read_lines(dir) {
        for line in lines.flatten() {
            if let Some(s) = seq_of(&line) {
                dead.insert(s);
            }
        }
    }
    let mut resolved = BTreeSet::new();
    if let Ok(text) = std::fs::read(dir.join("resolved.ndjson")) {
        for line in text.split(|b| *b == b'\n') {
            if let Some(s) = seq_of(line) {
                resolved.insert(s);
            }
        }
    }
    let open = dead.difference(&resolved).count() as u64;
    (open, resolved.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stage_without_progress_fails_readiness_and_recovers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let client = ArchiveClient::new(wecom_api::ClientConfig::new(
            "http://127.0.0.1:9".to_string(),
            "wwtest".to_string(),
            wecom_api::Secret::new("x".to_string()),
        ))
        .expect("client");
        let (tx, _rx) = mpsc::channel::<()>(2);
        let probe = Arc::new(Probe::default());
        let cfg = OpsConfig {
            listen: None,
            stuck_after_secs: 1,
        };
        let guard = watch(
            &cfg,
            "wwtest",
            "corp",
            tmp.path(),
            probe.clone(),
            client,
            tx.downgrade(),
            2,
            10,
        );
        // No fetch has completed yet: no token, and after a second the fetch stage counts as stuck.
        assert!(probe.problems().contains(&"no access token yet"));
        tokio::time::sleep(Duration::from_millis(2600)).await;
        assert!(
            probe.problems().contains(&"fetch stage stuck"),
            "{:?}",
            probe.problems()
        );
        assert!(readiness().is_err());
        // Progress clears it.
        probe.fetched(5, 0, 15);
        probe.committed(15, Acked::default());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(probe.problems().is_empty(), "{:?}", probe.problems());
        let status: StatusFile =
            serde_json::from_slice(&std::fs::read(tmp.path().join(STATUS_FILE)).expect("status"))
                .expect("status json");
        assert_eq!((status.committed_seq, status.newest_seq_seen), (15, 15));
        drop(guard);
        let report =
            collect_status(tmp.path().parent().expect("parent"), "nonexistent").expect("collect");
        assert!(report.streams.is_empty());
    }
}
