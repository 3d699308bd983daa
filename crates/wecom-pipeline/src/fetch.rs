//! The fetch stage: one loop that walks a stream by seq over a page source — the archive service (live
//! runs and replays) or the raw archive (replays of history older than the service's retention) — and
//! hands pages of new items, ascending and each seq once, to the decrypt stage over a bounded channel.
//!
//! Each call asks for the items after the largest seq seen so far (never `max + 1`). Items at or below it
//! (a page that repeats earlier items) and repeated seqs within a page are dropped, so no seq is delivered
//! twice; a fault is retried (inside the client, then here after the poll interval), so none is skipped.
//!
//! Once caught up, a live loop sleeps the poll interval or until a verified `msgaudit_notify` callback
//! wakes it (`notify.rs`), whichever comes first. An outage pause is never cut short by a callback.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wecom_api::{ApiError, ArchiveClient, ErrorClass};
use wecom_model::api::ChatDataItem;

use crate::error::PipelineError;
use crate::ops::Probe;
use crate::scope::Scope;
use crate::stream::StreamSel;
use futures::stream::BoxStream;
use futures::StreamExt;
use wecom_ledger::{ArchivedPage, Ledger, LedgerError};

/// A page of new items, ascending by seq, and the seq the cursor may move to once they are all written.
pub(crate) struct Page {
    pub(crate) items: Vec<ChatDataItem>,
    pub(crate) cursor_after: u64,
}

/// Where pages come from.
pub(crate) enum PageSource {
    /// The archive service (the simulator, a gateway, the in-process SDK gateway), by seq.
    Service {
        client: ArchiveClient,
        stream: StreamSel,
        limit: u32,
    },
    /// The raw archive's segments, in seq order, each checked against its manifest entry; never calls the
    /// service.
    Archive {
        ledger: Ledger,
        /// Opened on the first call, after the seq the walk starts from.
        pages: Option<BoxStream<'static, Result<ArchivedPage, LedgerError>>>,
    },
}

/// Why a page could not be had.
enum SourceError {
    /// An outage that outlasted the client's retries: wait the poll interval and ask again.
    Transient(ApiError),
    /// Stop the run.
    Fatal(PipelineError),
}

impl PageSource {
    pub(crate) fn archive(ledger: Ledger) -> Self {
        PageSource::Archive {
            ledger,
            pages: None,
        }
    }

    /// A live source keeps being asked once caught up (`follow`); the archive ends at its last segment.
    fn is_live(&self) -> bool {
        matches!(self, PageSource::Service { .. })
    }

    /// The items after `after` (`Ok(None)`: the source is exhausted).
    async fn next(
        &mut self,
        after: u64,
        corp_id: &str,
        stream: &str,
    ) -> Result<Option<Vec<ChatDataItem>>, SourceError> {
        match self {
            PageSource::Service {
                client,
                stream: sel,
                limit,
            } => {
                let got = match sel {
                    StreamSel::Corp => client.get_chat_data(after, *limit).await,
                    StreamSel::Room(r) => client.room_items(r, after, *limit).await,
                };
                match got {
                    Ok(items) => Ok(Some(items)),
                    Err(e) if e.class() != ErrorClass::Fatal => Err(SourceError::Transient(e)),
                    Err(source) => Err(SourceError::Fatal(PipelineError::Fetch {
                        corp_id: corp_id.to_string(),
                        stream: stream.to_string(),
                        seq: after,
                        source: Box::new(source),
                    })),
                }
            }
            PageSource::Archive { ledger, pages } => {
                let pages = pages.get_or_insert_with(|| {
                    info!(corp = %corp_id, stream = %stream, after_seq = after, "replaying from the raw archive");
                    ledger.pages(stream, after)
                });
                match pages.next().await {
                    Some(Ok(page)) => Ok(Some(page.items)),
                    Some(Err(e)) => Err(SourceError::Fatal(PipelineError::archive(corp_id, e))),
                    None => Ok(None),
                }
            }
        }
    }
}

/// Everything the fetch loop needs besides its source.
pub(crate) struct FetchParams {
    pub corp_id: String,
    pub stream: String,
    /// The committed seq the walk starts after.
    pub after_seq: u64,
    /// Keep asking once caught up (live tail); otherwise end at the first empty page.
    pub follow: bool,
    pub poll: Duration,
    pub scope: Scope,
    pub probe: Arc<Probe>,
    pub shutdown: CancellationToken,
}

/// Walks `source` from `p.after_seq` and sends pages until caught up (`follow = false`), the scope's stop
/// seq, the end of a finite source, or `shutdown`.
pub(crate) async fn fetch_loop(
    mut source: PageSource,
    p: FetchParams,
    tx: mpsc::Sender<Page>,
) -> Result<(), PipelineError> {
    let FetchParams {
        corp_id,
        stream,
        after_seq,
        follow,
        poll,
        scope,
        probe,
        shutdown,
    } = p;
    let mut last = after_seq;
    let mut wake = crate::notify::subscribe();
    // An outage (or a raw archive write that failed) is waited out without moving the cursor.
    let outage_pause = poll.max(Duration::from_secs(1));
    loop {
        if shutdown.is_cancelled() || scope.stop_after_seq.is_some_and(|s| last >= s) {
            break;
        }
        // A callback from here on (even during this fetch) cuts the next caught-up sleep short.
        wake.borrow_and_update();
        let got = tokio::select! {
            r = source.next(last, &corp_id, &stream) => r,
            () = shutdown.cancelled() => return Ok(()),
        };
        let items = match got {
            Ok(Some(items)) => items,
            Ok(None) => break,
            Err(SourceError::Transient(e)) => {
                probe.fetch_failed(last, &e);
                warn!(corp = %corp_id, stream = %stream, seq = last, error = %wecom_model::error_chain(&e), "fetch failed; retrying after the poll interval");
                if sleep_or_stop(outage_pause, &shutdown).await {
                    return Ok(());
                }
                continue;
            }
            Err(SourceError::Fatal(e)) => {
                probe.fetch_failed(last, &e);
                return Err(e);
            }
        };
        let mut page = dedupe(items, last);
        // Raw archive before the page moves on, so the archive is never behind the cursor; a failed
        // write is retried like a fetch outage (the same page is asked for again).
        if let Err(e) = scope.page_fetched(&corp_id, &stream, &page.items).await {
            warn!(corp = %corp_id, stream = %stream, seq = last, error = %wecom_model::error_chain(&e), "raw archive write failed; retrying after the poll interval");
            if sleep_or_stop(outage_pause, &shutdown).await {
                return Ok(());
            }
            continue;
        }
        let reached_stop = scope.clip(&mut page.items);
        if reached_stop && page.items.is_empty() {
            break;
        }
        if page.items.is_empty() && !source.is_live() {
            continue; // a segment that overlaps what was already walked
        }
        let cursor_after = page.items.last().map_or(last, |i| i.seq);
        probe.page_fetched(page.items.len(), page.dropped, cursor_after);
        if page.items.is_empty() {
            if !follow {
                info!(corp = %corp_id, stream = %stream, seq = last, "caught up");
                return Ok(());
            }
            if poll_wait(poll, &mut wake, &shutdown).await {
                return Ok(());
            }
            continue;
        }
        last = cursor_after;
        let page = Page {
            items: page.items,
            cursor_after,
        };
        tokio::select! {
            r = tx.send(page) => if r.is_err() { return Ok(()) },
            () = shutdown.cancelled() => return Ok(()),
        }
        if reached_stop {
            break;
        }
    }
    // A finite source (the raw archive) walked to its end, or the walk reached its stop seq.
    probe.caught_up();
    Ok(())
}

/// Sleeps `d`; true when `shutdown` came first.
async fn sleep_or_stop(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = shutdown.cancelled() => true,
    }
}

/// The caught-up wait: `d`, or until a callback wakes the fetchers; true when `shutdown` came first.
async fn poll_wait(
    d: Duration,
    wake: &mut tokio::sync::watch::Receiver<u64>,
    shutdown: &CancellationToken,
) -> bool {
    let woken = async {
        // The sender lives in a static and is never dropped; were it gone, only the poll would remain.
        if wake.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = woken => false,
        () = shutdown.cancelled() => true,
    }
}

pub(crate) struct Deduped {
    pub items: Vec<ChatDataItem>,
    pub dropped: usize,
}

/// Keeps the items with seq > `after`, ascending, each seq once (first occurrence wins).
pub(crate) fn dedupe(mut items: Vec<ChatDataItem>, after: u64) -> Deduped {
    let before = items.len();
    items.retain(|i| i.seq > after);
    items.sort_by_key(|i| i.seq);
    let mut seen = BTreeSet::new();
    items.retain(|i| seen.insert(i.seq));
    Deduped {
        dropped: before - items.len(),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: u64) -> ChatDataItem {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "msgid": format!("m{seq}"), "publickey_ver": 1,
            "encrypt_random_key": "", "encrypt_chat_msg": ""
        }))
        .expect("item json")
    }

    #[test]
    fn dedupe_drops_repeats_and_items_at_or_below_the_cursor() {
        let page = vec![item(9), item(10), item(12), item(11), item(12), item(14)];
        let d = dedupe(page, 10);
        let seqs: Vec<u64> = d.items.iter().map(|i| i.seq).collect();
        assert_eq!(seqs, vec![11, 12, 14]);
        assert_eq!(d.dropped, 3);
    }
}
