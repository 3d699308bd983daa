//! The worker's error type. Per-object failures are not errors of the worker: they become `failed`
//! media events. A [`MediaError`] stops the worker without moving its position.
//!
//! Each cause is said once: a variant either prints what went wrong in its own message or exposes
//! it as its `source`, never both.

use std::path::PathBuf;

/// Why the media worker (not one media object) could not go on.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A value of the `[media]` section is invalid; the message names the key.
    #[error("invalid media config: {0}")]
    Config(String),
    /// `[media.store]` is invalid or the store cannot be built.
    #[error(transparent)]
    ObjectStore(#[from] wecom_store::ObjectStoreConfigError),
    /// Reaching the object store failed for good.
    #[error("object store {store}: {reason}")]
    Store { store: String, reason: String },
    /// The archive API answered with an error that retrying cannot fix (bad secret, subscription
    /// expired): stop, the position does not move.
    #[error("fetching media {sdkfileid} for object {object_key}")]
    Api {
        sdkfileid: String,
        object_key: String,
        #[source]
        source: Box<wecom_api::ApiError>,
    },
    /// Reading the record segments or the cursor failed.
    #[error(transparent)]
    Segments(#[from] wecom_store::StoreError),
    /// Local file I/O (event log, position file, status file).
    #[error("i/o on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A state file exists but cannot be used.
    #[error("{}: {reason}", path.display())]
    State { path: PathBuf, reason: String },
    /// Publishing a media event to the media topic failed: stop, the position does not move.
    #[error("publishing the media event of object {object_key} (sdkfileid {sdkfileid}) to kafka")]
    Publish {
        object_key: String,
        sdkfileid: String,
        #[source]
        source: Box<wecom_kafka::KafkaError>,
    },
    /// The consumer of the messages topic failed: stop, the committed offsets do not move.
    #[error("kafka consumer of topic {topic}: {action}")]
    Consumer {
        topic: String,
        action: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A worker task panicked or was cancelled from outside.
    #[error("media job task failed: {0}")]
    Task(String),
}

impl MediaError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> MediaError {
        let path = path.into();
        move |source| MediaError::Io { path, source }
    }

    pub(crate) fn task(e: tokio::task::JoinError) -> MediaError {
        MediaError::Task(e.to_string())
    }
}
