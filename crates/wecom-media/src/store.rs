//! `MediaStore`: the object store plus the key prefix and the public location of an object.

use std::fmt;
use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::MediaError;

/// The object store media is written to. Cheap to clone.
#[derive(Clone)]
pub struct MediaStore {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    location_base: String,
    /// 1 = local disk, 2 = S3; used only for Debug/Display.
    kind: u8,
}

impl fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaStore")
            .field("kind", &if self.kind == 2 { "s3" } else { "local" })
            .field("location_base", &self.location_base)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl MediaStore {
    /// Wraps any object store. `prefix` (e.g. `archive/`) is prepended to every key;
    /// `location_base` (e.g. `s3://bucket/`) is prepended to the prefixed key in events.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        prefix: &str,
        location_base: String,
        kind: u8,
    ) -> Result<Self, MediaError> {
        let prefix = prefix.trim_start_matches('/');
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        if !prefix.is_empty() {
            Path::parse(prefix.trim_end_matches('/'))
                .map_err(|e| MediaError::Config(format!("media.store.prefix {prefix:?}: {e}")))?;
        }
        Ok(MediaStore {
            inner,
            prefix,
            location_base,
            kind,
        })
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> Self {
        MediaStore {
            inner: Arc::new(object_store::memory::InMemory::new()),
            prefix: String::new(),
            location_base: "memory:///".to_owned(),
            kind: 0,
        }
    }

    /// The underlying object store (to read objects back, list, ...).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The key prefix, empty or ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store path of an object key (prefix applied).
    pub fn path(&self, key: &str) -> Result<Path, String> {
        let full = format!("{}{}", self.prefix, key);
        Path::parse(&full).map_err(|e| format!("object key {key:?} is not a valid path: {e}"))
    }

    /// Where an object is, as written in media events (`file:///…`, `s3://bucket/…`).
    pub fn location(&self, path: &Path) -> String {
        format!("{}{}", self.location_base, path)
    }
}
