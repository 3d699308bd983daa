//! Running it like a service: Prometheus metrics, `/health` and `/ready`, stuck-stage detection, and the
//! per-stream `status.json` that `wecom-archive status` reads. The metric names, types and labels are
//! documented in `docs/metrics.md`; keep the two in step.
//!
//! - [`Probe`] (`probe.rs`): what a run's stages report, one hook per event — the counters behind the
//!   summary and the progress line, and the metrics.
//! - [`watch`] (`watch.rs`): a task per run that once a second samples the probe, the API client, the page
//!   channel and the process into metrics, decides whether a stage is stuck, and rewrites `status.json`.
//! - [`serve`] (`server.rs`): the HTTP server the binary starts when `[ops] listen` is set.
//! - [`collect_status`] (`status.rs`): what `wecom-archive status` reads back from a data directory.

use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tracing::warn;

mod probe;
mod server;
mod status;
mod watch;

pub use probe::{readiness, Acked, LastError, Probe, ProbeCounts};
pub use server::serve;
pub use status::{collect_status, StatusFile, StatusReport, StreamStatus};
pub use watch::{export_client_stats, export_process_stats, watch, WatchGuard};

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

fn rfc3339_now() -> String {
    wecom_model::record::format_msgtime(wecom_store::now_unix_ms()).unwrap_or_default()
}
