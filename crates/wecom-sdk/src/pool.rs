//! [`SdkPool`]: the handle through which the rest of the program calls the SDK. Each call becomes a
//! request to the supervisor ([`crate::supervisor`]), which runs it in a worker process
//! ([`crate::process`]); this module validates arguments, cuts `DecryptData` batches into frames
//! ([`crate::batch`]) and turns return codes into [`SdkError`]s.

use std::sync::Arc;

use wecom_api::Secret;
use wecom_model::api::ChatDataItem;

use crate::batch::{check_item_size, BatchPlan};
use crate::config::SdkPoolConfig;
use crate::protocol::{DecryptItem, Request};
use crate::supervisor::{PoolStats, Reply, Supervisor};
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

/// A pool of SDK worker processes. Cheap to clone (clones share the pool). Dropping the last clone
/// does not stop the workers: call [`SdkPool::shutdown`].
#[derive(Clone)]
pub struct SdkPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    sup: Supervisor,
    proxy: Vec<u8>,
    passwd: Vec<u8>,
    sdk_timeout: i32,
}

impl std::fmt::Debug for SdkPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cfg = self.inner.sup.config();
        f.debug_struct("SdkPool")
            .field("corp_id", &cfg.corp_id)
            .field("library", &cfg.library)
            .field("workers", &cfg.workers)
            .finish_non_exhaustive()
    }
}

impl SdkPool {
    /// Validates the config and starts every worker: each loads the library, resolves every symbol
    /// and runs `NewSdk` + `Init` before this returns. A missing library or symbol, a failing `Init`
    /// or a missing worker executable is an error here (all [`crate::SdkErrorClass::Fatal`]).
    pub async fn start(cfg: SdkPoolConfig) -> Result<Self, SdkError> {
        let cfg = cfg.validated()?;
        let proxy = cfg.proxy.clone().unwrap_or_default().into_bytes();
        let passwd = cfg
            .proxy_password
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec())
            .unwrap_or_default();
        let sdk_timeout = i32::try_from(cfg.sdk_timeout.as_secs()).unwrap_or(i32::MAX);
        let sup = Supervisor::start(cfg).await?;
        let cfg = sup.config();
        tracing::info!(
            corp_id = %cfg.corp_id,
            library = %cfg.library.display(),
            workers = cfg.workers,
            "sdk worker pool started"
        );
        Ok(Self {
            inner: Arc::new(PoolInner {
                sup,
                proxy,
                passwd,
                sdk_timeout,
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
        &self.inner.sup.config().corp_id
    }

    /// The corp secret the workers were initialised with (the gateway's upstream calls use it too).
    pub(crate) fn corp_secret(&self) -> &Secret {
        &self.inner.sup.config().corp_secret
    }

    /// Number of worker processes.
    pub fn workers(&self) -> usize {
        self.inner.sup.config().workers
    }

    /// Counters so far.
    pub fn stats(&self) -> PoolStats {
        self.inner.sup.stats()
    }

    /// `GetChatData(seq, limit)`: the JSON text the SDK returned (items after `seq`, still encrypted).
    /// A non-zero return code is [`SdkError::Sdk`]; the JSON's own `errcode` is not inspected here
    /// (see [`parse_chat_data`] and [`SdkPool::get_chat_items`]).
    pub async fn get_chat_data(&self, seq: u64, limit: u32) -> Result<Vec<u8>, SdkError> {
        let req = self.chat_request(seq, limit)?;
        let reply = check("GetChatData", self.inner.sup.call(req).await)?;
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
        let req = decrypt_request(encrypt_key.as_ref(), encrypt_msg.as_ref())?;
        Ok(check("DecryptData", self.inner.sup.call(req).await)?.data)
    }

    /// [`SdkPool::decrypt`] for a blocking thread (`spawn_blocking`, a std thread): blocks until the
    /// answer. Panics if called from inside an async context.
    pub fn decrypt_blocking(
        &self,
        encrypt_key: impl AsRef<[u8]>,
        encrypt_msg: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, SdkError> {
        let req = decrypt_request(encrypt_key.as_ref(), encrypt_msg.as_ref())?;
        Ok(check("DecryptData", self.inner.sup.call_blocking(req))?.data)
    }

    /// `DecryptData` for many `(encrypt_key, encrypt_msg)` items: one result per item, in order.
    /// The items travel in batch frames (at most [`crate::MAX_BATCH_ITEMS`] each, spread over the
    /// workers), so a worker round trip is paid per batch, not per item. An item that crashes the SDK
    /// fails alone ([`SdkError::WorkerCrashed`]); the others of its batch get their real results.
    pub async fn decrypt_batch<K: AsRef<[u8]>, M: AsRef<[u8]>>(
        &self,
        items: &[(K, M)],
    ) -> Vec<Result<Vec<u8>, SdkError>> {
        let mut plan = BatchPlan::new(items, self.workers());
        let results = self
            .inner
            .sup
            .batches(std::mem::take(&mut plan.batches))
            .await;
        plan.merge(results)
    }

    /// [`SdkPool::decrypt_batch`] for a blocking thread. Panics if called from inside an async
    /// context.
    pub fn decrypt_batch_blocking<K: AsRef<[u8]>, M: AsRef<[u8]>>(
        &self,
        items: &[(K, M)],
    ) -> Vec<Result<Vec<u8>, SdkError>> {
        let mut plan = BatchPlan::new(items, self.workers());
        let results = self
            .inner
            .sup
            .batches_blocking(std::mem::take(&mut plan.batches));
        plan.merge(results)
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
        let reply = check("GetMediaData", self.inner.sup.call(req).await)?;
        Ok(MediaChunk {
            data: reply.data,
            outindexbuf: String::from_utf8_lossy(&reply.outindexbuf).into_owned(),
            is_finish: reply.is_finish,
        })
    }

    /// A round trip through a worker (no SDK call): the pool is alive.
    pub async fn ping(&self) -> Result<(), SdkError> {
        check("Ping", self.inner.sup.call(Request::Ping).await).map(|_| ())
    }

    /// Stops taking requests, lets the workers finish their current request, closes their stdin
    /// (they call `DestroySdk` and exit) and waits for them (killing any still running after 5 s).
    pub async fn shutdown(&self) {
        self.inner.sup.shutdown().await;
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
}

fn decrypt_request(encrypt_key: &[u8], encrypt_msg: &[u8]) -> Result<Request, SdkError> {
    let item = DecryptItem {
        encrypt_key: encrypt_key.to_vec(),
        encrypt_msg: encrypt_msg.to_vec(),
    };
    check_item_size(&item)?;
    Ok(Request::DecryptData {
        encrypt_key: item.encrypt_key,
        encrypt_msg: item.encrypt_msg,
    })
}

/// A non-zero return code becomes [`SdkError::Sdk`].
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
