//! The few object operations the archive uses, over the shared [`Objects`]: create-only puts (with
//! Object Lock retention when configured), gets that tell "missing" apart, and listings that return
//! keys relative to the store's prefix.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use wecom_store::Objects;

use crate::error::LedgerError;
use crate::lock::{LockedPuts, Retention};

/// What a create-only put found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Put {
    Created,
    /// The key already held an object; nothing was written.
    Existed,
}

#[derive(Clone)]
pub(crate) struct Store {
    objects: Objects,
    lock: Option<Arc<LockedPuts>>,
}

impl Store {
    pub(crate) fn new(objects: Objects, lock: Option<LockedPuts>) -> Self {
        Store {
            objects,
            lock: lock.map(Arc::new),
        }
    }

    pub(crate) fn objects(&self) -> &Objects {
        &self.objects
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    fn path(&self, key: &str) -> Result<ObjPath, LedgerError> {
        self.objects
            .path(key)
            .map_err(|reason| LedgerError::corrupt(key, reason))
    }

    /// Where `key` is (`file:///…`, `s3://bucket/…`), for errors and reports.
    pub(crate) fn location(&self, key: &str) -> String {
        match self.objects.path(key) {
            Ok(p) => self.objects.location(&p),
            Err(_) => key.to_owned(),
        }
    }

    /// Creates `key`; an existing object is left alone and reported.
    pub(crate) async fn put_create(&self, key: &str, bytes: Bytes) -> Result<Put, LedgerError> {
        let path = self.path(key)?;
        if let Some(lock) = &self.lock {
            let created = lock
                .put_create(&path, bytes, &self.objects.location(&path))
                .await?;
            return Ok(if created { Put::Created } else { Put::Existed });
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .objects
            .object_store()
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(Put::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Put::Existed),
            Err(source) => Err(LedgerError::Object {
                op: "put",
                location: self.objects.location(&path),
                source,
            }),
        }
    }

    /// The object's bytes, `None` when there is no such object.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, LedgerError> {
        let path = self.path(key)?;
        let err = |source| LedgerError::Object {
            op: "get",
            location: self.objects.location(&path),
            source,
        };
        match self.objects.object_store().get(&path).await {
            Ok(got) => got.bytes().await.map(Some).map_err(err),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(err(source)),
        }
    }

    /// Every key under `dir` (recursively), relative to the prefix, sorted.
    pub(crate) async fn list(&self, dir: &str) -> Result<Vec<String>, LedgerError> {
        let path = self.path(dir)?;
        let metas: Vec<_> = self
            .objects
            .object_store()
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|source| LedgerError::Object {
                op: "list",
                location: self.objects.location(&path),
                source,
            })?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|m| self.relative(m.location.as_ref()))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// The objects directly under `dir` and its sub-directories (relative keys), each sorted.
    pub(crate) async fn list_dir(
        &self,
        dir: &str,
    ) -> Result<(Vec<String>, Vec<String>), LedgerError> {
        let path = self.path(dir)?;
        let listed = self
            .objects
            .object_store()
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|source| LedgerError::Object {
                op: "list",
                location: self.objects.location(&path),
                source,
            })?;
        let mut objects: Vec<String> = listed
            .objects
            .iter()
            .map(|m| self.relative(m.location.as_ref()))
            .collect();
        let mut dirs: Vec<String> = listed
            .common_prefixes
            .iter()
            .map(|p| self.relative(p.as_ref()))
            .collect();
        objects.sort();
        dirs.sort();
        Ok((objects, dirs))
    }

    fn relative(&self, full: &str) -> String {
        full.strip_prefix(self.objects.prefix())
            .unwrap_or(full)
            .to_owned()
    }

    /// The Object Lock retention of `key` (`None` without `[archive.object_lock]` or on an unlocked
    /// object).
    pub(crate) async fn retention(&self, key: &str) -> Result<Option<Retention>, LedgerError> {
        let Some(lock) = &self.lock else {
            return Ok(None);
        };
        let path = self.path(key)?;
        lock.retention(&path, &self.objects.location(&path)).await
    }
}
