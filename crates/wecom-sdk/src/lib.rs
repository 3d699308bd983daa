//! Tencent's Finance SDK (`libWeWorkFinanceSdk_C.so`), crash-isolated.
//!
//! The library aborts or segfaults its host process on some inputs (`DecryptData("", "")` dies with
//! SIGABRT), so **it never runs in the pipeline's process**: [`SdkPool`] starts worker processes
//! (`wecom-sdk-worker`, [`worker`]) that load it with `libloading`, create one SDK instance each, and
//! serve binary frames ([`protocol`]) on stdin/stdout. A worker that dies is replaced with backoff; the
//! request it was running is retried once on a fresh worker and then fails as
//! [`SdkError::WorkerCrashed`] ("sdk worker crashed: SIGABRT"). `DecryptData` travels in batches
//! ([`SdkPool::decrypt_batch`]); a batch whose worker dies is replayed item by item, so only the item
//! at fault fails.
//!
//! Code map: [`SdkPool`] (`pool.rs`, the calls) → `batch.rs` (cutting `DecryptData` batches into
//! frames) → `supervisor.rs` (slots, restarts, retries, timeouts, batch replay) → `process.rs` (one
//! worker process: spawn with a clean environment, frame I/O, kill, exit status) → [`worker`] and
//! [`ffi`] in the child.
//!
//! On top of the pool: [`SdkCipher`] (`cipher = "sdk"`, a `wecom_crypto::MessageCipher`),
//! [`SdkPool::get_chat_items`] / [`SdkPool::media_chunk`] (`source = "sdk"`), and the gateway
//! ([`serve_gateway`]) that serves the project's HTTP archive contract from the SDK so the SDK can run
//! on the whitelisted host while the pipeline runs elsewhere (it also forwards the room-metadata and
//! consent calls to Tencent's HTTP API with the corp secret it holds). [`SdkConfig`] is the `[sdk]`
//! section of the config file.
//!
//! Error classes ([`SdkError::class`]; what the cipher makes of them: [`cipher_failure`]):
//!
//! | condition | class |
//! |---|---|
//! | SDK 10001 network, 10002 parse, 10003 system; GetChatData JSON errcode -1 / 45009; a network call timing out; a worker that cannot start for now; the pool shut down | Transient |
//! | SDK 10000, 10005 bad fileid, 10006 decrypt failed, 10008 bad key; a refused argument (a NUL byte, too large) | Item |
//! | the request killed its worker (crash, or a DecryptData hang) on its first try and again on a fresh worker | Crashed |
//! | SDK 10010 data expired | Expired (dead-letter with that reason) |
//! | SDK 10009 ip not whitelisted, 10011 certificate, unknown codes; JSON errcode 40001 bad secret and others; library or symbol missing; Init failing | Fatal |
//!
//! **Invariants**: the only `unsafe` is in [`ffi`] (worker side); the corp secret reaches workers
//! through an environment variable, never argv, and no log line, error or `Debug` output; workers
//! inherit nothing else of the parent's environment but the loader's and locale variables
//! ([`INHERITED_ENV`]); workers log to stderr, which the pool forwards to `tracing`.

pub mod ffi;
pub mod protocol;
pub mod worker;

mod batch;
mod cipher;
mod config;
mod error;
mod gateway;
mod pool;
mod process;
mod supervisor;

pub use batch::{MAX_BATCH_BYTES, MAX_BATCH_ITEMS};
pub use cipher::{cipher_failure, SdkCipher};
pub use config::{
    GatewayConfig, SdkConfig, SdkConfigError, SdkPoolConfig, DEFAULT_UPSTREAM_BASE_URL,
    PROXY_PASSWORD_ENV, WORKER_SUBCOMMAND,
};
pub use error::{sdk_code_meaning, SdkError, SdkErrorClass};
pub use gateway::{serve_gateway, start_gateway, GatewayHandle};
pub use pool::{
    index_for_offset, offset_of_index, parse_chat_data, MediaChunk, SdkPool, MEDIA_CHUNK_BYTES,
};
pub use process::{describe_exit, INHERITED_ENV};
pub use supervisor::PoolStats;
pub use wecom_api::Secret;

/// File name of the worker executable ([`SdkPoolConfig::worker_exe`] defaults to this file next to
/// the current executable).
pub const WORKER_EXE_NAME: &str = "wecom-sdk-worker";

/// The test stand-in library (`wecom-sdk-standin`) calls `abort()` in `DecryptData` when the plaintext
/// it would return contains this text, as the real library dies on some inputs. The simulator can put
/// it into messages to exercise crash isolation end to end.
pub const STANDIN_ABORT_MARKER: &str = "WECOM-STANDIN-ABORT";
