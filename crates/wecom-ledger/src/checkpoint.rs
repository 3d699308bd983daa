//! Checkpoints: a signed statement of a stream's chain head (entries, head hash, seq range, item
//! count), written after a stream's first write in a process, then after writes once the interval has
//! passed, and when a run ends ([`Ledger::checkpoint`]). The public key is published beside the
//! archive before the first checkpoint that needs it.

use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use tracing::{info, warn};
use wecom_store::now_unix_ms;

use crate::error::LedgerError;
use crate::layout::{self, StreamKeys};
use crate::ledger::{to_json, Ledger, StreamState};
use crate::manifest::{Checkpoint, CHECKPOINT_SCHEMA};
use crate::signing::PublicKey;
use crate::store::Put;

impl Ledger {
    pub(crate) async fn maybe_checkpoint(
        &self,
        keys: &StreamKeys,
        stream: &str,
        st: &mut StreamState,
    ) {
        let Some(signing) = &self.inner.signing else {
            return;
        };
        if st
            .last_checkpoint
            .is_some_and(|t| t.elapsed() < signing.checkpoint_every)
        {
            return;
        }
        if let Err(e) = self.checkpoint_locked(keys, stream, st).await {
            // The page is archived; the checkpoint is tried again after the next write.
            warn!(corp = %self.inner.corp_id, stream, error = %e, "archive checkpoint failed");
        }
    }

    /// Signs a checkpoint of the stream's current head (the pipeline calls it when a run ends; it is
    /// also done periodically after writes). `Ok(None)` without `[archive.signing]`, for an empty
    /// stream, or when the newest checkpoint already covers the head.
    pub async fn checkpoint(&self, stream: &str) -> Result<Option<Checkpoint>, LedgerError> {
        if self.inner.signing.is_none() {
            return Ok(None);
        }
        let keys = StreamKeys::new(&self.inner.corp_enc, stream)?;
        let state = self.stream_state(stream);
        let mut st = state.lock().await;
        let done = self.checkpoint_locked(&keys, stream, &mut st).await;
        if done.is_err() {
            st.head = None;
        }
        done
    }

    /// [`Ledger::checkpoint`] of every stream this process has written or checkpointed. Tries them all
    /// and returns the first error.
    pub async fn checkpoint_all(&self) -> Result<Vec<Checkpoint>, LedgerError> {
        let streams: Vec<String> = self
            .inner
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        let mut out = Vec::new();
        let mut first_err = None;
        for stream in streams {
            match self.checkpoint(&stream).await {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(out), Err)
    }

    async fn checkpoint_locked(
        &self,
        keys: &StreamKeys,
        stream: &str,
        st: &mut StreamState,
    ) -> Result<Option<Checkpoint>, LedgerError> {
        let Some(signing) = &self.inner.signing else {
            return Ok(None);
        };
        let head = self.head(keys, st).await?;
        if head.entries == 0 || st.checkpointed_entries >= head.entries {
            st.last_checkpoint = Some(Instant::now());
            return Ok(None);
        }
        self.publish_key(signing.key.public_key()).await?;
        let mut cp = Checkpoint {
            schema: CHECKPOINT_SCHEMA.to_owned(),
            corp_id: self.inner.corp_id.clone(),
            stream: stream.to_owned(),
            entries: head.entries,
            head: head.hash.clone(),
            first_seq: head.first_seq,
            last_seq: head.last_seq,
            items: head.items,
            signed_at_ms: now_unix_ms(),
            key_id: signing.key.public_key().key_id(),
            signature: String::new(),
        };
        let sig = signing
            .key
            .sign(&cp.canonical_bytes())
            .map_err(|reason| LedgerError::Key {
                what: "archive signing key (archive.signing.key_file)".to_owned(),
                reason,
            })?;
        cp.signature = base64::engine::general_purpose::STANDARD.encode(sig);
        let key = keys.checkpoint(cp.entries, cp.signed_at_ms);
        self.inner.store.put_create(&key, to_json(&cp)?).await?;
        st.checkpointed_entries = head.entries;
        st.last_checkpoint = Some(Instant::now());
        info!(corp = %self.inner.corp_id, stream, entries = cp.entries, last_seq = cp.last_seq,
            items = cp.items, key_id = %cp.key_id, "archive checkpoint signed");
        Ok(Some(cp))
    }

    /// Publishes the public key beside the archive once per process (an existing copy must match).
    async fn publish_key(&self, public: &PublicKey) -> Result<(), LedgerError> {
        self.inner
            .key_published
            .get_or_try_init(|| async {
                let store = &self.inner.store;
                let key = layout::key_object(&self.inner.corp_enc, &public.key_id());
                let pem = public.to_pem();
                if store.put_create(&key, Bytes::from(pem.clone())).await? == Put::Existed {
                    let existing = store.get(&key).await?.unwrap_or_default();
                    let same = std::str::from_utf8(&existing)
                        .ok()
                        .and_then(|t| PublicKey::from_pem(t).ok())
                        .is_some_and(|k| &k == public);
                    if !same {
                        return Err(LedgerError::corrupt(
                            store.location(&key),
                            "the published key is not the signing key its name says",
                        ));
                    }
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }
}
