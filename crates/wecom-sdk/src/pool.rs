//! The supervisor: a fixed number of worker slots, each owning at most one worker process and running
//! one request at a time, fed from one bounded queue.
//!
//! Crash handling, per slot: a request whose worker dies (signal, exit, broken pipe, malformed frame)
//! is retried once on a fresh worker of the same slot (after the restart backoff); if that one dies
//! too the caller gets [`SdkError::WorkerCrashed`] ("sdk worker crashed: SIGABRT"). A request that
//! outlives `request_timeout` gets its worker killed and [`SdkError::Timeout`], without a retry.
//! Replacement workers are started lazily, when the slot takes its next request, after a backoff
//! that doubles with consecutive failures and resets on the first success.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;
use wecom_model::api::ChatDataItem;

use crate::config::SdkPoolConfig;
use crate::protocol::{self, Request, Response};
use crate::worker::SECRET_ENV;
use crate::SdkError;

/// Largest chunk `GetMediaData` returns, and the span of the index buffers this crate makes.
pub const MEDIA_CHUNK_BYTES: u64 = 512 * 1024;

/// One `GetMediaData` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaChunk {
    /// At most 512 KiB of the file.
    pub data: Vec<u8>,
    /// The index buffer for the next chunk (`Range:bytes=N-M`).
    pub outindexbuf: String,
    /// The file is complete with this chunk.
    pub is_finish: bool,
}

/// Counters of the pool since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub requests: u64,
    /// Workers started (the initial ones included).
    pub spawns: u64,
    /// Workers that died under a request.
    pub crashes: u64,
    /// Requests that hit the timeout (their worker was killed).
    pub timeouts: u64,
    /// Requests retried on a fresh worker after a crash.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    spawns: AtomicU64,
    crashes: AtomicU64,
    timeouts: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The reply of a worker to one request (ret may be non-zero).
struct Reply {
    ret: i32,
    data: Vec<u8>,
    outindexbuf: Vec<u8>,
    is_finish: bool,
}

struct Job {
    req: Request,
    reply: oneshot::Sender<Result<Reply, SdkError>>,
}

/// What every slot needs to start workers.
struct Spec {
    cfg: SdkPoolConfig,
    counters: Counters,
}

/// A pool of SDK worker processes. Cheap to clone (clones share the pool). Dropping the last clone
/// does not stop the workers: call [`SdkPool::shutdown`].
#[derive(Clone)]
pub struct SdkPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    tx: mpsc::Sender<Job>,
    cancel: CancellationToken,
    spec: Arc<Spec>,
    proxy: Vec<u8>,
    passwd: Vec<u8>,
    sdk_timeout: i32,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for SdkPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkPool")
            .field("corp_id", &self.inner.spec.cfg.corp_id)
            .field("library", &self.inner.spec.cfg.library)
            .field("workers", &self.inner.spec.cfg.workers)
            .finish_non_exhaustive()
    }
}

impl SdkPool {
    /// Validates the config and starts every worker: each loads the library, resolves every symbol
    /// and runs `NewSdk` + `Init` before this returns. A missing library or symbol, a failing `Init`
    /// or a missing worker executable is an error here (all [`crate::SdkErrorClass::Fatal`]).
    pub async fn start(cfg: SdkPoolConfig) -> Result<Self, SdkError> {
        let cfg = cfg.validated()?;
        let spec = Arc::new(Spec {
            counters: Counters::default(),
            cfg,
        });
        let n = spec.cfg.workers;
        let mut slots = Vec::with_capacity(n);
        for id in 0..n {
            let worker = Worker::spawn(&spec, id).await?;
            slots.push(Slot {
                id,
                spec: spec.clone(),
                worker: Some(worker),
                failures: 0,
                not_before: Instant::now(),
            });
        }
        let (tx, rx) = mpsc::channel(spec.cfg.queue_capacity);
        let rx = Arc::new(Mutex::new(rx));
        let cancel = CancellationToken::new();
        let tasks = slots
            .into_iter()
            .map(|slot| tokio::spawn(slot.run(rx.clone(), cancel.clone())))
            .collect();
        let cfg = &spec.cfg;
        let sdk_timeout = i32::try_from(cfg.sdk_timeout.as_secs()).unwrap_or(i32::MAX);
        tracing::info!(
            corp_id = %cfg.corp_id,
            library = %cfg.library.display(),
            workers = n,
            "sdk worker pool started"
        );
        Ok(Self {
            inner: Arc::new(PoolInner {
                tx,
                cancel,
                proxy: cfg.proxy.clone().unwrap_or_default().into_bytes(),
                passwd: cfg
                    .proxy_password
                    .as_ref()
                    .map(|s| s.expose().as_bytes().to_vec())
                    .unwrap_or_default(),
                sdk_timeout,
                spec,
                tasks: std::sync::Mutex::new(tasks),
            }),
        })
    }

    /// What `wecom-archive check` needs: one worker loads the library, resolves every symbol of the
    /// header, runs `NewSdk` + `Init` and answers a ping; then it is stopped.
    pub async fn check(mut cfg: SdkPoolConfig) -> Result<(), SdkError> {
        cfg.workers = 1;
        let pool = Self::start(cfg).await?;
        let pinged = pool.ping().await;
        pool.shutdown().await;
        pinged
    }

    /// The corp this pool's SDK instances were initialised for.
    pub fn corp_id(&self) -> &str {
        &self.inner.spec.cfg.corp_id
    }

    /// Number of worker processes.
    pub fn workers(&self) -> usize {
        self.inner.spec.cfg.workers
    }

    /// Counters so far.
    pub fn stats(&self) -> PoolStats {
        let c = &self.inner.spec.counters;
        PoolStats {
            requests: c.requests.load(Ordering::Relaxed),
            spawns: c.spawns.load(Ordering::Relaxed),
            crashes: c.crashes.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// `GetChatData(seq, limit)`: the JSON text the SDK returned (items after `seq`, still encrypted).
    /// A non-zero return code is [`SdkError::Sdk`]; the JSON's own `errcode` is not inspected here
    /// (see [`parse_chat_data`] and [`SdkPool::get_chat_items`]).
    pub async fn get_chat_data(&self, seq: u64, limit: u32) -> Result<Vec<u8>, SdkError> {
        let req = self.chat_request(seq, limit)?;
        let reply = check("GetChatData", self.submit(req).await)?;
        Ok(reply.data)
    }

    /// [`SdkPool::get_chat_data`] parsed: the items, or the JSON's non-zero `errcode` as
    /// [`SdkError::Api`].
    pub async fn get_chat_items(
        &self,
        seq: u64,
        limit: u32,
    ) -> Result<Vec<ChatDataItem>, SdkError> {
        let json = self.get_chat_data(seq, limit).await?;
        parse_chat_data(&json)
    }

    /// `DecryptData(encrypt_key, encrypt_msg)`: the message JSON. `encrypt_key` is the random key
    /// already unwrapped with the corp's private key.
    pub async fn decrypt(
        &self,
        encrypt_key: impl AsRef<[u8]>,
        encrypt_msg: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, SdkError> {
        let req = Request::DecryptData {
            encrypt_key: encrypt_key.as_ref().to_vec(),
            encrypt_msg: encrypt_msg.as_ref().to_vec(),
        };
        Ok(check("DecryptData", self.submit(req).await)?.data)
    }

    /// [`SdkPool::decrypt`] for a blocking thread (`spawn_blocking`, a std thread): blocks until the
    /// answer. Panics if called from inside an async context.
    pub fn decrypt_blocking(
        &self,
        encrypt_key: impl AsRef<[u8]>,
        encrypt_msg: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, SdkError> {
        let req = Request::DecryptData {
            encrypt_key: encrypt_key.as_ref().to_vec(),
            encrypt_msg: encrypt_msg.as_ref().to_vec(),
        };
        Ok(check("DecryptData", self.submit_blocking(req))?.data)
    }

    /// `GetMediaData(indexbuf, sdkfileid)`: one chunk. Pass `""` first, then the previous chunk's
    /// `outindexbuf`, until `is_finish` (see [`index_for_offset`] to resume at a byte offset).
    pub async fn media_chunk(
        &self,
        sdkfileid: &str,
        indexbuf: &str,
    ) -> Result<MediaChunk, SdkError> {
        if sdkfileid.is_empty() {
            return Err(SdkError::InvalidArgument("sdkfileid is empty".into()));
        }
        let req = Request::GetMediaData {
            indexbuf: indexbuf.as_bytes().to_vec(),
            sdkfileid: sdkfileid.as_bytes().to_vec(),
            proxy: self.inner.proxy.clone(),
            passwd: self.inner.passwd.clone(),
            timeout: self.inner.sdk_timeout,
        };
        let reply = check("GetMediaData", self.submit(req).await)?;
        Ok(MediaChunk {
            data: reply.data,
            outindexbuf: String::from_utf8_lossy(&reply.outindexbuf).into_owned(),
            is_finish: reply.is_finish,
        })
    }

    /// A round trip through a worker (no SDK call): the pool is alive.
    pub async fn ping(&self) -> Result<(), SdkError> {
        check("Ping", self.submit(Request::Ping).await).map(|_| ())
    }

    /// Stops taking requests, lets the workers finish their current request, closes their stdin
    /// (they call `DestroySdk` and exit) and waits for them (killing any still running after 5 s).
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in tasks {
            let _ = t.await;
        }
    }

    fn chat_request(&self, seq: u64, limit: u32) -> Result<Request, SdkError> {
        if !(1..=1000).contains(&limit) {
            return Err(SdkError::InvalidArgument(format!(
                "limit must be within 1..=1000, got {limit}"
            )));
        }
        Ok(Request::GetChatData {
            seq,
            limit,
            proxy: self.inner.proxy.clone(),
            passwd: self.inner.passwd.clone(),
            timeout: self.inner.sdk_timeout,
        })
    }

    async fn submit(&self, req: Request) -> Result<Reply, SdkError> {
        if self.inner.cancel.is_cancelled() {
            return Err(SdkError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Job { req, reply })
            .await
            .map_err(|_| SdkError::Closed)?;
        rx.await.map_err(|_| SdkError::Closed)?
    }

    fn submit_blocking(&self, req: Request) -> Result<Reply, SdkError> {
        if self.inner.cancel.is_cancelled() {
            return Err(SdkError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .blocking_send(Job { req, reply })
            .map_err(|_| SdkError::Closed)?;
        rx.blocking_recv().map_err(|_| SdkError::Closed)?
    }
}

/// A non-zero return code becomes [`SdkError::Sdk`]; a refused request [`SdkError::InvalidArgument`].
fn check(op: &'static str, reply: Result<Reply, SdkError>) -> Result<Reply, SdkError> {
    let reply = reply?;
    if reply.ret != 0 {
        return Err(SdkError::Sdk {
            op,
            code: reply.ret,
        });
    }
    Ok(reply)
}

/// Reads `GetChatData`'s JSON: the items, or its non-zero `errcode` as [`SdkError::Api`].
pub fn parse_chat_data(json: &[u8]) -> Result<Vec<ChatDataItem>, SdkError> {
    let resp: wecom_model::api::ChatDataResponse =
        serde_json::from_slice(json).map_err(|e| SdkError::Malformed {
            reason: e.to_string(),
        })?;
    if resp.errcode != 0 {
        return Err(SdkError::Api {
            errcode: resp.errcode,
            errmsg: resp.errmsg,
        });
    }
    Ok(resp.chatdata)
}

/// The index buffer that makes `GetMediaData` start at byte `offset`: `""` for 0, else
/// `Range:bytes=N-M` spanning one chunk, the format of the SDK's own `outindexbuf`.
pub fn index_for_offset(offset: u64) -> String {
    if offset == 0 {
        String::new()
    } else {
        format!(
            "Range:bytes={offset}-{}",
            offset.saturating_add(MEDIA_CHUNK_BYTES - 1)
        )
    }
}

/// The start offset an index buffer (`Range:bytes=N-M` or `Range:bytes=N-`) points at; 0 for `""`.
pub fn offset_of_index(indexbuf: &str) -> Option<u64> {
    let s = indexbuf.trim();
    if s.is_empty() {
        return Some(0);
    }
    let rest = s
        .strip_prefix("Range:")
        .or_else(|| s.strip_prefix("Range: "))?
        .trim_start()
        .strip_prefix("bytes=")?;
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

/// Names the way a worker ended: `sdk worker crashed: SIGABRT`, `… exit status 3`.
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGABRT => "SIGABRT".to_owned(),
            libc::SIGSEGV => "SIGSEGV".to_owned(),
            libc::SIGBUS => "SIGBUS".to_owned(),
            libc::SIGILL => "SIGILL".to_owned(),
            libc::SIGFPE => "SIGFPE".to_owned(),
            libc::SIGKILL => "SIGKILL".to_owned(),
            libc::SIGTERM => "SIGTERM".to_owned(),
            libc::SIGPIPE => "SIGPIPE".to_owned(),
            other => format!("signal {other}"),
        };
        format!("sdk worker crashed: {name}")
    } else {
        match status.code() {
            Some(code) => format!("sdk worker crashed: exit status {code}"),
            None => "sdk worker crashed".to_owned(),
        }
    }
}

/// Why a call on a worker failed.
enum CallError {
    /// The worker died or broke the protocol; the reason names the signal or status.
    Crashed(String),
    TimedOut,
}

/// One live worker process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::BufReader<ChildStdout>,
    pid: u32,
    next_id: u64,
}

impl Worker {
    async fn spawn(spec: &Spec, slot: usize) -> Result<Worker, SdkError> {
        let cfg = &spec.cfg;
        let exe = cfg
            .worker_exe
            .as_ref()
            .ok_or_else(|| SdkError::Config("worker_exe unresolved".into()))?;
        let mut cmd = Command::new(exe);
        cmd.args(&cfg.worker_args)
            .arg("--library")
            .arg(&cfg.library)
            .arg("--corp-id")
            .arg(&cfg.corp_id)
            .env(SECRET_ENV, cfg.corp_secret.expose())
            .envs(cfg.worker_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| SdkError::Spawn {
            reason: format!("{}: {e}", exe.display()),
            fatal: e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::PermissionDenied,
        })?;
        Counters::bump(&spec.counters.spawns);
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SdkError::Spawn {
                reason: "worker pipes missing".into(),
                fatal: true,
            });
        };
        tokio::spawn(forward_stderr(stderr, slot, pid));
        let mut w = Worker {
            child,
            stdin,
            stdout: tokio::io::BufReader::with_capacity(1 << 20, stdout),
            pid,
            next_id: 1,
        };
        let first =
            tokio::time::timeout(cfg.startup_timeout, protocol::read_frame(&mut w.stdout)).await;
        let body = match first {
            Err(_) => {
                w.kill().await;
                return Err(SdkError::Spawn {
                    reason: format!(
                        "worker did not load the library within {}s",
                        cfg.startup_timeout.as_secs_f64()
                    ),
                    fatal: false,
                });
            }
            Ok(Err(_)) => {
                let reason = w.reap().await;
                return Err(SdkError::Spawn {
                    reason: format!("{reason} while loading the library"),
                    fatal: false,
                });
            }
            Ok(Ok(body)) => body,
        };
        match protocol::decode_response(&body) {
            Ok((_, Response::Ready { init_ret: 0 })) => {
                tracing::debug!(slot, pid, "sdk worker ready");
                Ok(w)
            }
            Ok((_, Response::Ready { init_ret })) => {
                w.kill().await;
                Err(SdkError::Init {
                    code: init_ret,
                    corp_id: cfg.corp_id.clone(),
                })
            }
            Ok((_, Response::StartupFailed { reason })) => {
                w.kill().await;
                Err(SdkError::Library { reason })
            }
            Ok((_, other)) => {
                w.kill().await;
                Err(SdkError::Spawn {
                    reason: format!("unexpected first frame {other:?}"),
                    fatal: true,
                })
            }
            Err(e) => {
                w.kill().await;
                Err(SdkError::Spawn {
                    reason: format!("malformed first frame: {e}"),
                    fatal: true,
                })
            }
        }
    }

    async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Reply, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = protocol::encode_request(id, req);
        let exchange = async {
            self.stdin.write_all(&frame).await?;
            self.stdin.flush().await?;
            protocol::read_frame(&mut self.stdout).await
        };
        let body = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return Err(CallError::TimedOut),
            Ok(Err(_)) => return Err(CallError::Crashed(self.reap().await)),
            Ok(Ok(body)) => body,
        };
        match protocol::decode_response(&body) {
            Ok((
                rid,
                Response::Reply {
                    ret,
                    data,
                    outindexbuf,
                    is_finish,
                },
            )) if rid == id => Ok(Reply {
                ret,
                data,
                outindexbuf,
                is_finish,
            }),
            Ok((rid, Response::Refused { reason })) if rid == id => Ok(Reply {
                ret: REFUSED,
                data: reason.into_bytes(),
                outindexbuf: Vec::new(),
                is_finish: true,
            }),
            Ok((rid, other)) => {
                self.kill().await;
                Err(CallError::Crashed(format!(
                    "sdk worker broke the protocol: answered {other:?} with id {rid} to request {id}"
                )))
            }
            Err(e) => {
                self.kill().await;
                Err(CallError::Crashed(format!(
                    "sdk worker broke the protocol: {e}"
                )))
            }
        }
    }

    /// Waits for a worker whose pipe broke (it is dying) and names how it ended.
    async fn reap(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(Ok(status)) => describe_exit(status),
            Ok(Err(e)) => format!("sdk worker crashed (status unknown: {e})"),
            Err(_) => {
                self.kill().await;
                "sdk worker closed its pipe and did not exit; killed".to_owned()
            }
        }
    }

    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Orderly stop: close stdin (the worker destroys its SDK and exits), kill after 5 s.
    async fn stop(mut self) {
        let _ = self.stdin.shutdown().await;
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// Sentinel return code for a request the worker refused without calling the SDK.
const REFUSED: i32 = i32::MIN;

/// Worker stderr lines become log events (the worker never logs the secret).
async fn forward_stderr(stderr: tokio::process::ChildStderr, slot: usize, pid: u32) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "wecom_sdk::worker", slot, pid, "{line}");
    }
}

/// One worker slot: runs requests one at a time on its worker, replacing the worker when it dies.
struct Slot {
    id: usize,
    spec: Arc<Spec>,
    worker: Option<Worker>,
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
            Counters::bump(&self.spec.counters.requests);
            let result = self.execute(&job.req).await;
            let result = result.and_then(|r| {
                if r.ret == REFUSED {
                    Err(SdkError::InvalidArgument(
                        String::from_utf8_lossy(&r.data).into_owned(),
                    ))
                } else {
                    Ok(r)
                }
            });
            let _ = job.reply.send(result);
        }
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
    }

    fn note_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let cfg = &self.spec.cfg;
        let exp = self.failures.saturating_sub(1).min(16);
        let delay = cfg
            .restart_backoff
            .saturating_mul(1u32 << exp)
            .min(cfg.max_restart_backoff);
        self.not_before = Instant::now() + delay;
    }

    async fn ensure_worker(&mut self) -> Result<&mut Worker, SdkError> {
        if self.worker.is_none() {
            tokio::time::sleep_until(self.not_before.into()).await;
            match Worker::spawn(&self.spec, self.id).await {
                Ok(w) => {
                    tracing::info!(slot = self.id, pid = w.pid, "sdk worker restarted");
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

    async fn execute(&mut self, req: &Request) -> Result<Reply, SdkError> {
        let timeout = self.spec.cfg.request_timeout;
        let mut crashed_once = false;
        loop {
            let worker = self.ensure_worker().await?;
            let pid = worker.pid;
            match worker.call(req, timeout).await {
                Ok(reply) => {
                    self.failures = 0;
                    return Ok(reply);
                }
                Err(CallError::TimedOut) => {
                    if let Some(mut w) = self.worker.take() {
                        w.kill().await;
                    }
                    self.note_failure();
                    Counters::bump(&self.spec.counters.timeouts);
                    tracing::warn!(
                        slot = self.id,
                        pid,
                        op = req.op(),
                        timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                        "sdk request timed out; killed the worker"
                    );
                    return Err(SdkError::Timeout {
                        op: req.op(),
                        after: timeout,
                    });
                }
                Err(CallError::Crashed(reason)) => {
                    self.worker = None;
                    self.note_failure();
                    Counters::bump(&self.spec.counters.crashes);
                    tracing::warn!(
                        slot = self.id,
                        pid,
                        op = req.op(),
                        retry = !crashed_once,
                        "{reason}"
                    );
                    if crashed_once {
                        return Err(SdkError::WorkerCrashed { reason });
                    }
                    crashed_once = true;
                    Counters::bump(&self.spec.counters.retries);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_buffers() {
        assert_eq!(index_for_offset(0), "");
        assert_eq!(index_for_offset(524288), "Range:bytes=524288-1048575");
        for (s, want) in [
            ("", Some(0)),
            ("Range:bytes=524288-1048575", Some(524288)),
            ("Range:bytes=7-", Some(7)),
            ("bytes=7-", None),
            ("Range:bytes=x-1", None),
        ] {
            assert_eq!(offset_of_index(s), want, "{s}");
        }
    }

    #[test]
    fn exit_descriptions() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(libc::SIGABRT)),
            "sdk worker crashed: SIGABRT"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(libc::SIGSEGV)),
            "sdk worker crashed: SIGSEGV"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "sdk worker crashed: exit status 3"
        );
    }

    #[test]
    fn chat_data_parsing() {
        let items = parse_chat_data(br#"{"errcode":0,"errmsg":"ok","chatdata":[{"seq":3,"msgid":"m","publickey_ver":1,"encrypt_random_key":"k","encrypt_chat_msg":"c"}]}"#).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].seq, 3);
        let err = parse_chat_data(br#"{"errcode":301052,"errmsg":"expired"}"#).unwrap_err();
        assert!(matches!(
            err,
            SdkError::Api {
                errcode: 301052,
                ..
            }
        ));
        assert!(matches!(
            parse_chat_data(b"{\"errcode\":0,").unwrap_err(),
            SdkError::Malformed { .. }
        ));
    }
}
