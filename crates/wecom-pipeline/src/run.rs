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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wecom_api::{ArchiveClient, ClientConfig, ErrorClass};
use wecom_crypto::{Keyring, MessageCipher, SimCipher};
use wecom_model::api::ChatDataItem;
use wecom_store::{CursorStore, LocalSink, SinkOptions};

use crate::config::{CipherKind, SourceConfig, Validated};
use crate::error::PipelineError;
use crate::lock::StreamLock;
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

    fn dir_name(&self) -> String {
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
struct Counters {
    fetched: AtomicU64,
    records: AtomicU64,
    dead: AtomicU64,
    skipped: AtomicU64,
    duplicates: AtomicU64,
    committed: AtomicU64,
    fetched_seq: AtomicU64,
    caught_up: AtomicBool,
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

pub(crate) fn cipher_for(kind: CipherKind) -> Arc<dyn MessageCipher> {
    match kind {
        CipherKind::Sim => Arc::new(SimCipher),
    }
}

/// A source the pipeline talks to: the HTTP client, plus the embedded simulator when there is one (kept
/// alive for as long as the source is).
pub struct Source {
    pub client: ArchiveClient,
    pub sim: Option<wecom_sim::SimServer>,
}

impl Source {
    pub async fn connect(cfg: &Validated) -> Result<Self, PipelineError> {
        let (base_url, sim) = match &cfg.source {
            SourceConfig::Http { base_url } => (base_url.clone(), None),
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
        let mut client_cfg =
            ClientConfig::new(base_url, cfg.corp_id.clone(), cfg.corp_secret.clone());
        client_cfg.request_timeout = cfg.request_timeout;
        client_cfg.retry = cfg.retry.clone();
        let client = ArchiveClient::new(client_cfg).map_err(|source| PipelineError::Api {
            corp_id: cfg.corp_id.clone(),
            source: Box::new(source),
        })?;
        Ok(Self { client, sim })
    }

    pub async fn shutdown(self) {
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
    }
}

/// A page of new items, ascending by seq, and the seq the cursor may move to once they are all written.
struct Page {
    items: Vec<ChatDataItem>,
    cursor_after: u64,
}

/// Runs the pipeline on one stream until caught up (`follow = false`), or until `shutdown` is cancelled.
/// In-flight pages are always finished and committed before it returns.
pub async fn run(
    cfg: &Validated,
    source: &Source,
    opts: &RunOptions,
    shutdown: CancellationToken,
) -> Result<RunSummary, PipelineError> {
    // Our own token: a failing stage stops the others without cancelling the caller's token.
    let shutdown = shutdown.child_token();
    let started = Instant::now();
    let stream = opts.stream.name();
    let corp_id = cfg.corp_id.clone();
    let store_err = |source| PipelineError::Store {
        corp_id: corp_id.clone(),
        stream: stream.clone(),
        source,
    };

    let keyring = Arc::new(load_keyring(cfg)?);
    info!(corp = %corp_id, stream = %stream, versions = ?keyring.versions(), "keyring loaded");
    let dir = stream_dir(&cfg.data_dir, &corp_id, &opts.stream);
    let (sink, cursors, start_seq, mut present, _lock) = {
        let dir = dir.clone();
        let name = stream.clone();
        let seg = cfg.segment_max_bytes;
        tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
            let lock = StreamLock::acquire(&dir)?;
            let cursors = CursorStore::open(&dir)?;
            let start = cursors.load(&name)?.map_or(0, |c| c.seq);
            let mut sink = LocalSink::open(
                &dir,
                SinkOptions {
                    segment_max_bytes: seg,
                    ..SinkOptions::default()
                },
            )?;
            let report = sink.recover(start)?;
            Ok((sink, cursors, start, report.present, lock))
        })
        .await
        .map_err(|e| internal(&corp_id, &stream, e))?
        .map_err(|e| e.in_stream(&corp_id, &stream))?
    };
    info!(corp = %corp_id, stream = %stream, after_seq = start_seq, already_in_sink = present.len(), dir = %dir.display(), "resuming");

    let counters = Arc::new(Counters::default());
    counters.committed.store(start_seq, Ordering::Relaxed);
    let processor = Processor {
        corp_id: corp_id.clone().into(),
        stream: stream.clone().into(),
        keyring,
        cipher: cipher_for(cfg.cipher),
    };

    let (page_tx, page_rx) = mpsc::channel::<Page>(cfg.fetch_queue_pages);
    let fetcher = tokio::spawn(fetch_loop(
        source.client.clone(),
        opts.clone(),
        start_seq,
        cfg.limit,
        cfg.poll_interval,
        page_tx,
        counters.clone(),
        shutdown.clone(),
    ));
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
    let results = jobs
        .map(|(items, end)| {
            let p = processor.clone();
            async move {
                let out = tokio::task::spawn_blocking(move || {
                    items
                        .iter()
                        .map(|i| p.process(i))
                        .collect::<Vec<Processed>>()
                })
                .await;
                (out, end)
            }
        })
        .buffered(cfg.decrypt_workers);
    futures::pin_mut!(results);

    let sink = Arc::new(Mutex::new(sink));
    let cursors = Arc::new(cursors);
    let mut pending: Vec<Processed> = Vec::new();
    let mut sink_result: Result<(), PipelineError> = Ok(());
    while let Some((out, end)) = results.next().await {
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                sink_result = Err(internal(&corp_id, &stream, e));
                break;
            }
        };
        pending.extend(out);
        let Some(cursor_after) = end else { continue };
        let batch: Vec<Processed> = std::mem::take(&mut pending)
            .into_iter()
            .filter(|p| {
                let dup = present.remove(&p.line.seq);
                if dup {
                    counters.skipped.fetch_add(1, Ordering::Relaxed);
                }
                !dup
            })
            .collect();
        let records = batch.iter().filter(|p| p.dead.is_none()).count() as u64;
        let dead = batch.len() as u64 - records;
        for p in batch.iter().filter(|p| p.dead.is_some()) {
            warn!(corp = %corp_id, stream = %stream, seq = p.line.seq, reason = ?p.dead, "item dead-lettered");
        }
        let write = {
            let sink = sink.clone();
            let cursors = cursors.clone();
            let stream = stream.clone();
            tokio::task::spawn_blocking(move || -> Result<(), wecom_store::StoreError> {
                let lines: Vec<_> = batch.into_iter().map(|p| p.line).collect();
                let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
                if !lines.is_empty() {
                    sink.write_batch(&lines)?;
                }
                cursors.commit(&stream, cursor_after)
            })
            .await
        };
        match write {
            Ok(Ok(())) => {
                counters.records.fetch_add(records, Ordering::Relaxed);
                counters.dead.fetch_add(dead, Ordering::Relaxed);
                counters.committed.store(cursor_after, Ordering::Relaxed);
                debug!(corp = %corp_id, stream = %stream, seq = cursor_after, "committed");
            }
            Ok(Err(e)) => {
                sink_result = Err(store_err(e));
                break;
            }
            Err(e) => {
                sink_result = Err(internal(&corp_id, &stream, e));
                break;
            }
        }
    }
    // A sink failure stops the fetcher too; a fetch failure has already closed the channel.
    shutdown.cancel();
    let fetched = fetcher.await.map_err(|e| internal(&corp_id, &stream, e))?;
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

fn internal(corp_id: &str, stream: &str, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Internal {
        corp_id: corp_id.to_string(),
        stream: stream.to_string(),
        reason: e.to_string(),
    }
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
) -> Result<(), PipelineError> {
    let stream = opts.stream.name();
    let mut last = after_seq;
    loop {
        if shutdown.is_cancelled() {
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
                tokio::select! {
                    () = tokio::time::sleep(poll.max(Duration::from_secs(1))) => continue,
                    () = shutdown.cancelled() => return Ok(()),
                }
            }
            Err(source) => {
                return Err(PipelineError::Fetch {
                    corp_id: client.corp_id().to_string(),
                    stream: stream.clone(),
                    seq: last,
                    source: Box::new(source),
                })
            }
        };
        let page = dedupe(items, last);
        counters
            .duplicates
            .fetch_add(page.dropped as u64, Ordering::Relaxed);
        if page.items.is_empty() {
            counters.caught_up.store(true, Ordering::Relaxed);
            if !opts.follow {
                info!(stream = %stream, seq = last, "caught up");
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => continue,
                () = shutdown.cancelled() => return Ok(()),
            }
        }
        counters.caught_up.store(false, Ordering::Relaxed);
        let cursor_after = page.items.last().map_or(last, |i| i.seq);
        counters
            .fetched
            .fetch_add(page.items.len() as u64, Ordering::Relaxed);
        counters.fetched_seq.store(cursor_after, Ordering::Relaxed);
        last = cursor_after;
        let page = Page {
            items: page.items,
            cursor_after,
        };
        tokio::select! {
            r = tx.send(page) => if r.is_err() { return Ok(()) },
            () = shutdown.cancelled() => return Ok(()),
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
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let done = counters.records.load(Ordering::Relaxed) + counters.dead.load(Ordering::Relaxed);
        let committed = counters.committed.load(Ordering::Relaxed);
        let fetched = counters.fetched_seq.load(Ordering::Relaxed);
        let state = if counters.caught_up.load(Ordering::Relaxed) {
            "caught up".to_string()
        } else {
            format!("{} seqs in flight", fetched.saturating_sub(committed))
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{done} items ({:.0}/s), committed seq {committed}, dead letters {}, {state}    ",
            done as f64 / secs,
            counters.dead.load(Ordering::Relaxed),
        );
        let _ = err.flush();
    }
    eprintln!();
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
