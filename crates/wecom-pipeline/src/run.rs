//! A run: the stages composed on one stream — fetch (`fetch.rs`) → decrypt and normalize (`decrypt.rs`,
//! `process.rs`) → sink (`sink.rs`, `outputs.rs`) → commit. The live run, replays and their rooms are all
//! this one composition with a different [`Scope`].
//!
//! Because pages are written in order and each commit follows its page's acknowledgement by every output,
//! the committed seq never passes an item that is not in the messages output or the dead-letter output.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wecom_store::StreamLayout;

use crate::config::Validated;
use crate::decrypt::{decrypt_pages, DecryptParams, DecryptedPage};
use crate::error::PipelineError;
use crate::fetch::{fetch_loop, FetchParams, Page, PageSource};
use crate::ops::Probe;
use crate::outputs::Outputs;
use crate::process::Processor;
use crate::scope::Scope;
use crate::sink::sink_pages;
use crate::source::Source;
use crate::stream::{RunOptions, RunSummary};

/// Runs the pipeline on one stream until caught up (`follow = false`), or until `shutdown` is cancelled.
/// In-flight pages are always finished and committed before it returns.
pub async fn run(
    cfg: &Validated,
    source: &Source,
    opts: &RunOptions,
    shutdown: CancellationToken,
) -> Result<RunSummary, PipelineError> {
    let scope = Scope::live(cfg)?;
    run_scoped(cfg, source, opts, &scope, shutdown).await
}

/// [`run`], notifying `recovered` once every output has been recovered (before the first fetch). Whatever
/// follows the outputs (the media worker tails the record files) must start only then: recovery may cut
/// or remove what a crash left at the files' end.
pub async fn run_notifying(
    cfg: &Validated,
    source: &Source,
    opts: &RunOptions,
    shutdown: CancellationToken,
    recovered: Arc<tokio::sync::Notify>,
) -> Result<RunSummary, PipelineError> {
    let scope = Scope {
        recovered: Some(recovered),
        ..Scope::live(cfg)?
    };
    run_scoped(cfg, source, opts, &scope, shutdown).await
}

/// [`run`] within a [`Scope`]: another output directory, seq bounds, a record filter, the raw archive as
/// the writer or as the source.
pub(crate) async fn run_scoped(
    cfg: &Validated,
    source: &Source,
    opts: &RunOptions,
    scope: &Scope,
    shutdown: CancellationToken,
) -> Result<RunSummary, PipelineError> {
    // Our own token: a failing stage stops the others without cancelling the caller's token.
    let shutdown = shutdown.child_token();
    let started = Instant::now();
    let stream = opts.stream.name();
    let corp_id = cfg.corp_id.clone();
    let layout = match &scope.dir {
        Some(dir) => StreamLayout::at(dir, &stream),
        None => opts.stream.layout(&cfg.data_dir, &corp_id)?,
    };
    // A replay from the raw archive must not call the service: it reads the archive's room history.
    let rooms = match (&scope.from_archive, &source.rooms) {
        (_, None) => None,
        (Some(ledger), Some(_)) => crate::rooms::RoomLookup::history(Arc::new(
            crate::room_history::RoomHistory::new(ledger.clone(), cfg.rooms.max_entries),
        )),
        (None, Some(c)) => crate::rooms::RoomLookup::current(c.clone()),
    };
    let processor = Processor::new(cfg, &stream, source.sdk.as_ref(), rooms)?;
    let (outputs, start_seq) = Outputs::open(cfg, &layout, scope.owner.clone()).await?;
    // A replay from the raw archive must not call the service for consent either: it reads the live
    // stream's consent history.
    let live_layout = match &scope.from_archive {
        Some(_) => Some(opts.stream.layout(&cfg.data_dir, &corp_id)?),
        None => None,
    };
    let consent =
        match crate::consent::source_for_run(cfg, source.consent.as_ref(), live_layout.as_ref())? {
            Some(c) => Some(crate::consent::ConsentStage::open(
                c,
                &layout,
                &corp_id,
                &cfg.consent,
            )?),
            None => None,
        };
    if let Some(recovered) = &scope.recovered {
        recovered.notify_one();
    }

    let probe = Arc::new(Probe::new(&corp_id, &stream, start_seq));
    if let Some(list) = &scope.probes {
        list.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(probe.clone());
    }
    let (page_tx, page_rx) = mpsc::channel::<Page>(cfg.fetch_queue_pages);
    let _watch = crate::ops::watch(
        &cfg.ops,
        &layout,
        probe.clone(),
        source.client.clone(),
        page_tx.downgrade(),
        cfg.fetch_queue_pages,
    );
    let page_source = match scope.from_archive.clone() {
        Some(archive) => PageSource::archive(archive),
        None => PageSource::Service {
            client: source.client.clone(),
            stream: opts.stream.clone(),
            limit: cfg.limit,
        },
    };
    let fetcher = tokio::spawn(fetch_loop(
        page_source,
        FetchParams {
            corp_id: corp_id.clone(),
            stream: stream.clone(),
            after_seq: start_seq,
            follow: opts.follow,
            poll: cfg.poll_interval,
            scope: scope.clone(),
            probe: probe.clone(),
            shutdown: shutdown.clone(),
        },
        page_tx,
    ));
    let progress = opts.progress.then(|| {
        tokio::spawn(crate::progress::run_progress(
            probe.clone(),
            shutdown.child_token(),
        ))
    });
    let (sink_tx, sink_rx) = mpsc::channel::<DecryptedPage>(1);
    let sink = tokio::spawn(sink_pages(
        sink_rx,
        outputs,
        consent,
        probe.clone(),
        shutdown.clone(),
    ));
    let decrypted = decrypt_pages(
        page_rx,
        DecryptParams {
            processor,
            keep: scope.keep.clone(),
            chunk: cfg.decrypt_chunk,
            workers: cfg.decrypt_workers,
            probe: probe.clone(),
        },
        sink_tx,
    )
    .await;

    let internal = |e| PipelineError::internal(&corp_id, &stream, e);
    let sunk = sink.await.map_err(internal).and_then(|r| r);
    // A sink failure stops the fetcher too; a fetch failure has already closed the channel.
    shutdown.cancel();
    let fetched = fetcher.await.map_err(internal)?;
    if let Some(p) = progress {
        p.abort();
    }
    // The room snapshots of this run's lookups are in the archive before it returns.
    if let Some(w) = source.rooms.as_ref().and_then(|r| r.snapshots()) {
        w.flush().await;
    }
    // Every run ends with a signed checkpoint of what it archived (when signing is configured).
    if let Some(ledger) = &scope.archive_writer {
        if let Err(e) = ledger.checkpoint(&stream).await {
            tracing::warn!(corp = %corp_id, stream = %stream, error = %wecom_model::error_chain(&e), "raw archive: the end-of-run checkpoint failed; the next run writes one");
        }
    }
    decrypted?;
    sunk?;
    fetched?;

    let c = probe.counts();
    Ok(RunSummary {
        stream,
        started_after_seq: start_seq,
        committed_seq: c.committed,
        items_fetched: c.fetched,
        records: c.records,
        dead_letters: c.dead_letters,
        skipped_already_in_sink: c.skipped,
        duplicates_dropped: c.duplicates,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}
