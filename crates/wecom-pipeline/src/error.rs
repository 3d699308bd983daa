//! The pipeline's error type. Every variant names what failed (corp, stream, seq, file) and carries no
//! secret. A variant with a source does not repeat it: print the whole chain (`{:#}` at the binary's
//! edge, [`wecom_model::error_chain`] in logs). Item-level problems never appear here: they become dead letters and the pipeline moves on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("keyring")]
    Keyring(#[from] wecom_crypto::CryptoError),
    #[error("corp {corp_id} stream {stream}: fetching after seq {seq}")]
    Fetch {
        corp_id: String,
        stream: String,
        seq: u64,
        #[source]
        source: Box<wecom_api::ApiError>,
    },
    #[error("corp {corp_id}")]
    Api {
        corp_id: String,
        #[source]
        source: Box<wecom_api::ApiError>,
    },
    #[error("corp {corp_id} stream {stream}: local sink")]
    Store {
        corp_id: String,
        stream: String,
        #[source]
        source: wecom_store::StoreError,
    },
    /// Local storage failed before the stream was known (wrapped into `Store` by [`PipelineError::in_stream`]).
    #[error("local storage")]
    Local(#[from] wecom_store::StoreError),
    #[error(
        "{dir} is in use by another wecom-archive process (lock file {dir}/.lock); stop it first"
    )]
    Locked { dir: PathBuf },
    /// The raw archive (object storage) failed.
    #[error("corp {corp_id}: raw archive")]
    Archive {
        corp_id: String,
        #[source]
        source: Box<wecom_ledger::LedgerError>,
    },
    #[error("corp {corp_id} stream {stream}: kafka sink")]
    Kafka {
        corp_id: String,
        stream: String,
        #[source]
        source: Box<wecom_kafka::KafkaError>,
    },
    #[error("corp {corp_id}: sdk: {reason}")]
    Sdk { corp_id: String, reason: String },
    #[error("corp {corp_id}: media worker: {reason}")]
    Media { corp_id: String, reason: String },
    #[error("simulator: {0}")]
    Sim(String),
    /// Cluster mode: another worker claimed the stream (a newer owner epoch); this one stops it.
    #[error("corp {corp_id} stream {stream}: owner epoch {epoch} was fenced by a newer claim (epoch {newer}); another worker runs it now")]
    Fenced {
        corp_id: String,
        stream: String,
        epoch: u64,
        newer: u64,
    },
    #[error("corp {corp_id} stream {stream}: {reason}")]
    Internal {
        corp_id: String,
        stream: String,
        reason: String,
    },
}

impl PipelineError {
    /// A raw archive failure of `corp_id`.
    pub fn archive(corp_id: &str, source: wecom_ledger::LedgerError) -> Self {
        PipelineError::Archive {
            corp_id: corp_id.to_string(),
            source: Box::new(source),
        }
    }

    /// A failure of the pipeline's own machinery (a task that panicked or was cancelled) in a stream.
    pub fn internal(corp_id: &str, stream: &str, e: impl std::fmt::Display) -> Self {
        PipelineError::Internal {
            corp_id: corp_id.to_string(),
            stream: stream.to_string(),
            reason: e.to_string(),
        }
    }

    /// Names the corp and stream in a storage error raised where they were not at hand.
    pub fn in_stream(self, corp_id: &str, stream: &str) -> Self {
        match self {
            PipelineError::Local(source) => PipelineError::Store {
                corp_id: corp_id.to_string(),
                stream: stream.to_string(),
                source,
            },
            other => other,
        }
    }
}
