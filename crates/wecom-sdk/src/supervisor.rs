//! The supervisor: a fixed number of worker slots, each owning at most one worker process and running
//! one request at a time, fed from one bounded queue.
//!
//! Crash handling, per slot:
//! - A request whose worker dies (signal, exit, broken pipe, malformed frame) is retried once on a
//!   fresh worker of the same slot (after the restart backoff); if that one dies too the caller gets
//!   [`SdkError::WorkerCrashed`] ("sdk worker crashed: SIGABRT").
//! - `DecryptData` is an offline computation, so a worker that does not answer it within
//!   `request_timeout` is hung on that item: it is killed and handled like a crash (retried once, then
//!   `WorkerCrashed`). A network call (`GetChatData`, `GetMediaData`) or a ping that times out gets its
//!   worker killed and [`SdkError::Timeout`], without a retry (the caller retries later).
//! - A batch of `DecryptData` calls whose worker dies or hangs is replayed item by item on fresh
//!   workers, each item with the rule above: only an item that kills a worker on its own, twice, comes
//!   back as `WorkerCrashed`; every other item of the batch gets its real result.
//!
//! Replacement workers are started lazily, when the slot takes its next request, after a backoff that
//! doubles with consecutive failures and resets on the first success.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::SdkPoolConfig;
use crate::process::{CallError, WorkerProcess};
use crate::protocol::{DecryptItem, ItemReply, Request, Response};
use crate::SdkError;

/// Counters of the pool since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Jobs taken from the queue (a batch is one).
    pub requests: u64,
    /// Workers started (the initial ones included).
    pub spawns: u64,
    /// Workers that died under a request (a batch included).
    pub crashes: u64,
    /// Requests that hit the timeout (their worker was killed).
    pub timeouts: u64,
    /// Requests retried on a fresh worker after a crash or a hang.
    pub retries: u64,
    /// Batches whose worker died or hung, replayed item by item.
    pub replayed_batches: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    spawns: AtomicU64,
    crashes: AtomicU64,
    timeouts: AtomicU64,
    retries: AtomicU64,
    replayed_batches: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> PoolStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PoolStats {
            requests: get(&self.requests),
            spawns: get(&self.spawns),
            crashes: get(&self.crashes),
            timeouts: get(&self.timeouts),
            retries: get(&self.retries),
            replayed_batches: get(&self.replayed_batches),
        }
    }
}

/// A worker's answer to a single call (`ret` may be non-zero).
pub(crate) struct Reply {
    pub ret: i32,
    pub data: Vec<u8>,
    pub outindexbuf: Vec<u8>,
    pub is_finish: bool,
}

/// One item's outcome in a batch.
pub(crate) type ItemResult = Result<Vec<u8>, SdkError>;

enum Job {
    Call {
        req: Request,
        reply: oneshot::Sender<Result<Reply, SdkError>>,
    },
    Batch {
        items: Arc<[DecryptItem]>,
        reply: oneshot::Sender<Vec<ItemResult>>,
    },
}

struct Shared {
    cfg: SdkPoolConfig,
    counters: Counters,
}

/// The queue, the slots' tasks and their shared counters.
pub(crate) struct Supervisor {
    tx: mpsc::Sender<Job>,
    cancel: CancellationToken,
    shared: Arc<Shared>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Supervisor {
    /// Starts every worker (failing if any cannot start) and the slots that serve the queue.
    /// `cfg` must be validated.
    pub(crate) async fn start(cfg: SdkPoolConfig) -> Result<Self, SdkError> {
        let shared = Arc::new(Shared {
            cfg,
            counters: Counters::default(),
        });
        let n = shared.cfg.workers;
        let mut slots = Vec::with_capacity(n);
        for id in 0..n {
            let worker = WorkerProcess::spawn(&shared.cfg, id).await?;
            bump(&shared.counters.spawns);
            slots.push(Slot {
                id,
                shared: shared.clone(),
                worker: Some(worker),
                failures: 0,
                not_before: Instant::now(),
            });
        }
        let (tx, rx) = mpsc::channel(shared.cfg.queue_capacity);
        let rx = Arc::new(Mutex::new(rx));
        let cancel = CancellationToken::new();
        let tasks = slots
            .into_iter()
            .map(|slot| tokio::spawn(slot.run(rx.clone(), cancel.clone())))
            .collect();
        Ok(Self {
            tx,
            cancel,
            shared,
            tasks: std::sync::Mutex::new(tasks),
        })
    }

    pub(crate) fn config(&self) -> &SdkPoolConfig {
        &self.shared.cfg
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.shared.counters.snapshot()
    }

    /// One request on some worker.
    pub(crate) async fn call(&self, req: Request) -> Result<Reply, SdkError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Call { req, reply }).await?;
        rx.await.map_err(|_| SdkError::Closed)?
    }

    /// [`Supervisor::call`] from a blocking thread.
    pub(crate) fn call_blocking(&self, req: Request) -> Result<Reply, SdkError> {
        let (reply, rx) = oneshot::channel();
        self.send_blocking(Job::Call { req, reply })?;
        rx.blocking_recv().map_err(|_| SdkError::Closed)?
    }

    /// Several batches at once (they run on different workers as slots free up); the results are
    /// concatenated in order.
    pub(crate) async fn batches(&self, batches: Vec<Vec<DecryptItem>>) -> Vec<ItemResult> {
        let mut pending = Vec::with_capacity(batches.len());
        for items in batches {
            let n = items.len();
            let (reply, rx) = oneshot::channel();
            let sent = self
                .send(Job::Batch {
                    items: items.into(),
                    reply,
                })
                .await;
            pending.push((n, sent.map(|()| rx)));
        }
        let mut out = Vec::new();
        for (n, rx) in pending {
            let got = match rx {
                Ok(rx) => rx.await.map_err(|_| SdkError::Closed),
                Err(e) => Err(e),
            };
            extend_batch(&mut out, n, got);
        }
        out
    }

    /// [`Supervisor::batches`] from a blocking thread.
    pub(crate) fn batches_blocking(&self, batches: Vec<Vec<DecryptItem>>) -> Vec<ItemResult> {
        let mut pending = Vec::with_capacity(batches.len());
        for items in batches {
            let n = items.len();
            let (reply, rx) = oneshot::channel();
            let sent = self.send_blocking(Job::Batch {
                items: items.into(),
                reply,
            });
            pending.push((n, sent.map(|()| rx)));
        }
        let mut out = Vec::new();
        for (n, rx) in pending {
            let got = match rx {
                Ok(rx) => rx.blocking_recv().map_err(|_| SdkError::Closed),
                Err(e) => Err(e),
            };
            extend_batch(&mut out, n, got);
        }
        out
    }

    async fn send(&self, job: Job) -> Result<(), SdkError> {
        if self.cancel.is_cancelled() {
            return Err(SdkError::Closed);
        }
        self.tx.send(job).await.map_err(|_| SdkError::Closed)
    }

    fn send_blocking(&self, job: Job) -> Result<(), SdkError> {
        if self.cancel.is_cancelled() {
            return Err(SdkError::Closed);
        }
        self.tx.blocking_send(job).map_err(|_| SdkError::Closed)
    }

    /// Stops taking requests, lets the workers finish their current request, stops them and waits.
    pub(crate) async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// Appends a batch's results, or `n` copies of the error that kept the batch from running.
fn extend_batch(out: &mut Vec<ItemResult>, n: usize, got: Result<Vec<ItemResult>, SdkError>) {
    match got {
        Ok(results) => out.extend(results),
        Err(e) => out.extend(std::iter::repeat_n(Err(e), n)),
    }
}

/// How a single call on a worker went wrong, from the slot's point of view.
enum Failure {
    /// The worker was lost because of this request (crash, protocol break, or a hang on an offline
    /// call): retry once on a fresh worker.
    Lost(String),
    /// Give up at once.
    Final(SdkError),
}

/// One worker slot: runs requests one at a time on its worker, replacing the worker when it dies.
struct Slot {
    id: usize,
    shared: Arc<Shared>,
    worker: Option<WorkerProcess>,
    /// Consecutive failures (crashes, timeouts, failed starts) since the last success.
    failures: u32,
    /// No replacement worker is started before this instant.
    not_before: Instant,
}

impl Slot {
    async fn run(mut self, rx: Arc<Mutex<mpsc::Receiver<Job>>>, cancel: CancellationToken) {
        loop {
            let job = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                job = async { rx.lock().await.recv().await } => job,
            };
            let Some(job) = job else { break };
            bump(&self.shared.counters.requests);
            match job {
                Job::Call { req, reply } => {
                    let result = self.execute(&req).await;
                    let _ = reply.send(result);
                }
                Job::Batch { items, reply } => {
                    let results = self.execute_batch(items).await;
                    let _ = reply.send(results);
                }
            }
        }
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
    }

    fn note_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let cfg = &self.shared.cfg;
        let exp = self.failures.saturating_sub(1).min(16);
        let delay = cfg
            .restart_backoff
            .saturating_mul(1u32 << exp)
            .min(cfg.max_restart_backoff);
        self.not_before = Instant::now() + delay;
    }

    async fn ensure_worker(&mut self) -> Result<&mut WorkerProcess, SdkError> {
        if self.worker.is_none() {
            tokio::time::sleep_until(self.not_before.into()).await;
            match WorkerProcess::spawn(&self.shared.cfg, self.id).await {
                Ok(w) => {
                    bump(&self.shared.counters.spawns);
                    tracing::info!(slot = self.id, pid = w.pid(), "sdk worker restarted");
                    self.worker = Some(w);
                }
                Err(e) => {
                    self.note_failure();
                    tracing::error!(slot = self.id, error = %e, "sdk worker failed to start");
                    return Err(e);
                }
            }
        }
        self.worker.as_mut().ok_or_else(|| SdkError::Spawn {
            reason: "no worker".into(),
            fatal: false,
        })
    }

    /// One call on the current worker; a lost worker is dropped (and killed) here.
    async fn attempt(&mut self, req: &Request) -> Result<Response, Failure> {
        let timeout = self.shared.cfg.request_timeout;
        let worker = self.ensure_worker().await.map_err(Failure::Final)?;
        let pid = worker.pid();
        match worker.call(req, timeout).await {
            Ok(resp) => {
                self.failures = 0;
                Ok(resp)
            }
            Err(CallError::TimedOut) => {
                if let Some(mut w) = self.worker.take() {
                    w.kill().await;
                }
                self.note_failure();
                bump(&self.shared.counters.timeouts);
                let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(
                    slot = self.id,
                    pid,
                    op = req.op(),
                    timeout_ms,
                    "sdk request timed out; killed the worker"
                );
                if is_offline(req) {
                    Err(Failure::Lost(format!(
                        "sdk worker hung: no answer to {} within {timeout_ms}ms; killed",
                        req.op()
                    )))
                } else {
                    Err(Failure::Final(SdkError::Timeout {
                        op: req.op(),
                        after: timeout,
                    }))
                }
            }
            Err(CallError::Crashed(reason)) => {
                self.worker = None;
                self.note_failure();
                bump(&self.shared.counters.crashes);
                tracing::warn!(slot = self.id, pid, op = req.op(), "{reason}");
                Err(Failure::Lost(reason))
            }
        }
    }

    /// A single request, retried once on a fresh worker when it loses its worker.
    async fn execute(&mut self, req: &Request) -> Result<Reply, SdkError> {
        let mut lost_once = false;
        loop {
            match self.attempt(req).await {
                Ok(Response::Reply {
                    ret,
                    data,
                    outindexbuf,
                    is_finish,
                }) => {
                    return Ok(Reply {
                        ret,
                        data,
                        outindexbuf,
                        is_finish,
                    })
                }
                Ok(Response::Refused { reason }) => return Err(SdkError::InvalidArgument(reason)),
                Ok(other) => {
                    // A batch answer to a single call: the worker is out of step with us.
                    if let Some(mut w) = self.worker.take() {
                        w.kill().await;
                    }
                    return Err(SdkError::WorkerCrashed {
                        reason: format!("sdk worker broke the protocol: answered {other:?}"),
                    });
                }
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Lost(reason)) => {
                    if lost_once {
                        return Err(SdkError::WorkerCrashed { reason });
                    }
                    tracing::debug!(slot = self.id, op = req.op(), "retrying on a fresh worker");
                    lost_once = true;
                    bump(&self.shared.counters.retries);
                }
            }
        }
    }

    /// A batch in one frame; if its worker dies or hangs, the items one by one.
    async fn execute_batch(&mut self, items: Arc<[DecryptItem]>) -> Vec<ItemResult> {
        let n = items.len();
        let req = Request::DecryptBatch {
            items: items.clone(),
        };
        match self.attempt(&req).await {
            Ok(Response::BatchReply { items: replies }) if replies.len() == n => {
                return replies.into_iter().map(item_result).collect();
            }
            Ok(Response::Refused { reason }) => {
                tracing::debug!(
                    slot = self.id,
                    items = n,
                    "{reason}; sending the items one by one"
                );
            }
            Ok(other) => {
                if let Some(mut w) = self.worker.take() {
                    w.kill().await;
                }
                bump(&self.shared.counters.crashes);
                tracing::warn!(
                    slot = self.id,
                    "sdk worker broke the protocol: answered {other:?} to a batch of {n}"
                );
            }
            Err(Failure::Final(e)) => return vec![Err(e); n],
            Err(Failure::Lost(reason)) => {
                bump(&self.shared.counters.replayed_batches);
                // The crash or hang itself was logged by `attempt`.
                tracing::debug!(
                    slot = self.id,
                    items = n,
                    "{reason} during a batch; replaying its items one by one"
                );
            }
        }
        let mut out = Vec::with_capacity(n);
        for item in items.iter() {
            let req = Request::DecryptData {
                encrypt_key: item.encrypt_key.clone(),
                encrypt_msg: item.encrypt_msg.clone(),
            };
            out.push(self.execute(&req).await.and_then(|r| {
                item_result(ItemReply::Done {
                    ret: r.ret,
                    data: r.data,
                })
            }));
        }
        out
    }
}

/// `DecryptData` depends on its input only: a hang there is the item's, unlike a network call's.
fn is_offline(req: &Request) -> bool {
    matches!(
        req,
        Request::DecryptData { .. } | Request::DecryptBatch { .. }
    )
}

fn item_result(reply: ItemReply) -> ItemResult {
    match reply {
        ItemReply::Done { ret: 0, data } => Ok(data),
        ItemReply::Done { ret, .. } => Err(SdkError::Sdk {
            op: "DecryptData",
            code: ret,
        }),
        ItemReply::Refused { reason } => Err(SdkError::InvalidArgument(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_items_map_to_results() {
        assert_eq!(
            item_result(ItemReply::Done {
                ret: 0,
                data: b"{}".to_vec()
            })
            .unwrap(),
            b"{}"
        );
        assert!(matches!(
            item_result(ItemReply::Done {
                ret: 10006,
                data: Vec::new()
            }),
            Err(SdkError::Sdk { code: 10006, .. })
        ));
        assert!(matches!(
            item_result(ItemReply::Refused {
                reason: "nul".into()
            }),
            Err(SdkError::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_batch_that_could_not_run_fails_every_item() {
        let mut out = Vec::new();
        extend_batch(&mut out, 3, Err(SdkError::Closed));
        extend_batch(&mut out, 1, Ok(vec![Ok(b"x".to_vec())]));
        assert_eq!(out.len(), 4);
        assert!(out[..3].iter().all(|r| matches!(r, Err(SdkError::Closed))));
        assert!(out[3].is_ok());
    }

    #[test]
    fn only_decrypt_hangs_are_the_items_own() {
        assert!(is_offline(&Request::DecryptData {
            encrypt_key: Vec::new(),
            encrypt_msg: Vec::new()
        }));
        assert!(!is_offline(&Request::Ping));
        assert!(!is_offline(&Request::GetChatData {
            seq: 0,
            limit: 1,
            proxy: Vec::new(),
            passwd: Vec::new(),
            timeout: 1
        }));
    }
}
