//! One media job: a media reference of a record, transferred into the store ([`crate::transfer`]),
//! its event delivered to every output, then its record acknowledged.
//!
//! Identical media (the same object key) referenced by jobs that run at once is fetched once: a
//! lock per object key makes the second job wait, and it then finds the object stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use wecom_api::ArchiveClient;
use wecom_model::{media_object_key, MediaRef};

use crate::config::MediaWorkerConfig;
use crate::error::MediaError;
use crate::events::{MediaEvent, MediaEventStatus, MEDIA_EVENT_SCHEMA_ID};
use crate::outputs::{Ack, Outputs};
use crate::position::lock;
use crate::stats::MediaStats;
use crate::status::MediaLastError;
use crate::transfer::{MediaJob, Outcome, Transfer};
use crate::MediaStore;

/// The fields of a record every job of it needs.
#[derive(Debug)]
pub(crate) struct RecordCtx {
    pub corp_id: String,
    pub stream: String,
    pub seq: u64,
    pub msgid: String,
    pub conversation_id: Option<String>,
}

/// What every job shares.
pub(crate) struct Jobs {
    pub config: MediaWorkerConfig,
    pub store: MediaStore,
    pub client: ArchiveClient,
    pub stats: MediaStats,
    pub outputs: Outputs,
    key_locks: KeyLocks,
    /// The latest object that failed for good, for the status file.
    pub last_error: Mutex<Option<MediaLastError>>,
}

impl Jobs {
    pub fn new(
        config: MediaWorkerConfig,
        store: MediaStore,
        client: ArchiveClient,
        outputs: Outputs,
    ) -> Self {
        Jobs {
            config,
            store,
            client,
            stats: MediaStats::default(),
            outputs,
            key_locks: KeyLocks::default(),
            last_error: Mutex::new(None),
        }
    }

    /// Runs the job of `media`, delivers its event and acknowledges it with `ack`. Returns
    /// without an event when `cancel` fires first (the next run redoes the job); an error stops
    /// the worker.
    pub async fn run(
        &self,
        ack: Ack,
        ctx: &RecordCtx,
        media: MediaRef,
        cancel: &CancellationToken,
    ) -> Result<(), MediaError> {
        self.stats.job_started();
        struct Ended<'a>(&'a MediaStats);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                self.0.job_ended();
            }
        }
        let _ended = Ended(&self.stats);

        let key = media
            .object_key
            .clone()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| media_object_key(&ctx.corp_id, &media));
        let expected_md5 = media
            .md5sum
            .as_deref()
            .filter(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase);
        let mut event = MediaEvent {
            schema: MEDIA_EVENT_SCHEMA_ID.to_owned(),
            corp_id: ctx.corp_id.clone(),
            stream: ctx.stream.clone(),
            seq: ctx.seq,
            msgid: ctx.msgid.clone(),
            kind: media.kind.clone(),
            sdkfileid: media.sdkfileid.clone(),
            object_key: key.clone(),
            status: MediaEventStatus::Failed,
            location: None,
            size: None,
            md5: None,
            expected_md5: expected_md5.clone(),
            expected_size: media.size,
            already_stored: false,
            attempts: 0,
            reason: None,
            errcode: None,
            at_unix_ms: 0,
        };

        let path = if media.sdkfileid.is_empty() {
            Err("the media reference has no sdkfileid".to_owned())
        } else {
            self.store.path(&key)
        };
        let outcome = match path {
            Err(reason) => Outcome::Failed {
                reason,
                errcode: None,
                size: None,
                md5: None,
                attempts: 0,
            },
            Ok(path) => {
                event.location = Some(self.store.location(&path));
                let job = MediaJob {
                    sdkfileid: media.sdkfileid.clone(),
                    object_key: key.clone(),
                    path,
                    expected_md5,
                    expected_size: media.size,
                };
                let _guard = self.key_locks.lock(&key).await;
                Transfer {
                    client: &self.client,
                    store: &self.store,
                    config: &self.config,
                    stats: &self.stats,
                    cancel,
                }
                .run(&job)
                .await
            }
        };

        match outcome {
            Outcome::Cancelled => return Ok(()),
            Outcome::Fatal(e) => return Err(e),
            Outcome::Stored {
                size,
                md5,
                already,
                attempts,
            } => {
                if already {
                    self.stats.add_skipped();
                }
                event.status = MediaEventStatus::Stored;
                event.size = Some(size);
                event.md5 = md5;
                event.already_stored = already;
                event.attempts = attempts;
            }
            Outcome::Failed {
                reason,
                errcode,
                size,
                md5,
                attempts,
            } => {
                // One failed object is the event's business (and the counters'), not the log's.
                self.stats.add_failed();
                tracing::debug!(
                    corp_id = %ctx.corp_id,
                    seq = ctx.seq,
                    kind = %media.kind,
                    object_key = %key,
                    sdkfileid = %media.sdkfileid,
                    errcode,
                    %reason,
                    "media object failed"
                );
                *lock(&self.last_error) = Some(MediaLastError::now(
                    format!("object {key} (sdkfileid {}): {reason}", media.sdkfileid),
                    Some(ctx.seq),
                ));
                event.location = None;
                event.reason = Some(reason);
                event.errcode = errcode;
                event.size = size;
                event.md5 = md5;
                event.attempts = attempts;
            }
        }
        event.at_unix_ms = wecom_store::now_unix_ms();
        self.outputs
            .deliver(event, ctx.conversation_id.as_deref(), ack)
            .await
    }
}

/// One lock per object key, removed again when nobody holds or waits for it.
#[derive(Default)]
struct KeyLocks {
    map: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Holds the lock of one key; dropping it releases the key.
struct KeyGuard {
    map: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    key: String,
    held: Option<(
        Arc<tokio::sync::Mutex<()>>,
        tokio::sync::OwnedMutexGuard<()>,
    )>,
}

impl KeyLocks {
    async fn lock(&self, key: &str) -> KeyGuard {
        let mutex = lock(&self.map).entry(key.to_owned()).or_default().clone();
        let guard = mutex.clone().lock_owned().await;
        KeyGuard {
            map: self.map.clone(),
            key: key.to_owned(),
            held: Some((mutex, guard)),
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let Some((mutex, guard)) = self.held.take() else {
            return;
        };
        drop(guard);
        let mut map = lock(&self.map);
        // The map's reference and ours: nobody else holds or waits for this key.
        if Arc::strong_count(&mutex) == 2 {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn key_locks_serialize_one_key_and_are_removed_when_free() {
        let locks = KeyLocks::default();
        let a = locks.lock("k").await;
        let b = locks.lock("other").await;
        let waiting = {
            let map = locks.map.clone();
            let locks = KeyLocks { map };
            tokio::spawn(async move {
                let _g = locks.lock("k").await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a second holder of the same key");
        drop(a);
        waiting.await.unwrap();
        drop(b);
        assert!(lock(&locks.map).is_empty());
    }
}
