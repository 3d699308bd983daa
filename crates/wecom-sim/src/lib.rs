//! A faithful, deterministic simulator of the project's WeCom archive HTTP contract
//! (`docs`: shared reference §1–§5): token endpoint, encrypted chat data with key rotation, room
//! streams, streamed media in real formats with `Range`, consent checks (`check_single_agree`,
//! `check_room_agree`), a retention floor, live traffic with `msgaudit_notify` callbacks, fault
//! injection, oversized items and ground truth.
//!
//! Endpoints: `GET /cgi-bin/gettoken`, `POST /cgi-bin/msgaudit/get_chat_data`,
//! `POST /cgi-bin/msgaudit/groupchat/get`, `GET /cgi-bin/media/get`,
//! `POST|GET /cgi-bin/msgaudit/get_permit_user_list`, `POST /cgi-bin/msgaudit/check_single_agree`,
//! `POST /cgi-bin/msgaudit/check_room_agree`; admin: `GET /_sim/stats`, `GET /_sim/truth` (NDJSON of
//! [`TruthItem`]), `GET /_sim/truth/consent` ([`ConsentTruth`]), `PUT /_sim/faults`,
//! `POST /_sim/retention`. Every invalid parameter is errcode 40058, as on the other endpoints.
//!
//! **Not Tencent's encryption**: `encrypt_chat_msg` uses `wecom_crypto::SimCipher`, the simulator's own
//! scheme. Everything is a pure function of the seed: two servers with the same `SimConfig` (and the
//! same `anchor_unix_ms`) serve byte-identical pages and media. The simulator builds its JSON itself and
//! never depends on `wecom-model`, so it cannot share a model bug with the pipeline.
//!
//! Memory stays small: per item only a few words of metadata; message bodies and ciphertexts are
//! rebuilt per request, media bytes are generated chunk by chunk.

mod config;
mod consent;
mod corpus;
mod media;
mod notify;
mod picture;
mod rng;
mod server;
mod truth;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use config::{
    BigMessagesConfig, FaultConfig, MediaConfig, NotifyConfig, SimConfig, SimKey, REPO_ROOT,
    SDK_CRASH_MARKER,
};
pub use corpus::all_msgtypes;
pub use truth::{
    status_at, AgreeStatus, ConsentChange, ConsentTruth, Fate, PairConsent, RoomConsent, SimStats,
    TruthItem, TruthMedia,
};

/// Errors of starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator config: {0}")]
    Config(String),
    #[error("cannot read simulator key file {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("simulator key version {version}: {source}")]
    Crypto {
        version: u32,
        #[source]
        source: wecom_crypto::CryptoError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("simulator state lock poisoned")]
    Poisoned,
    #[error("cannot set up msgaudit_notify callbacks: {0}")]
    Notify(reqwest::Error),
}

/// A running simulator. Dropping it leaves the server running until the runtime ends; call
/// [`SimServer::shutdown`] to stop it.
pub struct SimServer {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    notify_task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the simulator on `listen` (port 0 picks a free port). Loads the keys and lays out the
/// corpus metadata before returning.
pub async fn start(config: SimConfig, listen: SocketAddr) -> Result<SimServer, SimError> {
    config.validate()?;
    let notifier = config
        .notify
        .clone()
        .map(|n| notify::Notifier::new(n, config.corp_id.clone(), config.seed))
        .transpose()?;
    let shared = tokio::task::spawn_blocking(move || server::Shared::new(&config))
        .await
        .map_err(|e| SimError::Config(format!("simulator setup panicked: {e}")))??;
    let shared = Arc::new(shared);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: listen,
        source,
    })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = server::router(shared.clone());
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "simulator server stopped with an error");
        }
    });
    let notify_task = notifier.map(|n| tokio::spawn(n.run(shared.clone())));
    tracing::info!(%addr, "wecom simulator listening");
    Ok(SimServer {
        addr,
        shared,
        stop: Some(tx),
        task,
        notify_task,
    })
}

impl SimServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (the loopback address with the bound port).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Ground truth of every item up to the visible end, including items below the retention floor.
    /// Computes media md5s not yet known (CPU work: call it from a blocking context for big corpora).
    pub fn truth(&self) -> Vec<TruthItem> {
        self.shared.corpus.truth()
    }

    /// Every agreement history (per (userid, external) pair and per room) up to the visible end.
    pub fn consent(&self) -> ConsentTruth {
        self.shared.corpus.consent_truth()
    }

    /// Every access token issued so far (for tests that check no token reaches a log).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.issued_tokens()
    }

    /// Request and fault counters so far.
    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Replaces the per-request fault rates (per-item faults stay as the corpus was generated).
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.set_faults(faults);
    }

    /// Items with a corp seq below `floor_seq` are no longer served (as if they aged out).
    pub fn set_retention_floor_seq(&self, floor_seq: u64) {
        self.shared.set_floor(floor_seq);
    }

    /// Stops accepting connections and waits (at most 5 s) for in-flight responses.
    pub async fn shutdown(mut self) {
        if let Some(notify) = self.notify_task.take() {
            notify.abort();
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let abort = self.task.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}
