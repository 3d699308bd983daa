//! The audit log: one JSON line per request (who, what, when, the outcome), appended and synced before
//! the response leaves, so no access goes unrecorded. A request whose line cannot be written is answered
//! 500: the console fails closed.
//!
//! A line never holds a token: tokens only travel in headers and login bodies, which are not logged.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::error::ConsoleError;

/// Lines waiting for the writer, at most.
const QUEUE: usize = 1024;

/// One access.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLine {
    /// RFC 3339 UTC.
    pub ts: String,
    /// The user's name; `null` when the request carried no valid token or session.
    pub who: Option<String>,
    pub role: Option<&'static str>,
    pub method: String,
    pub path: String,
    /// The query string (search terms are part of what was looked at).
    pub query: Option<String>,
    pub status: u16,
    /// `allowed`, `denied` (wrong role), `unauthenticated`, `refused` (a token in the URL), `login`,
    /// `login_failed`, `logout`.
    pub outcome: &'static str,
    pub ms: u64,
    pub peer: Option<String>,
}

type Job = (Vec<u8>, oneshot::Sender<bool>);

/// The writer's handle.
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Job>,
}

impl Audit {
    /// Opens (creating) the log and starts its writer thread.
    pub fn open(path: &Path) -> Result<Audit, ConsoleError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(ConsoleError::io(dir))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(ConsoleError::io(path))?;
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let p = path.to_path_buf();
        std::thread::Builder::new()
            .name("console-audit".into())
            .spawn(move || writer(file, rx, &p))
            .map_err(ConsoleError::io(path))?;
        Ok(Audit { tx })
    }

    /// Appends a line; true once it is on disk.
    pub async fn record(&self, line: &AuditLine) -> bool {
        let Ok(mut bytes) = serde_json::to_vec(line) else {
            return false;
        };
        bytes.push(b'\n');
        let (done, wait) = oneshot::channel();
        if self.tx.send((bytes, done)).await.is_err() {
            return false;
        }
        wait.await.unwrap_or(false)
    }
}

/// Writes what is queued, syncs once per batch, then answers every line of the batch.
fn writer(mut file: File, mut rx: mpsc::Receiver<Job>, path: &Path) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= QUEUE {
                break;
            }
        }
        let mut buf = Vec::new();
        for (line, _) in &batch {
            buf.extend_from_slice(line);
        }
        let ok = file.write_all(&buf).and_then(|()| file.sync_data());
        if let Err(e) = &ok {
            error!(path = %path.display(), error = %e, "cannot write the audit log: refusing requests");
        }
        for (_, done) in batch {
            let _ = done.send(ok.is_ok());
        }
    }
}
