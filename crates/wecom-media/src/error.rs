//! The worker's error type. Per-object failures are not errors of the worker: they become `failed`
//! media events. A [`MediaError`] stops the worker without moving its position.

use std::path::PathBuf;

/// Why the media worker (not one media object) could not go on.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The `[media]` configuration is invalid.
    #[error("invalid media config: {0}")]
    Config(String),
    /// Building or reaching the object store failed for good.
    #[error("object store {store}: {reason}")]
    Store { store: String, reason: String },
    /// The archive API answered with an error that retrying cannot fix (bad secret, subscription
    /// expired): stop, the position does not move.
    #[error("archive api: {0}")]
    Api(#[source] wecom_api::ApiError),
    /// Reading the record segments or the cursor failed.
    #[error(transparent)]
    Segments(#[from] wecom_store::StoreError),
    /// Local file I/O (event log, position file).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A state file exists but cannot be used.
    #[error("{path}: {reason}")]
    State { path: PathBuf, reason: String },
    /// Publishing a media event to Kafka or consuming the messages topic failed: stop, the
    /// position does not move.
    #[error("kafka: {0}")]
    Kafka(String),
    /// A worker task panicked or was cancelled from outside.
    #[error("media job task failed: {0}")]
    Task(String),
}

impl MediaError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> MediaError {
        let path = path.into();
        move |source| MediaError::Io { path, source }
    }
}
