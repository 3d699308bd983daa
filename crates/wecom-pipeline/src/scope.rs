//! What distinguishes one run from another of the same stages: where it writes, where it stops, what it
//! keeps, and what the fetcher does with each page besides handing it on (the raw archive, the retention
//! check). The live run has the default scope plus the raw archive ([`Scope::live`]); replays build theirs
//! in `replay.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::warn;
use wecom_model::api::ChatDataItem;

use crate::config::Validated;
use crate::error::PipelineError;
use crate::ops::Probe;
use crate::process::Processed;
use wecom_ledger::Ledger;

/// A first served seq this far past the requested one means the source skipped history: the requested seq
/// is older than its retention window. (Real gaps between seqs are small; the simulator's are at most 5.)
pub const RETENTION_GAP_SEQS: u64 = 64;

/// Decides which processed items a scoped run writes (the roomid filter, msgid de-duplication).
pub(crate) type Keep = Arc<dyn Fn(&Processed) -> bool + Send + Sync>;

/// The probes of the runs of one replay (its progress line sums them).
pub(crate) type ProbeList = Arc<Mutex<Vec<Arc<Probe>>>>;

/// What makes a run a replay, or the live run ([`Scope::live`]).
#[derive(Clone, Default)]
pub(crate) struct Scope {
    /// The stream directory; default: the live one.
    pub dir: Option<PathBuf>,
    /// The walk ends once the cursor reaches this seq; items past it are not written.
    pub stop_after_seq: Option<u64>,
    /// Raw archive written by the fetcher (live runs).
    pub archive_writer: Option<Ledger>,
    /// Pages come from the raw archive instead of the service.
    pub from_archive: Option<Ledger>,
    /// Items for which this returns false are not written (their seqs are still committed past).
    pub keep: Option<Keep>,
    pub retention: Option<Arc<RetentionCheck>>,
    /// Where the run registers its probe (a replay's progress line).
    pub probes: Option<ProbeList>,
    /// Notified once the outputs are recovered (see [`crate::run::run_notifying`]).
    pub recovered: Option<Arc<tokio::sync::Notify>>,
    /// Cluster mode: the stream's ownership (cursor in the cursor topic, fenced publishes).
    pub owner: Option<Arc<crate::cluster::Ownership>>,
}

impl Scope {
    /// The live run's scope: its own directory, no bounds, the raw archive when enabled.
    pub fn live(cfg: &Validated) -> Result<Self, PipelineError> {
        let archive_writer = if cfg.archive.enabled {
            Some(
                Ledger::open(&cfg.archive, &cfg.data_dir, &cfg.corp_id)
                    .map_err(|e| PipelineError::archive(&cfg.corp_id, e))?,
            )
        } else {
            None
        };
        Ok(Scope {
            archive_writer,
            ..Scope::default()
        })
    }

    /// Called by the fetcher with each new page before it goes to the decrypt stage: checks the first page
    /// against retention, writes the raw archive.
    pub(crate) async fn page_fetched(
        &self,
        corp_id: &str,
        stream: &str,
        items: &[ChatDataItem],
    ) -> Result<(), PipelineError> {
        let Some(first) = items.first() else {
            return Ok(());
        };
        if let Some(r) = &self.retention {
            r.observe(corp_id, stream, first.seq);
        }
        if let Some(a) = &self.archive_writer {
            a.write_page(stream, items)
                .await
                .map_err(|e| PipelineError::archive(corp_id, e))?;
        }
        Ok(())
    }

    /// Drops items past the stop seq; true when the stop seq is reached (the walk ends after this page).
    pub(crate) fn clip(&self, items: &mut Vec<ChatDataItem>) -> bool {
        let Some(stop) = self.stop_after_seq else {
            return false;
        };
        let before = items.len();
        items.retain(|i| i.seq <= stop);
        items.len() < before || items.last().is_some_and(|i| i.seq >= stop)
    }
}

/// Watches the first page of a replay from the service for the sign of a seq older than retention.
#[derive(Debug, Default)]
pub struct RetentionCheck {
    /// The seq the walk started after.
    pub after_seq: u64,
    first_served: AtomicU64,
    warned: AtomicBool,
}

impl RetentionCheck {
    /// A check of a walk that starts after `after_seq`.
    pub fn new(after_seq: u64) -> Self {
        Self {
            after_seq,
            ..Self::default()
        }
    }

    pub(crate) fn observe(&self, corp_id: &str, stream: &str, first_seq: u64) {
        if self
            .first_served
            .compare_exchange(0, first_seq, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        if first_seq > self.after_seq.saturating_add(RETENTION_GAP_SEQS) {
            self.warned.store(true, Ordering::SeqCst);
            warn!(corp = %corp_id, stream = %stream, requested_from = self.after_seq + 1, first_served = first_seq,
                "{}", self.message(first_seq));
        }
    }

    fn message(&self, first_seq: u64) -> String {
        format!(
            "the source served nothing from seq {} to seq {}: that history is older than the source's retention \
             window (5 days) and the service silently started later; replay it from the raw archive with --from-archive",
            self.after_seq + 1,
            first_seq - 1
        )
    }

    pub(crate) fn first_served(&self) -> Option<u64> {
        Some(self.first_served.load(Ordering::SeqCst)).filter(|s| *s > 0)
    }

    pub(crate) fn warning(&self) -> Option<String> {
        let first = self.first_served()?;
        self.warned
            .load(Ordering::SeqCst)
            .then(|| self.message(first))
    }
}
