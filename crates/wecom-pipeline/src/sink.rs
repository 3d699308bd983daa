//! The sink stage: writes each decrypted page to every configured output, and only once every output has
//! acknowledged it (fsync, broker ack) commits the page's last seq to the cursor. It runs as its own task
//! behind a one-page channel, so decrypting the next page overlaps with writing this one while memory
//! stays bounded by that one page.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::decrypt::DecryptedPage;
use crate::error::PipelineError;
use crate::ops::{Acked, Probe};
use crate::outputs::Outputs;

/// Writes and commits every page from `pages` in order. On a failure it cancels `stop` (nothing after the
/// failed page may be committed: the fetcher and the decrypt stage stop) and returns the error.
pub(crate) async fn sink_pages(
    mut pages: mpsc::Receiver<DecryptedPage>,
    mut outputs: Outputs,
    probe: Arc<Probe>,
    stop: CancellationToken,
) -> Result<(), PipelineError> {
    while let Some(page) = pages.recv().await {
        let DecryptedPage {
            lines,
            cursor_after,
        } = page;
        let acked = Acked::of(&lines);
        for p in lines.iter().filter(|p| p.dead.is_some()) {
            warn!(corp = %probe.corp(), stream = %probe.stream(), seq = p.line.seq, reason = ?p.dead, "item dead-lettered");
        }
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
