//! The crate's error type. Every variant names the object, file or config key involved, and none
//! carries a secret: the signing key's bytes, S3 credentials and signed URLs never reach a message.

use std::path::PathBuf;

/// An error from the raw archive.
///
/// Retry class: [`LedgerError::is_transient`] errors (the store did not answer, or answered with a
/// server error) may succeed when the same call is made again, and a repeated `write_page` is safe (it
/// skips what is already archived). The others need an operator: a bad config or key, an archive that
/// does not match its manifest, a page that breaks the write contract, a second writer.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A setting of `[archive]`; `key` is the config key (`archive.object_lock.retain_days`).
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },

    /// `[archive.store]` could not be built; the source names the section.
    #[error(transparent)]
    Store(#[from] wecom_store::ObjectStoreConfigError),

    /// The signing key file could not be read.
    #[error("cannot read the archive signing key {} (archive.signing.key_file)", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A signing or public key is not what it must be (never shows the key's bytes).
    #[error("{what}: {reason}")]
    Key { what: String, reason: String },

    /// An object store operation failed.
    #[error("{op} {location}")]
    Object {
        op: &'static str,
        location: String,
        #[source]
        source: object_store::Error,
    },

    /// The request that writes an object under S3 Object Lock could not be sent or answered.
    #[error("object lock put {location}")]
    LockRequest {
        location: String,
        #[source]
        source: reqwest::Error,
    },

    /// S3 refused an object lock write (the reason is S3's error code and message).
    #[error("object lock put {location}: HTTP {status}: {reason}; check that the bucket has Object Lock enabled and the credentials may s3:PutObjectRetention")]
    LockRefused {
        location: String,
        status: u16,
        reason: String,
    },

    /// What was read back does not match what the manifest says (or cannot be parsed).
    #[error("{location}: {reason}; run `wecom-archive verify` for a full report")]
    Corrupt { location: String, reason: String },

    /// A page breaks the write contract (items ascending by seq, at least one).
    #[error("corp {corp_id} stream {stream}: {reason}")]
    Page {
        corp_id: String,
        stream: String,
        reason: String,
    },

    /// A manifest entry appeared that this process did not write: a second writer on the stream.
    #[error("manifest entry {location} was written by another process; only one writer per stream may run")]
    ConcurrentWriter { location: String },

    /// A blocking task (compression, hashing) panicked or was cancelled.
    #[error("archive worker task failed")]
    Blocking {
        #[source]
        source: tokio::task::JoinError,
    },
}

impl LedgerError {
    /// True when the same call may succeed later (the store was unreachable or failed on its side).
    pub fn is_transient(&self) -> bool {
        match self {
            LedgerError::Object { source, .. } => !matches!(
                source,
                object_store::Error::NotFound { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ),
            LedgerError::LockRequest { .. } => true,
            LedgerError::LockRefused { status, .. } => *status >= 500 || *status == 429,
            LedgerError::Blocking { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn corrupt(location: impl Into<String>, reason: impl Into<String>) -> Self {
        LedgerError::Corrupt {
            location: location.into(),
            reason: reason.into(),
        }
    }
}
