//! [`Ledger`]: the raw archive of one corp, and its write path for pages (checkpoints: checkpoint.rs).
//!
//! One writer per stream (the pipeline's stream lock guarantees it); within a process, writes to one
//! stream are serialized by a per-stream mutex, and different streams proceed in parallel. The chain head
//! of a stream is read from the store on its first write (the newest manifest entry) and then kept in
//! memory; any failed write forgets it, so the next one re-reads what really landed.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::debug;
use wecom_model::api::ChatDataItem;
use wecom_store::{now_unix_ms, Objects};

use crate::config::ArchiveConfig;
use crate::error::LedgerError;
use crate::layout::{self, file_name, parse_pair, parse_range, StreamKeys};
use crate::lock::{LockedPuts, Retention};
use crate::manifest::{parse_entry, sha256_hex, ManifestEntry, ENTRY_SCHEMA, GENESIS};
use crate::signing::{PublicKey, SigningKey};
use crate::store::{Put, Store};

/// How checkpoints are signed.
pub struct Signing {
    pub key: SigningKey,
    /// A checkpoint is signed after a write once this long has passed since the last one (and after a
    /// stream's first write in a process).
    pub checkpoint_every: Duration,
}

/// The raw archive of one corp. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Ledger {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) corp_id: String,
    pub(crate) corp_enc: String,
    pub(crate) signing: Option<Signing>,
    pub(crate) streams: Mutex<HashMap<String, Arc<tokio::sync::Mutex<StreamState>>>>,
    pub(crate) key_published: tokio::sync::OnceCell<()>,
    /// Per room: the newest snapshot this process stored or saw (taken_at_ms, short hash).
    pub(crate) rooms: Mutex<HashMap<String, (u64, String)>>,
}

/// A stream's chain head and checkpoint bookkeeping; `head` is `None` until read from the store.
#[derive(Default)]
pub(crate) struct StreamState {
    pub(crate) head: Option<Head>,
    pub(crate) checkpointed_entries: u64,
    pub(crate) last_checkpoint: Option<Instant>,
}

#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) entries: u64,
    pub(crate) hash: String,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
    pub(crate) items: u64,
}

impl Head {
    fn empty() -> Self {
        Head {
            entries: 0,
            hash: GENESIS.to_owned(),
            first_seq: 0,
            last_seq: 0,
            items: 0,
        }
    }
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("corp_id", &self.inner.corp_id)
            .field("store", self.inner.store.objects())
            .field("object_lock", &self.inner.store.is_locked())
            .field(
                "signing_key_id",
                &self
                    .inner
                    .signing
                    .as_ref()
                    .map(|s| s.key.public_key().key_id()),
            )
            .finish()
    }
}

impl Ledger {
    /// Builds the archive of `[archive]` for `corp_id`: the store (a local root defaults to
    /// `data_dir`), the Object Lock signer, the signing key (read from its file: blocking, call at
    /// startup). Validates the section first.
    pub fn open(cfg: &ArchiveConfig, data_dir: &Path, corp_id: &str) -> Result<Self, LedgerError> {
        cfg.validate()?;
        let objects = cfg.store.build("archive.store", data_dir, true)?;
        let lock = match &cfg.object_lock {
            Some(lock) => Some(LockedPuts::new(&cfg.store, lock)?),
            None => None,
        };
        let signing = match &cfg.signing {
            Some(s) => Some(Signing {
                key: SigningKey::from_pem_file(&s.key_file)?,
                checkpoint_every: Duration::from_secs(s.checkpoint_interval_secs),
            }),
            None => None,
        };
        Self::build(Store::new(objects, lock), corp_id, signing)
    }

    /// An archive over any store (tests use [`Objects::in_memory`]), without Object Lock.
    pub fn new(
        objects: Objects,
        corp_id: &str,
        signing: Option<Signing>,
    ) -> Result<Self, LedgerError> {
        Self::build(Store::new(objects, None), corp_id, signing)
    }

    fn build(store: Store, corp_id: &str, signing: Option<Signing>) -> Result<Self, LedgerError> {
        let corp_enc = layout::component("corp_id", corp_id)?;
        Ok(Ledger {
            inner: Arc::new(Inner {
                store,
                corp_id: corp_id.to_owned(),
                corp_enc,
                signing,
                streams: Mutex::new(HashMap::new()),
                key_published: tokio::sync::OnceCell::new(),
                rooms: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn corp_id(&self) -> &str {
        &self.inner.corp_id
    }

    /// The store's root location (`file:///…/`, `s3://bucket/`), for logs.
    pub fn location(&self) -> &str {
        self.inner.store.objects().location_base()
    }

    /// The public half of the signing key, if checkpoints are signed.
    pub fn public_key(&self) -> Option<&PublicKey> {
        self.inner.signing.as_ref().map(|s| s.key.public_key())
    }

    /// The Object Lock retention S3 reports for an object key of this archive (a segment's
    /// [`ManifestEntry::key`], …); `None` without `[archive.object_lock]` or when the object has none.
    pub async fn retention(&self, key: &str) -> Result<Option<Retention>, LedgerError> {
        self.inner.store.retention(key).await
    }

    pub(crate) fn stream_state(&self, stream: &str) -> Arc<tokio::sync::Mutex<StreamState>> {
        let mut streams = self
            .inner
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        streams.entry(stream.to_owned()).or_default().clone()
    }

    /// Archives one page: items ascending by seq (de-duplicated by the fetcher). Items at or below
    /// the stream's archived head are already archived and skipped (a re-fetch after a crash); the rest
    /// become one segment and its manifest entry, written in that order and both before this returns.
    /// `Ok(None)` when nothing was new. Safe to call again with the same page after an error.
    pub async fn write_page(
        &self,
        stream: &str,
        items: &[ChatDataItem],
    ) -> Result<Option<ManifestEntry>, LedgerError> {
        let keys = StreamKeys::new(&self.inner.corp_enc, stream)?;
        let state = self.stream_state(stream);
        let mut st = state.lock().await;
        // On error the head is forgotten (a put that reported failure may still have landed).
        let entry = self.write_locked(&keys, stream, items, &mut st).await?;
        if entry.is_some() {
            self.maybe_checkpoint(&keys, stream, &mut st).await;
        }
        Ok(entry)
    }

    async fn write_locked(
        &self,
        keys: &StreamKeys,
        stream: &str,
        items: &[ChatDataItem],
        st: &mut StreamState,
    ) -> Result<Option<ManifestEntry>, LedgerError> {
        let head = self.head(keys, st).await?;
        let fresh: Vec<ChatDataItem> = items
            .iter()
            .filter(|i| i.seq > head.last_seq)
            .cloned()
            .collect();
        let (Some(first), Some(last)) = (fresh.first(), fresh.last()) else {
            debug!(corp = %self.inner.corp_id, stream, archived_to = head.last_seq, "page already archived");
            return Ok(None);
        };
        let (first_seq, last_seq) = (first.seq, last.seq);
        if let Some(w) = fresh.windows(2).find(|w| w[1].seq <= w[0].seq) {
            return Err(self.page_err(
                stream,
                format!(
                    "items must ascend by seq: seq {} follows seq {}",
                    w[1].seq, w[0].seq
                ),
            ));
        }
        let count = fresh.len() as u64;
        // Until the entry is written the head in memory may be stale: if this future fails or is
        // dropped half-way (a cancelled caller), the next write re-reads it from the store.
        st.head = None;
        let encoded = tokio::task::spawn_blocking(move || crate::segment::encode(&fresh))
            .await
            .map_err(|source| LedgerError::Blocking { source })?
            .map_err(|reason| self.page_err(stream, reason))?;
        let bytes = encoded.gz.len() as u64;
        let key = self
            .put_segment(
                keys,
                first_seq,
                last_seq,
                Bytes::from(encoded.gz),
                &encoded.sha256,
            )
            .await?;
        let mut entry = ManifestEntry {
            schema: ENTRY_SCHEMA.to_owned(),
            corp_id: self.inner.corp_id.clone(),
            stream: stream.to_owned(),
            index: head.entries,
            key,
            first_seq,
            last_seq,
            items: count,
            items_total: head.items + count,
            bytes,
            sha256: encoded.sha256,
            written_at_ms: now_unix_ms(),
            prev: head.hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        let entry_key = keys.entry(first_seq, last_seq);
        if self
            .inner
            .store
            .put_create(&entry_key, to_json(&entry)?)
            .await?
            == Put::Existed
        {
            return Err(LedgerError::ConcurrentWriter {
                location: self.inner.store.location(&entry_key),
            });
        }
        st.head = Some(Head {
            entries: head.entries + 1,
            hash: entry.hash.clone(),
            first_seq: if head.entries == 0 {
                first_seq
            } else {
                head.first_seq
            },
            last_seq,
            items: entry.items_total,
        });
        debug!(corp = %self.inner.corp_id, stream, first_seq, last_seq, index = entry.index, "raw page archived");
        Ok(Some(entry))
    }

    fn page_err(&self, stream: &str, reason: String) -> LedgerError {
        LedgerError::Page {
            corp_id: self.inner.corp_id.clone(),
            stream: stream.to_owned(),
            reason,
        }
    }

    /// Writes the segment under its plain key; if a crash left an object there, identical bytes are
    /// reused and other bytes get a key of their own (with the hash in its name).
    async fn put_segment(
        &self,
        keys: &StreamKeys,
        first: u64,
        last: u64,
        gz: Bytes,
        sha256: &str,
    ) -> Result<String, LedgerError> {
        let store = &self.inner.store;
        let plain = keys.segment(first, last);
        for key in [plain, keys.segment_alt(first, last, sha256)] {
            if store.put_create(&key, gz.clone()).await? == Put::Created {
                return Ok(key);
            }
            let existing = match store.get(&key).await? {
                Some(b) => sha256_blocking(b).await?,
                None => String::new(),
            };
            if existing == sha256 {
                debug!(corp = %self.inner.corp_id, key = %key, "reusing an identical segment left by an interrupted write");
                return Ok(key);
            }
        }
        Err(LedgerError::corrupt(
            store.location(&keys.segment_alt(first, last, sha256)),
            "holds other bytes than the page being archived, although its name carries their hash",
        ))
    }

    /// The stream's head, read from the store the first time.
    pub(crate) async fn head(
        &self,
        keys: &StreamKeys,
        st: &mut StreamState,
    ) -> Result<Head, LedgerError> {
        if let Some(h) = &st.head {
            return Ok(h.clone());
        }
        let store = &self.inner.store;
        let names = store.list(&keys.manifest_dir()).await?;
        let ranges: Vec<(u64, u64, &String)> = names
            .iter()
            .filter_map(|k| parse_range(file_name(k), ".json").map(|(a, b)| (a, b, k)))
            .collect();
        let head = match ranges.iter().max_by_key(|(a, b, _)| (*a, *b)) {
            None => Head::empty(),
            Some((_, _, newest)) => {
                let bytes = store.get(newest).await?.ok_or_else(|| {
                    LedgerError::corrupt(store.location(newest), "listed but cannot be read")
                })?;
                let entry = parse_entry(&bytes)
                    .map_err(|reason| LedgerError::corrupt(store.location(newest), reason))?;
                if entry.compute_hash() != entry.hash {
                    return Err(LedgerError::corrupt(
                        store.location(newest),
                        "the newest manifest entry does not match its own hash",
                    ));
                }
                Head {
                    entries: entry.index + 1,
                    hash: entry.hash,
                    first_seq: ranges
                        .iter()
                        .map(|(a, _, _)| *a)
                        .min()
                        .unwrap_or(entry.first_seq),
                    last_seq: entry.last_seq,
                    items: entry.items_total,
                }
            }
        };
        let checkpointed = store
            .list(&keys.checkpoints_dir())
            .await?
            .iter()
            .filter_map(|k| parse_pair(file_name(k)).map(|(entries, _, _)| entries))
            .max()
            .unwrap_or(0);
        if checkpointed > head.entries {
            // Appending would hide the gap from the chain: only the checkpoint shows it.
            return Err(LedgerError::corrupt(
                store.location(&keys.checkpoints_dir()),
                format!(
                    "a checkpoint covers {checkpointed} manifest entries but the manifest holds {}: entries were removed",
                    head.entries
                ),
            ));
        }
        st.checkpointed_entries = st.checkpointed_entries.max(checkpointed);
        st.head = Some(head.clone());
        Ok(head)
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Bytes, LedgerError> {
    let mut v = serde_json::to_vec_pretty(value)
        .map_err(|e| LedgerError::corrupt("manifest", format!("serialize: {e}")))?;
    v.push(b'\n');
    Ok(Bytes::from(v))
}

/// sha256 hex of a possibly large object, off the async runtime.
pub(crate) async fn sha256_blocking(bytes: Bytes) -> Result<String, LedgerError> {
    tokio::task::spawn_blocking(move || sha256_hex(&bytes))
        .await
        .map_err(|source| LedgerError::Blocking { source })
}
