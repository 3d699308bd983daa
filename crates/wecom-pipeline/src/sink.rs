//! The sink stage: writes each decrypted page to every configured output, and only once every output has
//! acknowledged it (fsync, broker ack) commits the page's last seq to the cursor. It runs as its own task
//! behind a one-page channel, so decrypting the next page overlaps with writing this one while memory
//! stays bounded by that one page. Each page gets its records' consent first (consent.rs), here because
//! the status an agree / disagree message sets must reach the records after it in seq order.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::consent::ConsentStage;
use crate::decrypt::DecryptedPage;
use crate::error::PipelineError;
use crate::ops::{Acked, Probe};
use crate::outputs::Outputs;

/// Writes and commits every page from `pages` in order. On a failure it cancels `stop` (nothing after the
/// failed page may be committed: the fetcher and the decrypt stage stop) and returns the error.
pub(crate) async fn sink_pages(
    mut pages: mpsc::Receiver<DecryptedPage>,
    mut outputs: Outputs,
    mut consent: Option<ConsentStage>,
    probe: Arc<Probe>,
    stop: CancellationToken,
) -> Result<(), PipelineError> {
    while let Some(page) = pages.recv().await {
        let DecryptedPage {
            mut lines,
            cursor_after,
        } = page;
        if let Some(c) = &mut consent {
            if let Err(e) = c.enrich(&mut lines).await {
                probe.sink_failed(cursor_after, &e);
                stop.cancel();
                return Err(e);
            }
        }
        let acked = Acked::of(&lines);
        log_dead_letters(&probe, &lines);
        match outputs.write_page(lines, cursor_after).await {
            Ok(outcome) => {
                probe.committed(cursor_after, outcome, acked);
                debug!(corp = %probe.corp(), stream = %probe.stream(), seq = cursor_after, "committed");
            }
            Err(e) => {
                probe.sink_failed(cursor_after, &e);
                stop.cancel();
                return Err(e);
            }
        }
    }
    Ok(())
}

/// One WARN line per page with dead letters: how many, by reason, and their seq range (every item is in
/// the dead-letter output, and at DEBUG here).
fn log_dead_letters(probe: &Probe, lines: &[crate::process::Processed]) {
    let mut by_reason: std::collections::BTreeMap<String, u64> = Default::default();
    let (mut first, mut last) = (u64::MAX, 0);
    for p in lines {
        let Some(reason) = &p.dead else { continue };
        debug!(corp = %probe.corp(), stream = %probe.stream(), seq = p.line.seq, reason = ?reason, "item dead-lettered");
        *by_reason.entry(format!("{reason:?}")).or_default() += 1;
        first = first.min(p.line.seq);
        last = last.max(p.line.seq);
    }
    if by_reason.is_empty() {
        return;
    }
    let count: u64 = by_reason.values().sum();
    let reasons: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r}={n}")).collect();
    warn!(corp = %probe.corp(), stream = %probe.stream(), count, reasons = %reasons.join(" "), first_seq = first, last_seq = last, "items dead-lettered in a page (see the dead-letter output)");
}
