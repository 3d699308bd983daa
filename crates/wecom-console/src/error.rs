//! The console's errors. Each names what failed (file, index, topic, address) and never a token.

use std::path::{Path, PathBuf};

use crate::config::ConsoleConfigError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console configuration")]
    Config(#[source] ConsoleConfigError),
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("search index")]
    Index(#[source] tantivy::TantivyError),
    #[error("search index: {0}")]
    Corrupt(String),
    #[error("record source: {0}")]
    Source(String),
    #[error("kafka consumer on topic {topic}")]
    Kafka {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("media store")]
    Objects(#[source] wecom_store::ObjectStoreConfigError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("console server")]
    Serve(#[source] std::io::Error),
    #[error("the ingest thread stopped unexpectedly")]
    IngestPanicked,
}

impl ConsoleError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConsoleError + '_ {
        move |source| ConsoleError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn index(e: tantivy::TantivyError) -> ConsoleError {
        ConsoleError::Index(e)
    }
}
