//! The web server: start-up (index, ingest thread, audit log, listener), the access guard every request
//! passes, and the routes. Pages are in `pages`, the API in `api`, media in `media`.

mod api;
mod assets;
mod audit;
mod auth;
mod cursor;
mod export;
mod guard;
mod http;
mod media;
mod openapi;
mod pages;
mod render;
mod timefmt;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wecom_store::Objects;

use crate::config::{ConsoleConfig, User};
use crate::error::ConsoleError;
use crate::index::{self, Archive};
use crate::ingest::{self, SourceSpec};

pub use audit::AuditLine;
pub use auth::SESSION_COOKIE;
pub use openapi::openapi_document;

/// Everything `serve` needs, resolved by the caller (the binary reads it from the config file).
pub struct ServeSettings {
    pub corp_id: String,
    /// The pipeline's `[sink] data_dir`.
    pub data_dir: PathBuf,
    pub source: SourceSpec,
    /// Where media objects are (`[media.store]`).
    pub objects: Objects,
    pub console: ConsoleConfig,
    /// The users with their tokens ([`ConsoleConfig::resolve_users`]).
    pub users: Vec<User>,
}

/// What handlers share.
pub(crate) struct AppState {
    pub archive: Arc<Archive>,
    pub objects: Objects,
    pub cfg: ConsoleConfig,
    pub clock: timefmt::Clock,
    pub auth: auth::Auth,
    pub audit: audit::Audit,
    /// Bounds searches, page renders, thumbnails and exports running at once.
    pub work: Arc<Semaphore>,
    /// Bounds ffmpeg processes.
    pub transcode: Semaphore,
    pub cache_dir: PathBuf,
}

pub(crate) type Shared = Arc<AppState>;

/// A running console.
pub struct Console {
    addr: SocketAddr,
    archive: Arc<Archive>,
    stop_server: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_ingest: Arc<AtomicBool>,
    ingest_done: oneshot::Receiver<Result<(), ConsoleError>>,
}

impl Console {
    /// Opens the index, starts indexing and listens on `listen` (port 0 picks one).
    pub async fn start(
        settings: ServeSettings,
        listen: SocketAddr,
    ) -> Result<Console, ConsoleError> {
        let cfg = settings.console;
        cfg.validate().map_err(ConsoleError::Config)?;
        let index_dir = cfg.index_dir(&settings.data_dir);
        let cache_dir = cfg.cache_dir(&settings.data_dir);
        std::fs::create_dir_all(&cache_dir).map_err(ConsoleError::io(&cache_dir))?;
        let corp = settings.corp_id.clone();
        let (memory, threads) = (cfg.index_memory_mb, cfg.index_threads);
        let dir = index_dir.clone();
        let (archive, indexer) =
            tokio::task::spawn_blocking(move || index::open(&dir, &corp, memory, threads))
                .await
                .map_err(|_| ConsoleError::IngestPanicked)??;
        let audit = audit::Audit::open(&cfg.audit_log(&settings.data_dir))?;

        let stop_ingest = Arc::new(AtomicBool::new(false));
        let (done_tx, ingest_done) = oneshot::channel();
        let stop = stop_ingest.clone();
        let interval = Duration::from_millis(cfg.commit_interval_ms);
        let spec = settings.source.clone();
        let failed = archive.clone();
        std::thread::Builder::new()
            .name("console-ingest".into())
            .spawn(move || {
                let result = ingest::run(indexer, &spec, interval, &stop);
                if let Err(e) = &result {
                    let why = http::chain(e);
                    tracing::error!(error = %why, "console indexing stopped");
                    failed.set_status(|s| s.last_error = Some(why));
                }
                let _ = done_tx.send(result);
            })
            .map_err(ConsoleError::Serve)?;

        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ConsoleError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(ConsoleError::Serve)?;
        if !addr.ip().is_loopback() {
            warn!(%addr, "the console listens beyond loopback: put a TLS proxy in front and set console.secure_cookies");
        }
        let state = Arc::new(AppState {
            archive: archive.clone(),
            objects: settings.objects,
            clock: timefmt::Clock::new(cfg.utc_offset_secs()),
            auth: auth::Auth::new(
                settings.users,
                Duration::from_secs(cfg.session_ttl_minutes * 60),
            ),
            audit,
            work: Arc::new(Semaphore::new(cfg.max_concurrent_queries)),
            transcode: Semaphore::new(2),
            cache_dir,
            cfg,
        });
        let app = router(state);
        let stop_server = CancellationToken::new();
        let stopping = stop_server.clone();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stopping.cancelled().await })
            .await
        });
        info!(%addr, index = %index_dir.display(), "console listening");
        Ok(Console {
            addr,
            archive,
            stop_server,
            server,
            stop_ingest,
            ingest_done,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The index being served (tests wait on its status).
    pub fn archive(&self) -> &Arc<Archive> {
        &self.archive
    }

    /// Serves until `shutdown` is cancelled or indexing fails; then stops both and commits.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ConsoleError> {
        let ingest_result = tokio::select! {
            () = shutdown.cancelled() => None,
            r = &mut self.ingest_done => Some(r.unwrap_or(Err(ConsoleError::IngestPanicked))),
        };
        self.stop_ingest.store(true, Ordering::Relaxed);
        self.stop_server.cancel();
        let served = self.server.await;
        let ingest_result = match ingest_result {
            Some(r) => r,
            None => self
                .ingest_done
                .await
                .unwrap_or(Err(ConsoleError::IngestPanicked)),
        };
        ingest_result?;
        match served {
            Ok(r) => r.map_err(ConsoleError::Serve),
            Err(_) => Err(ConsoleError::Serve(std::io::Error::other(
                "the server task panicked",
            ))),
        }
    }

    /// Stops at once (tests).
    pub async fn stop(self) -> Result<(), ConsoleError> {
        let token = CancellationToken::new();
        token.cancel();
        self.run(token).await
    }
}

/// Starts the console and serves until `shutdown`.
pub async fn serve(
    settings: ServeSettings,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(), ConsoleError> {
    Console::start(settings, listen).await?.run(shutdown).await
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/conversations", get(pages::conversations))
        .route("/c/{id}", get(pages::conversation))
        .route("/c/{id}/export", get(pages::export_conversation))
        .route("/export", get(pages::export_range))
        .route("/m/{msgid}", get(pages::message))
        .route("/search", get(pages::search))
        .route("/media/{*key}", get(media::original))
        .route("/thumb/{*key}", get(media::thumbnail))
        .route("/voice/{*key}", get(media::voice))
        .route("/static/{file}", get(assets::serve))
        .route("/api/status", get(api::status))
        .route("/api/conversations", get(api::conversations))
        .route("/api/conversations/{id}/transcript", get(api::transcript))
        .route("/api/search", get(api::search))
        .route("/api/openapi.json", get(api::openapi))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}
