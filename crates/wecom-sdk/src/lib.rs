//! Tencent's Finance SDK (`libWeWorkFinanceSdk_C.so`), crash-isolated.
//!
//! The library aborts or segfaults its host process on some inputs (`DecryptData("", "")` dies with
//! SIGABRT), so **it never runs in the pipeline's process**: [`SdkPool`] starts worker processes
//! (`wecom-sdk-worker`, [`worker`]) that load it with `libloading`, create one SDK instance each, and
//! serve binary frames ([`protocol`]) on stdin/stdout. A worker that dies is replaced with backoff; the
//! request it was running is retried once on a fresh worker and then fails as
//! [`SdkError::WorkerCrashed`] ("sdk worker crashed: SIGABRT"), an item-level error.
//!
//! On top of the pool: [`SdkCipher`] (`cipher = "sdk"`, a `wecom_crypto::MessageCipher`),
//! [`SdkPool::get_chat_items`] / [`SdkPool::media_chunk`] (`source = "sdk"`), and the gateway
//! ([`serve_gateway`]) that serves the project's HTTP archive contract from the SDK so the SDK can run
//! on the whitelisted host while the pipeline runs elsewhere.
//!
//! Error classes ([`SdkError::class`]):
//!
//! | condition | class |
//! |---|---|
//! | SDK 10001 network, 10002 parse, 10003 system; GetChatData JSON errcode -1 / 45009; a network call timing out | Retriable |
//! | SDK 10000, 10005 bad fileid, 10006 decrypt failed, 10008 bad key; a NUL in an argument; worker crashed twice; DecryptData timing out | Item |
//! | SDK 10010 data expired | Expired (dead-letter with that reason) |
//! | SDK 10009 ip not whitelisted, 10011 certificate, unknown codes; JSON errcode 40001 bad secret and others; library or symbol missing; Init failing | Fatal |
//!
//! **Invariants**: the only `unsafe` is in [`ffi`] (worker side); the corp secret reaches workers
//! through an environment variable, never argv, and no log line, error or `Debug` output; workers log
//! to stderr, which the pool forwards to `tracing`.

pub mod ffi;
pub mod protocol;
pub mod worker;

mod cipher;
mod config;
mod error;
mod gateway;
mod pool;

pub use cipher::SdkCipher;
pub use config::{GatewayConfig, SdkPoolConfig};
pub use error::{sdk_code_meaning, SdkError, SdkErrorClass};
pub use gateway::{serve_gateway, start_gateway, GatewayHandle};
pub use pool::{
    describe_exit, index_for_offset, offset_of_index, parse_chat_data, MediaChunk, PoolStats,
    SdkPool, MEDIA_CHUNK_BYTES,
};
pub use wecom_api::Secret;

/// File name of the worker executable ([`SdkPoolConfig::worker_exe`] defaults to this file next to
/// the current executable).
pub const WORKER_EXE_NAME: &str = "wecom-sdk-worker";
