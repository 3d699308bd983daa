//! Object storage shared by every component that keeps objects: media attachments, the raw archive.
//!
//! One TOML shape for every `[*.store]` section (local disk by default, S3 or an S3-compatible server in
//! production), and [`Objects`]: the built store with its key prefix and the public location of an object.
//!
//! ```toml
//! [media.store]                      # or [archive.store]
//! kind = "s3"                        # or "local" (the default; each component names its default root)
//! bucket = "wecom-media"
//! endpoint = "http://127.0.0.1:9000"
//! region = "us-east-1"
//! access_key_id = "AKIA..."
//! # secret_access_key: prefer the environment, WECOM_S3_SECRET_ACCESS_KEY or AWS_SECRET_ACCESS_KEY
//! allow_http = true
//! prefix = "archive/"
//! ```
//!
//! **No credential reaches a log line, an error or `Debug`**: the secret is a [`Secret`], and errors name
//! the store by its kind and bucket only.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use serde::Deserialize;
use wecom_model::Secret;

/// Environment variables consulted, in this order, for the S3 secret; they override the file.
pub const S3_SECRET_ENV: [&str; 2] = ["WECOM_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"];
/// Environment variables consulted for the access key id when the file has none.
pub const S3_ACCESS_KEY_ENV: [&str; 2] = ["WECOM_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"];

/// Where objects go: one `[*.store]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ObjectStoreConfig {
    /// A directory on local disk (the default; the component using it names the default root).
    Local {
        #[serde(default)]
        root: Option<PathBuf>,
        /// Prepended to every object key (e.g. `archive/`).
        #[serde(default)]
        prefix: String,
    },
    /// Amazon S3 or an S3-compatible server.
    S3 {
        bucket: String,
        /// For S3-compatible servers (path-style requests), e.g. `http://127.0.0.1:9000`.
        #[serde(default)]
        endpoint: Option<String>,
        #[serde(default = "default_region")]
        region: String,
        #[serde(default)]
        access_key_id: Option<String>,
        /// Better left out of the file: `WECOM_S3_SECRET_ACCESS_KEY` / `AWS_SECRET_ACCESS_KEY` override it.
        #[serde(default)]
        secret_access_key: Option<Secret>,
        #[serde(default)]
        allow_http: bool,
        #[serde(default)]
        prefix: String,
    },
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        ObjectStoreConfig::Local {
            root: None,
            prefix: String::new(),
        }
    }
}

/// Why an object store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreConfigError {
    #[error("{section}.bucket is empty")]
    EmptyBucket { section: String },
    #[error("{section}.prefix {prefix:?} is not a valid object path: {reason}")]
    BadPrefix {
        section: String,
        prefix: String,
        reason: String,
    },
    #[error("cannot create the local object store root {}", path.display())]
    LocalRoot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object store {store}: {reason}")]
    Build { store: String, reason: String },
}

impl ObjectStoreConfig {
    /// Checks what can be checked without touching the store; `section` names it in errors
    /// (e.g. `media.store`).
    pub fn validate(&self, section: &str) -> Result<(), ObjectStoreConfigError> {
        let prefix = match self {
            ObjectStoreConfig::Local { prefix, .. } => prefix,
            ObjectStoreConfig::S3 { bucket, prefix, .. } => {
                if bucket.trim().is_empty() {
                    return Err(ObjectStoreConfigError::EmptyBucket {
                        section: section.to_owned(),
                    });
                }
                prefix
            }
        };
        normalize_prefix(prefix).map_err(|reason| ObjectStoreConfigError::BadPrefix {
            section: section.to_owned(),
            prefix: prefix.clone(),
            reason,
        })?;
        Ok(())
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, ObjectStoreConfig::S3 { .. })
    }

    /// Builds the store. A local root defaults to `default_root` and is created if missing; `fsync`
    /// makes local writes durable before they return. S3 secrets come from the environment first (see
    /// [`S3_SECRET_ENV`]) and are never logged.
    pub fn build(
        &self,
        section: &str,
        default_root: &FsPath,
        fsync: bool,
    ) -> Result<Objects, ObjectStoreConfigError> {
        self.validate(section)?;
        match self {
            ObjectStoreConfig::Local { root, prefix } => {
                let root = root.clone().unwrap_or_else(|| default_root.to_path_buf());
                let local_root = |source| ObjectStoreConfigError::LocalRoot {
                    path: root.clone(),
                    source,
                };
                std::fs::create_dir_all(&root).map_err(local_root)?;
                let abs = std::fs::canonicalize(&root).map_err(local_root)?;
                let fs = LocalFileSystem::new_with_prefix(&abs)
                    .map_err(|e| build_err(&format!("local {}", abs.display()), &e))?
                    .with_fsync(fsync)
                    .with_automatic_cleanup(true);
                let base = format!(
                    "file://{}/",
                    abs.display().to_string().trim_end_matches('/')
                );
                Objects::new(Arc::new(fs), prefix, base, StoreKind::Local)
                    .map_err(|reason| bad_prefix(section, prefix, reason))
            }
            ObjectStoreConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
                prefix,
            } => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_allow_http(*allow_http);
                if let Some(ep) = endpoint.as_deref().filter(|e| !e.is_empty()) {
                    b = b.with_endpoint(ep);
                }
                let key_id = access_key_id
                    .clone()
                    .filter(|k| !k.is_empty())
                    .or_else(|| first_env(&S3_ACCESS_KEY_ENV));
                if let Some(k) = key_id {
                    b = b.with_access_key_id(k);
                }
                let secret = first_env(&S3_SECRET_ENV)
                    .map(Secret::new)
                    .or_else(|| secret_access_key.clone().filter(|s| !s.is_empty()));
                if let Some(s) = secret {
                    b = b.with_secret_access_key(s.expose());
                }
                let s3 = b
                    .build()
                    .map_err(|e| build_err(&format!("s3 bucket {bucket}"), &e))?;
                Objects::new(
                    Arc::new(s3),
                    prefix,
                    format!("s3://{bucket}/"),
                    StoreKind::S3,
                )
                .map_err(|reason| bad_prefix(section, prefix, reason))
            }
        }
    }
}

fn first_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn build_err(store: &str, e: &object_store::Error) -> ObjectStoreConfigError {
    ObjectStoreConfigError::Build {
        store: store.to_owned(),
        reason: e.to_string(),
    }
}

fn bad_prefix(section: &str, prefix: &str, reason: String) -> ObjectStoreConfigError {
    ObjectStoreConfigError::BadPrefix {
        section: section.to_owned(),
        prefix: prefix.to_owned(),
        reason,
    }
}

/// `archive` → `archive/`, `/a/b/` → `a/b/`, empty stays empty.
fn normalize_prefix(prefix: &str) -> Result<String, String> {
    let prefix = prefix.trim_start_matches('/');
    if prefix.is_empty() {
        return Ok(String::new());
    }
    Path::parse(prefix.trim_end_matches('/')).map_err(|e| e.to_string())?;
    Ok(format!("{}/", prefix.trim_end_matches('/')))
}

/// Which backend an [`Objects`] talks to (for `Debug` and for features only one has, like Object Lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Local,
    S3,
}

/// A built object store with its key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Objects {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    location_base: String,
    kind: StoreKind,
}

impl fmt::Debug for Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Objects")
            .field("kind", &self.kind)
            .field("location_base", &self.location_base)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Objects {
    /// Wraps any object store. `prefix` (e.g. `archive/`) is prepended to every key; `location_base`
    /// (e.g. `s3://bucket/`) is prepended to the prefixed key in [`Objects::location`].
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        prefix: &str,
        location_base: String,
        kind: StoreKind,
    ) -> Result<Self, String> {
        Ok(Objects {
            inner,
            prefix: normalize_prefix(prefix)?,
            location_base,
            kind,
        })
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> Self {
        Objects {
            inner: Arc::new(object_store::memory::InMemory::new()),
            prefix: String::new(),
            location_base: "memory:///".to_owned(),
            kind: StoreKind::Memory,
        }
    }

    /// The underlying object store (to read objects back, list, ...).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    pub fn kind(&self) -> StoreKind {
        self.kind
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

    /// Where an object is, for events and reports (`file:///…`, `s3://bucket/…`); never a credential.
    pub fn location(&self, path: &Path) -> String {
        format!("{}{}", self.location_base, path)
    }

    /// The store's root location (`file:///…/`, `s3://bucket/`), for errors and logs.
    pub fn location_base(&self) -> &str {
        &self.location_base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_parse_with_defaults_and_reject_unknown_keys() {
        let c: ObjectStoreConfig =
            toml::from_str("kind = \"s3\"\nbucket = \"b\"\nallow_http = true\n").expect("s3");
        match &c {
            ObjectStoreConfig::S3 {
                region, allow_http, ..
            } => {
                assert_eq!(region, "us-east-1");
                assert!(allow_http);
            }
            other => panic!("{other:?}"),
        }
        assert!(toml::from_str::<ObjectStoreConfig>("kind = \"local\"\nbucket = \"b\"").is_err());
        assert!(toml::from_str::<ObjectStoreConfig>("kind = \"gcs\"").is_err());
    }

    #[test]
    fn validation_names_the_section_and_hides_the_secret() {
        let c = ObjectStoreConfig::S3 {
            bucket: " ".into(),
            endpoint: None,
            region: default_region(),
            access_key_id: None,
            secret_access_key: Some(Secret::new("hunter2")),
            allow_http: false,
            prefix: String::new(),
        };
        let err = c.validate("archive.store").unwrap_err().to_string();
        assert!(err.contains("archive.store.bucket"), "{err}");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn local_store_round_trips_under_its_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = ObjectStoreConfig::Local {
            root: None,
            prefix: "/arch".into(),
        };
        let objects = c.build("x.store", dir.path(), false).expect("build");
        assert_eq!(objects.prefix(), "arch/");
        let p = objects.path("raw/a.gz").expect("path");
        assert_eq!(p.as_ref(), "arch/raw/a.gz");
        assert!(objects.location(&p).starts_with("file:///"));
        assert_eq!(objects.kind(), StoreKind::Local);
    }
}
