//! The running pipeline: fetch → decrypt+normalize (bounded blocking pool) → sink → acknowledge → commit.
//!
//! Shape: one fetcher task walks the stream by seq and sends pages over a bounded channel; the pages are cut
//! into chunks and decrypted on at most `decrypt_workers` blocking threads at once, results kept in order;
//! the sink task writes each page's output lines (fsynced) and only then commits the page's largest seq.
//! Because pages are written in order and each commit follows its page's fsync, the committed seq never
//! passes an item that is not in the sink or the dead-letter output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wecom_api::{ArchiveClient, ClientConfig, ErrorClass};
use wecom_crypto::Keyring;
use wecom_model::api::ChatDataItem;

use crate::config::{SourceConfig, Validated};
use crate::error::PipelineError;
use crate::outputs::Outputs;
use crate::process::{Processed, Processor};

/// Which stream to walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamSel {
    /// The corp-wide stream (`get_chat_data`): the default source.
    Corp,
    /// One room's own stream (`groupchat/get` {roomid, seq}), with its own cursor.
    Room(String),
}

impl StreamSel {
    /// The stream's name in records, cursors and logs: `corp` or `room:<roomid>`.
    pub fn name(&self) -> String {
        match self {
            StreamSel::Corp => "corp".to_string(),
            StreamSel::Room(r) => format!("room:{r}"),
        }
    }

    pub(crate) fn dir_name(&self) -> String {
        match self {
            StreamSel::Corp => "corp".to_string(),
            StreamSel::Room(r) => format!(
                "room-{}",
                r.chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    })
                    .collect::<String>()
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub stream: StreamSel,
    /// Keep polling once caught up (live tail). When false the run ends at the first empty page.
    pub follow: bool,
    /// Print a progress line to stderr once a second (only honoured when stderr is a terminal).
    pub progress: bool,
}

/// What a run did; printed at the end and checked by tests.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    pub stream: String,
    pub started_after_seq: u64,
    pub committed_seq: u64,
    pub items_fetched: u64,
    pub records: u64,
    pub dead_letters: u64,
    pub skipped_already_in_sink: u64,
    pub duplicates_dropped: u64,
    pub elapsed_secs: f64,
}

/// Counters shared by the stages (progress line, summary).
#[derive(Default)]
pub(crate) struct Counters {
    fetched: AtomicU64,
    records: AtomicU64,
    dead: AtomicU64,
    skipped: AtomicU64,
    duplicates: AtomicU64,
    committed: AtomicU64,
    fetched_seq: AtomicU64,
    caught_up: AtomicBool,
    /// Ops hooks: metrics, /ready, status.json (ops.rs).
    probe: Arc<crate::ops::Probe>,
}

/// Where a stream's local output lives: `<data_dir>/<corp_id>/<stream>/`.
pub fn stream_dir(data_dir: &Path, corp_id: &str, stream: &StreamSel) -> PathBuf {
    data_dir.join(corp_id).join(stream.dir_name())
}

/// Loads every configured private key.
pub fn load_keyring(cfg: &Validated) -> Result<Keyring, PipelineError> {
    let mut ring = Keyring::new(cfg.key_backend);
    for k in &cfg.key_files {
        ring.load_pem_file(k.version, &k.path)?;
    }
    Ok(ring)
}

/// A source the pipeline talks to: the HTTP client, plus the embedded simulator when there is one (kept
/// alive for as long as the source is).
pub struct Source {
    pub client: ArchiveClient,
    pub sim: Option<wecom_sim::SimServer>,
    /// The SDK worker pool, when the source or the cipher is the SDK.
    pub sdk: Option<wecom_sdk::SdkPool>,
    /// The in-process gateway that serves the SDK source to `client`.
    gateway: Option<wecom_sdk::GatewayHandle>,
    /// The room metadata cache (`[rooms] enrich`), shared by every run on this source (rooms.rs).
    pub rooms: Option<Arc<crate::rooms::RoomCache>>,
}

impl Source {
    pub async fn connect(cfg: &Validated) -> Result<Self, PipelineError> {
        let sdk = crate::sdk::start_pool(cfg).await?;
        let mut secret = cfg.corp_secret.clone();
        let mut gateway = None;
        let (base_url, sim) = match &cfg.source {
            SourceConfig::Http { base_url } => (base_url.clone(), None),
            SourceConfig::Sdk {} => {
                let pool = sdk.as_ref().ok_or_else(|| PipelineError::Sdk {
                    corp_id: cfg.corp_id.clone(),
                    reason: "source.kind = \"sdk\" needs the [sdk] section".into(),
                })?;
                let (handle, token) = crate::sdk::local_gateway(pool, &cfg.corp_id).await?;
                info!(url = %handle.base_url(), "sdk source: in-process gateway started");
                secret = token;
                let url = handle.base_url();
                gateway = Some(handle);
                (url, None)
            }
            SourceConfig::Sim { sim } => {
                let mut sim = (**sim).clone();
                sim.corp_id = cfg.corp_id.clone();
                sim.corp_secret = cfg.corp_secret.expose().to_string();
                let addr = ([127, 0, 0, 1], 0).into();
                let server = wecom_sim::start(sim, addr)
                    .await
                    .map_err(|e| PipelineError::Sim(e.to_string()))?;
                info!(url = %server.base_url(), "embedded simulator started");
                (server.base_url(), Some(server))
            }
        };
        let mut client_cfg = ClientConfig::new(base_url, cfg.corp_id.clone(), secret);
        client_cfg.request_timeout = cfg.request_timeout;
        client_cfg.retry = cfg.retry.clone();
        let client = ArchiveClient::new(client_cfg).map_err(|source| PipelineError::Api {
            corp_id: cfg.corp_id.clone(),
            source: Box::new(source),
        })?;
        let rooms = cfg
            .rooms
            .enrich
            .then(|| Arc::new(crate::rooms::RoomCache::from_client(&client, &cfg.rooms)));
        Ok(Self {
            client,
            sim,
            sdk,
            gateway,
            rooms,
        })
    }

    pub async fn shutdown(self) {
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
        if let Some(g) = self.gateway {
            if let Err(e) = g.shutdown().await {
                warn!(error = %e, "in-process sdk gateway did not shut down cleanly");
            }
        }
        if let Some(pool) = self.sdk {
            pool.shutdown().await;
        }
    }
}

/// A page of new items, ascending by seq, and the seq the cursor may move to once they are all written.
pub(crate) struct Page {
    pub(crate) items: Vec<ChatDataItem>,
    pub(crate) cursor_after: u64,
}

/// Runs the pipeline on one stream until caught up (`follow = false`), or until `shutdown` is cancelled.
/// In-flight pages are always finished and committed before it returns.
pub async fn run(
    cfg: &Validated,
    source: &Source,
    opts: &RunOptions,
    shutdown: CancellationToken,
) -> Result<RunSummary, PipelineError> {
    let scope = crate::replay::Scope::live(cfg)?;
    run_scoped(cfg, source, opts, &scope, shutdown).await
}

/// [`run`] within a [`crate::replay::Scope`]: another output directory, seq bounds, a record filter, the raw
/// archive as the writer or as the source.
pub(crate) async fn run_scoped(
    cfg: &Validated,
    source: &Source,
    opts: &RunOptions,
    scope: &crate::replay::Scope,
    shutdown: CancellationToken,
) -> Result<RunSummary, PipelineError> {
    // Our own token: a failing stage stops the others without cancelling the caller's token.
    let shutdown = shutdown.child_token();
    let started = Instant::now();
    let stream = opts.stream.name();
    let corp_id = cfg.corp_id.clone();
    let keyring = Arc::new(load_keyring(cfg)?);
    info!(corp = %corp_id, stream = %stream, versions = ?keyring.versions(), "keyring loaded");
    let dir =
        (scope.dir.clone()).unwrap_or_else(|| stream_dir(&cfg.data_dir, &corp_id, &opts.stream));
    let (mut outputs, start_seq) = Outputs::open(cfg, &stream, dir).await?;

    let counters = scope.counters.clone().unwrap_or_default();
    counters.committed.store(start_seq, Ordering::Relaxed);
    let processor = Processor {
        corp_id: corp_id.clone().into(),
        stream: stream.clone().into(),
        keyring,
        cipher: crate::sdk::cipher(cfg, source.sdk.as_ref())?,
        // Room metadata from the source's shared cache; a replay from the raw archive must not call the
        // service, so it gets the cache's offline view (rooms.rs).
        rooms: source
            .rooms
            .as_ref()
            .map(|c| match scope.from_archive {
                Some(_) => Arc::new(c.offline()),
                None => c.clone(),
            })
            .and_then(crate::rooms::RoomLookup::current),
    };

    let (page_tx, page_rx) = mpsc::channel::<Page>(cfg.fetch_queue_pages);
    let _ops = crate::ops::watch(
        &cfg.ops,
        &corp_id,
        &stream,
        &scope
            .dir
            .clone()
            .unwrap_or_else(|| stream_dir(&cfg.data_dir, &corp_id, &opts.stream)),
        counters.probe.clone(),
        source.client.clone(),
        page_tx.downgrade(),
        cfg.fetch_queue_pages,
        start_seq,
    );
    let fetcher = match scope.from_archive.clone() {
        Some(archive) => tokio::spawn(crate::archive::fetch_loop(
            archive,
            stream.clone(),
            start_seq,
            scope.stop_after_seq,
            page_tx,
            counters.clone(),
            shutdown.clone(),
        )),
        None => tokio::spawn(fetch_loop(
            source.client.clone(),
            opts.clone(),
            start_seq,
            cfg.limit,
            cfg.poll_interval,
            page_tx,
            counters.clone(),
            shutdown.clone(),
            scope.clone(),
        )),
    };
    let progress = opts
        .progress
        .then(|| tokio::spawn(progress_loop(counters.clone(), shutdown.child_token())));

    // Cut pages into chunks; a chunk flagged `end` closes its page.
    let chunk = cfg.decrypt_chunk;
    let jobs = tokio_stream_from(page_rx).flat_map(move |page| {
        let n = page.items.len();
        let mut chunks: Vec<(Vec<ChatDataItem>, Option<u64>)> = Vec::new();
        let mut items = page.items.into_iter().peekable();
        if n == 0 {
            chunks.push((Vec::new(), Some(page.cursor_after)));
        }
        while items.peek().is_some() {
            let c: Vec<ChatDataItem> = items.by_ref().take(chunk).collect();
            let end = items.peek().is_none().then_some(page.cursor_after);
            chunks.push((c, end));
        }
        futures::stream::iter(chunks)
    });
    // At most `decrypt_workers` chunks decrypt at once (the permits); twice as many are in the ordered
    // window, so a core never idles waiting for an earlier, slower chunk to be handed on.
    let permits = Arc::new(tokio::sync::Semaphore::new(cfg.decrypt_workers));
    let results = jobs
        .map(|(items, end)| {
            let p = processor.clone();
            let keep = scope.keep.clone();
            let permits = permits.clone();
            async move {
                let permit = permits.acquire_owned().await;
                let out = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    items
                        .iter()
                        .map(|i| p.process(i))
                        .filter(|o| keep.as_ref().is_none_or(|k| k(o)))
                        .collect::<Vec<Processed>>()
                })
                .await;
                (out, end)
            }
        })
        .buffered(cfg.decrypt_workers * 2);
    futures::pin_mut!(results);

    // The sink stage runs as its own task behind a one-page channel, so decrypting the next page overlaps
    // with writing (fsync, broker acks) the current one; memory stays bounded by that one page.
    let (page_out, mut page_in) = mpsc::channel::<(Vec<Processed>, u64)>(1);
    let sink_task = {
        let counters = counters.clone();
        let (corp_id, stream) = (corp_id.clone(), stream.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            while let Some((batch, cursor_after)) = page_in.recv().await {
                let acked = crate::ops::Acked::of(&batch);
                for p in batch.iter().filter(|p| p.dead.is_some()) {
                    warn!(corp = %corp_id, stream = %stream, seq = p.line.seq, reason = ?p.dead, "item dead-lettered");
                }
                match outputs.write_page(batch, cursor_after).await {
                    Ok(outcome) => {
                        counters
                            .records
                            .fetch_add(outcome.records, Ordering::Relaxed);
                        counters
                            .dead
                            .fetch_add(outcome.dead_letters, Ordering::Relaxed);
                        counters
                            .skipped
                            .fetch_add(outcome.skipped, Ordering::Relaxed);
                        counters.committed.store(cursor_after, Ordering::Relaxed);
                        counters.probe.committed(cursor_after, acked);
                        debug!(corp = %corp_id, stream = %stream, seq = cursor_after, "committed");
                    }
                    Err(e) => {
                        counters.probe.sink_failed(cursor_after, &e);
                        // Stop fetching and decrypting: nothing after this page may be committed.
                        stop.cancel();
                        return Err(e);
                    }
                }
            }
            Ok(())
        })
    };

    let mut pending: Vec<Processed> = Vec::new();
    let mut stage_result: Result<(), PipelineError> = Ok(());
    while let Some((out, end)) = results.next().await {
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                stage_result = Err(PipelineError::internal(&corp_id, &stream, e));
                break;
            }
        };
        counters.probe.decrypted(&out);
        pending.extend(out);
        let Some(cursor_after) = end else { continue };
        let batch = std::mem::take(&mut pending);
        if page_out.send((batch, cursor_after)).await.is_err() {
            break; // the sink task failed; its error is reported below
        }
    }
    drop(page_out);
    let sink_result = match sink_task.await {
        Ok(r) => stage_result.and(r),
        Err(e) => Err(PipelineError::internal(&corp_id, &stream, e)),
    };
    // A sink failure stops the fetcher too; a fetch failure has already closed the channel.
    shutdown.cancel();
    let fetched = fetcher
        .await
        .map_err(|e| PipelineError::internal(&corp_id, &stream, e))?;
    if let Some(p) = progress {
        p.abort();
    }
    sink_result?;
    fetched?;

    Ok(RunSummary {
        stream,
        started_after_seq: start_seq,
        committed_seq: counters.committed.load(Ordering::Relaxed),
        items_fetched: counters.fetched.load(Ordering::Relaxed),
        records: counters.records.load(Ordering::Relaxed),
        dead_letters: counters.dead.load(Ordering::Relaxed),
        skipped_already_in_sink: counters.skipped.load(Ordering::Relaxed),
        duplicates_dropped: counters.duplicates.load(Ordering::Relaxed),
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Walks the stream from `after_seq`: each call asks for items after the largest seq seen so far (never
/// `max + 1`). Items at or below that seq (a page that repeats earlier items) and repeated seqs within a
/// page are dropped, so no seq is delivered twice; a fault is retried inside the client, so none is skipped.
#[allow(clippy::too_many_arguments)]
async fn fetch_loop(
    client: ArchiveClient,
    opts: RunOptions,
    after_seq: u64,
    limit: u32,
    poll: Duration,
    tx: mpsc::Sender<Page>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
    scope: crate::replay::Scope,
) -> Result<(), PipelineError> {
    let stream = opts.stream.name();
    let mut last = after_seq;
    loop {
        if shutdown.is_cancelled() || scope.stop_after_seq.is_some_and(|s| last >= s) {
            return Ok(());
        }
        let call = async {
            match &opts.stream {
                StreamSel::Corp => client.get_chat_data(last, limit).await,
                StreamSel::Room(r) => client.room_items(r, last, limit).await,
            }
        };
        let items = tokio::select! {
            r = call => r,
            () = shutdown.cancelled() => return Ok(()),
        };
        let items = match items {
            Ok(items) => items,
            // The client already retried with backoff; a fault that outlasts its policy (an outage) is
            // waited out here rather than ending the run. The cursor stays where it is, so nothing is skipped.
            Err(e) if e.class() != ErrorClass::Fatal => {
                warn!(corp = %client.corp_id(), stream = %stream, seq = last, error = %e, "fetch failed; retrying after the poll interval");
                counters.probe.fetch_failed(last, &e);
                tokio::select! {
                    () = tokio::time::sleep(poll.max(Duration::from_secs(1))) => continue,
                    () = shutdown.cancelled() => return Ok(()),
                }
            }
            Err(source) => {
                counters.probe.fetch_failed(last, &source);
                return Err(PipelineError::Fetch {
                    corp_id: client.corp_id().to_string(),
                    stream: stream.clone(),
                    seq: last,
                    source: Box::new(source),
                });
            }
        };
        let mut page = dedupe(items, last);
        // Raw archive before the page moves on, so the archive is never behind the cursor; a failed
        // write is retried like a fetch outage (the same page is asked for again).
        if let Err(e) = scope
            .page_fetched(client.corp_id(), &stream, &page.items)
            .await
        {
            warn!(corp = %client.corp_id(), stream = %stream, seq = last, error = %e, "raw archive write failed; retrying after the poll interval");
            tokio::select! {
                () = tokio::time::sleep(poll.max(Duration::from_secs(1))) => continue,
                () = shutdown.cancelled() => return Ok(()),
            }
        }
        let reached_stop = scope.clip(&mut page.items);
        if reached_stop && page.items.is_empty() {
            return Ok(());
        }
        counters.probe.fetched(
            page.items.len(),
            page.dropped,
            page.items.last().map_or(last, |i| i.seq),
        );
        let cursor_after = page.items.last().map_or(last, |i| i.seq);
        counters.page_fetched(page.items.len() as u64, page.dropped as u64, cursor_after);
        if page.items.is_empty() {
            if !opts.follow {
                info!(stream = %stream, seq = last, "caught up");
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => continue,
                () = shutdown.cancelled() => return Ok(()),
            }
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
            return Ok(());
        }
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

async fn progress_loop(counters: Arc<Counters>, stop: CancellationToken) {
    progress_line(stop, |secs| {
        let done = counters.records.load(Ordering::Relaxed) + counters.dead.load(Ordering::Relaxed);
        let committed = counters.committed.load(Ordering::Relaxed);
        let fetched = counters.fetched_seq.load(Ordering::Relaxed);
        let state = if counters.caught_up.load(Ordering::Relaxed) {
            "caught up".to_string()
        } else {
            format!("{} seqs in flight", fetched.saturating_sub(committed))
        };
        format!(
            "{done} items ({:.0}/s), committed seq {committed}, dead letters {}, {state}",
            done as f64 / secs,
            counters.dead.load(Ordering::Relaxed),
        )
    })
    .await;
}

/// Rewrites one status line on stderr every second until `stop`, when stderr is a terminal (quiet
/// otherwise); `line` gets the seconds since the start.
pub(crate) async fn progress_line(stop: CancellationToken, line: impl Fn(f64) -> String) {
    use std::io::{IsTerminal, Write};
    if !std::io::stderr().is_terminal() {
        return;
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            () = stop.cancelled() => break,
        }
        let text = line(started.elapsed().as_secs_f64().max(0.001));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{text}    ");
        let _ = err.flush();
    }
    eprintln!();
}

/// What other fetch stages (the raw archive's, in archive.rs) and the replay's progress line see.
impl Counters {
    /// A page came back with `items` new items (none: caught up) and `dropped` repeats; `seq` is the
    /// largest seq seen so far.
    pub(crate) fn page_fetched(&self, items: u64, dropped: u64, seq: u64) {
        self.caught_up.store(items == 0, Ordering::Relaxed);
        self.duplicates.fetch_add(dropped, Ordering::Relaxed);
        self.fetched.fetch_add(items, Ordering::Relaxed);
        self.fetched_seq.store(seq, Ordering::Relaxed);
    }

    pub(crate) fn set_caught_up(&self) {
        self.caught_up.store(true, Ordering::Relaxed);
    }

    /// (items written, committed seq).
    pub(crate) fn progress(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed) + self.dead.load(Ordering::Relaxed),
            self.committed.load(Ordering::Relaxed),
        )
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
