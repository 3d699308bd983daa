//! The decrypt stage: pages are cut into chunks, at most `workers` chunks are decrypted and normalized at
//! once on blocking threads (the RSA unwrap is the pipeline's physical limit and never runs on the async
//! reactor; a chunk is one cipher call, see [`Processor::process_chunk`]), and the results come back in seq
//! order, reassembled into pages for the sink stage. A chunk that fails (its cipher kept failing
//! transiently) ends the stage: the pages before it are still written and committed, nothing after.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use wecom_model::api::ChatDataItem;

use crate::error::PipelineError;
use crate::fetch::Page;
use crate::ops::Probe;
use crate::process::{Processed, Processor};
use crate::scope::Keep;

/// A page's output lines, in seq order, and the seq the cursor moves to once they are all written.
pub(crate) struct DecryptedPage {
    pub lines: Vec<Processed>,
    pub cursor_after: u64,
}

pub(crate) struct DecryptParams {
    pub processor: Processor,
    /// Items for which this returns false are not handed on (their seqs are still committed past).
    pub keep: Option<Keep>,
    /// Items per blocking job.
    pub chunk: usize,
    /// Jobs decrypting at once.
    pub workers: usize,
    pub probe: Arc<Probe>,
}

/// Decrypts every page from `pages` and sends it on to `out`; ends when `pages` closes or `out` does.
pub(crate) async fn decrypt_pages(
    pages: mpsc::Receiver<Page>,
    p: DecryptParams,
    out: mpsc::Sender<DecryptedPage>,
) -> Result<(), PipelineError> {
    let DecryptParams {
        processor,
        keep,
        chunk,
        workers,
        probe,
    } = p;
    let (corp_id, stream) = (processor.corp_id.clone(), processor.stream.clone());
    // Cut pages into chunks; a chunk carrying `Some(cursor_after)` closes its page.
    let chunks = receiver_stream(pages).flat_map(move |page| {
        let mut chunks: Vec<(Vec<ChatDataItem>, Option<u64>)> = Vec::new();
        let mut items = page.items.into_iter().peekable();
        if items.peek().is_none() {
            chunks.push((Vec::new(), Some(page.cursor_after)));
        }
        while items.peek().is_some() {
            let c: Vec<ChatDataItem> = items.by_ref().take(chunk).collect();
            let end = items.peek().is_none().then_some(page.cursor_after);
            chunks.push((c, end));
        }
        futures::stream::iter(chunks)
    });
    // At most `workers` chunks decrypt at once (the permits); twice as many are in the ordered window, so
    // a core never idles waiting for an earlier, slower chunk to be handed on.
    let permits = Arc::new(tokio::sync::Semaphore::new(workers));
    let results = chunks
        .map(|(items, end)| {
            let p = processor.clone();
            let keep = keep.clone();
            let permits = permits.clone();
            async move {
                let permit = permits.acquire_owned().await;
                let out = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    p.process_chunk(&items).map(|lines| {
                        lines
                            .into_iter()
                            .filter(|o| keep.as_ref().is_none_or(|k| k(o)))
                            .collect::<Vec<Processed>>()
                    })
                })
                .await;
                (out, end)
            }
        })
        .buffered(workers * 2);
    futures::pin_mut!(results);

    let mut pending: Vec<Processed> = Vec::new();
    while let Some((lines, end)) = results.next().await {
        let lines = lines.map_err(|e| PipelineError::internal(&corp_id, &stream, e))??;
        probe.decrypted(&lines);
        pending.extend(lines);
        let Some(cursor_after) = end else { continue };
        let page = DecryptedPage {
            lines: std::mem::take(&mut pending),
            cursor_after,
        };
        if out.send(page).await.is_err() {
            break; // the sink stage stopped; its error is reported by its task
        }
    }
    Ok(())
}

fn receiver_stream<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
