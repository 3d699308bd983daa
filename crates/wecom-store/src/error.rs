//! The crate's error type. Every variant names the file or directory involved.

use std::path::PathBuf;

/// An error from the local sink or the cursor store.
///
/// None of these is retriable in place: an `Io` error may leave a batch half-written, so the
/// sink refuses further writes until `LocalSink::recover` has run again, and corruption needs an
/// operator. The pipeline treats them as fatal (stop, do not move the cursor).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("i/o error on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("corrupt line {line} in {}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        line: u64,
        reason: String,
    },

    #[error("unsupported cursor version {version} in {}", path.display())]
    CursorVersion { path: PathBuf, version: u64 },

    #[error("invalid cursor file {}: {reason}", path.display())]
    InvalidCursor { path: PathBuf, reason: String },

    #[error("invalid stream name {stream:?}: {reason}")]
    InvalidStream {
        stream: String,
        reason: &'static str,
    },

    #[error("invalid output line for seq {seq}: {reason}")]
    InvalidLine { seq: u64, reason: &'static str },

    #[error("sink at {} is not recovered: call recover after open and after any write error", dir.display())]
    NotRecovered { dir: PathBuf },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
