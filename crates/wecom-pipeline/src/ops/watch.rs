//! The once-a-second watcher of a run: samples the probe, the API client, the page channel and the
//! process into metrics, decides whether a stage is stuck (logged once at ERROR, `/ready` fails), and
//! rewrites the stream's `status.json`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use wecom_api::ArchiveClient;
use wecom_store::StreamLayout;

use super::probe::{deregister, lock, register};
use super::{OpsConfig, Probe, ProbeCounts, StatusFile, HANDLE};

/// Stops the watcher, takes a last sample and writes the final `status.json` when dropped.
pub struct WatchGuard {
    id: u64,
    probe: Arc<Probe>,
    client: ArchiveClient,
    status_path: PathBuf,
    stop: CancellationToken,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        deregister(self.id);
        export_client_stats(&self.client);
        if let Err(e) = write_status(&self.status_path, &self.probe.status()) {
            warn!(corp = %self.probe.corp(), stream = %self.probe.stream(), seq = self.probe.committed.load(Ordering::Relaxed), error = %wecom_model::error_chain(&e), "cannot write status.json");
        }
    }
}

/// Registers the probe for `/ready` and starts the once-a-second watcher of the run writing `layout`.
pub fn watch<T: Send + 'static>(
    cfg: &OpsConfig,
    layout: &StreamLayout,
    probe: Arc<Probe>,
    client: ArchiveClient,
    queue: mpsc::WeakSender<T>,
    queue_capacity: usize,
) -> WatchGuard {
    let stream = probe.stream().to_string();
    let corp = probe.corp().to_string();
    gauge!("wecom_committed_seq", "corp" => corp.clone(), "stream" => stream.clone())
        .set(probe.committed.load(Ordering::Relaxed) as f64);
    gauge!("wecom_stage_queue_capacity", "corp" => corp, "stream" => stream, "stage" => "fetch_pages")
        .set(queue_capacity as f64);
    let id = register(probe.clone());
    let stop = CancellationToken::new();
    let status_path = layout.status_path();
    tokio::spawn(watch_loop(
        probe.clone(),
        client.clone(),
        status_path.clone(),
        queue,
        Duration::from_secs(cfg.stuck_after_secs.max(1)),
        (cfg.log_every_secs > 0).then(|| Duration::from_secs(cfg.log_every_secs)),
        stop.clone(),
    ));
    WatchGuard {
        id,
        probe,
        client,
        status_path,
        stop,
    }
}

async fn watch_loop<T>(
    probe: Arc<Probe>,
    client: ArchiveClient,
    status_path: PathBuf,
    queue: mpsc::WeakSender<T>,
    stuck_after: Duration,
    log_every: Option<Duration>,
    stop: CancellationToken,
) {
    let s = probe.stream().to_string();
    let c = probe.corp().to_string();
    let started = Instant::now();
    let mut log = log_every.map(|every| ProgressLog::new(every, &probe, &client));
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
            gauge!("wecom_stage_queue_depth", "corp" => c.clone(), "stream" => s.clone(), "stage" => "fetch_pages")
                .set(depth as f64);
        }
        let committed = probe.committed.load(Ordering::Relaxed);
        let newest = probe.newest.load(Ordering::Relaxed);
        gauge!("wecom_commit_lag_seqs", "corp" => c.clone(), "stream" => s.clone())
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
            gauge!("wecom_stage_stuck", "corp" => c.clone(), "stream" => s.clone(), "stage" => stage).set(if stuck {
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
        if let Some(l) = log.as_mut() {
            l.maybe_log(&probe, &client);
        }
        let ready = probe.problems().is_empty();
        gauge!("wecom_ready", "corp" => c.clone(), "stream" => s.clone()).set(if ready {
            1.0
        } else {
            0.0
        });
        let status = probe.status();
        let path = status_path.clone();
        let written = tokio::task::spawn_blocking(move || write_status(&path, &status)).await;
        if let Ok(Err(e)) = written {
            warn!(corp = %probe.corp(), stream = %s, seq = committed, error = %wecom_model::error_chain(&e), "cannot write status.json");
        }
        if let Some(h) = HANDLE.get() {
            h.run_upkeep();
        }
    }
}

/// Rewritten every second and read by `status`: atomic, but not worth an fsync.
fn write_status(
    path: &std::path::Path,
    status: &StatusFile,
) -> Result<(), wecom_store::StoreError> {
    let json = serde_json::to_vec_pretty(status).unwrap_or_default();
    wecom_store::atomic_write(path, &json, false)
}

/// Copies the client's cumulative counters into the metrics (absolute values: the client counts).
pub fn export_client_stats(client: &ArchiveClient) {
    let st = client.stats();
    let c = client.corp_id().to_string();
    for (endpoint, n) in &st.calls {
        counter!("wecom_api_calls_total", "corp" => c.clone(), "endpoint" => *endpoint)
            .absolute(*n);
    }
    for (errcode, n) in &st.api_errors {
        counter!("wecom_api_errors_total", "corp" => c.clone(), "errcode" => errcode.to_string())
            .absolute(*n);
    }
    for (status, n) in &st.http_errors {
        counter!("wecom_api_http_errors_total", "corp" => c.clone(), "status" => status.to_string()).absolute(*n);
    }
    counter!("wecom_api_transport_errors_total", "corp" => c.clone()).absolute(st.transport_errors);
    counter!("wecom_api_decode_errors_total", "corp" => c.clone()).absolute(st.decode_errors);
    for (endpoint, n) in &st.retries {
        counter!("wecom_api_retries_total", "corp" => c.clone(), "endpoint" => *endpoint)
            .absolute(*n);
    }
    counter!("wecom_api_token_refreshes_total", "corp" => c.clone()).absolute(st.token_refreshes);
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

/// The periodic INFO lines that say how a stream is doing without a terminal: progress, and the retried
/// faults of the interval summed by kind (each one is logged at DEBUG only).
struct ProgressLog {
    every: Duration,
    last_at: Instant,
    last: ProbeCounts,
    last_events: wecom_api::EventCounts,
}

impl ProgressLog {
    fn new(every: Duration, probe: &Probe, client: &ArchiveClient) -> Self {
        Self {
            every,
            last_at: Instant::now(),
            last: probe.counts(),
            last_events: client.events(),
        }
    }

    fn maybe_log(&mut self, probe: &Probe, client: &ArchiveClient) {
        let secs = self.last_at.elapsed().as_secs_f64();
        if secs < self.every.as_secs_f64() {
            return;
        }
        let c = probe.counts();
        let items = c.done().saturating_sub(self.last.done());
        info!(
            corp = %probe.corp(),
            stream = %probe.stream(),
            items,
            items_per_sec = format!("{:.0}", items as f64 / secs).as_str(),
            committed_seq = c.committed,
            lag_seqs = c.newest.saturating_sub(c.committed),
            dead_letters = c.dead_letters.saturating_sub(self.last.dead_letters),
            caught_up = c.caught_up,
            "progress"
        );
        let events = client.events();
        let new = events.since(&self.last_events);
        if !new.is_empty() {
            info!(corp = %probe.corp(), stream = %probe.stream(), interval_secs = secs.round() as u64, events = %new, "archive service: handled in the interval");
        }
        self.last_at = Instant::now();
        self.last = c;
        self.last_events = events;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{collect_status, readiness, Acked};
    use crate::outputs::PageOutcome;

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
        let probe = Arc::new(Probe::new("wwtest", "corp", 10));
        let cfg = OpsConfig {
            listen: None,
            stuck_after_secs: 1,
            log_every_secs: 0,
        };
        let layout = StreamLayout::at(tmp.path(), "corp");
        let guard = watch(&cfg, &layout, probe.clone(), client, tx.downgrade(), 2);
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
        probe.page_fetched(5, 0, 15);
        probe.committed(15, PageOutcome::default(), Acked::default());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(probe.problems().is_empty(), "{:?}", probe.problems());
        let status: StatusFile =
            serde_json::from_slice(&std::fs::read(layout.status_path()).expect("status"))
                .expect("status json");
        assert_eq!((status.committed_seq, status.newest_seq_seen), (15, 15));
        drop(guard);
        let report =
            collect_status(tmp.path().parent().expect("parent"), "nonexistent").expect("collect");
        assert!(report.streams.is_empty());
    }
}
