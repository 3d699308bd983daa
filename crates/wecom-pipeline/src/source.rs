//! Connecting to the archive: the HTTP client of the project's contract, in front of whichever server
//! speaks it — a remote gateway or simulator (`source.kind = "http"`), the SDK worker pool behind an
//! in-process gateway (`"sdk"`), or an embedded simulator (`"sim"`, only in builds with the `sim`
//! feature). Every run, replay and media worker of the process shares one `Source`, hence one token cache
//! and one room metadata cache.

use std::sync::Arc;

use tracing::{info, warn};
use wecom_api::{ArchiveClient, ClientConfig};

use crate::config::{SourceConfig, Validated};
use crate::error::PipelineError;

/// A source the pipeline talks to: the HTTP client, plus what must live as long as it does (the embedded
/// simulator, the SDK pool and its in-process gateway).
pub struct Source {
    pub client: ArchiveClient,
    #[cfg(feature = "sim")]
    pub sim: Option<wecom_sim::SimServer>,
    /// The SDK worker pool, when the source or the cipher is the SDK.
    pub sdk: Option<wecom_sdk::SdkPool>,
    /// The in-process gateway that serves the SDK source to `client`.
    gateway: Option<wecom_sdk::GatewayHandle>,
    /// The room metadata cache (`[rooms] enrich`), shared by every run on this source (rooms.rs).
    pub rooms: Option<Arc<crate::rooms::RoomCache>>,
    /// The consent cache (`[consent] enabled`), shared by every run on this source (consent/cache.rs).
    pub consent: Option<Arc<crate::consent::ConsentCache>>,
}

impl Source {
    pub async fn connect(cfg: &Validated) -> Result<Self, PipelineError> {
        let sdk = crate::sdk::start_pool(cfg).await?;
        let mut secret = cfg.corp_secret.clone();
        let mut gateway = None;
        #[cfg(feature = "sim")]
        let mut sim = None;
        let base_url = match &cfg.source {
            SourceConfig::Http { base_url } => base_url.clone(),
            SourceConfig::Sdk {} => {
                let pool = sdk.as_ref().ok_or_else(|| PipelineError::Sdk {
                    corp_id: cfg.corp_id.clone(),
                    reason: "source.kind = \"sdk\" needs the [sdk] section".into(),
                })?;
                let (handle, token) = crate::sdk::local_gateway(pool, &cfg.corp_id).await?;
                info!(url = %handle.base_url(), "sdk source: in-process gateway started");
                secret = token;
                let url = handle.base_url();
                gateway = Some(handle);
                url
            }
            #[cfg(feature = "sim")]
            SourceConfig::Sim { sim: settings } => {
                let mut settings = (**settings).clone();
                settings.corp_id = cfg.corp_id.clone();
                settings.corp_secret = cfg.corp_secret.expose().to_string();
                let addr = ([127, 0, 0, 1], 0).into();
                let server = wecom_sim::start(settings, addr)
                    .await
                    .map_err(|e| PipelineError::Sim(e.to_string()))?;
                info!(url = %server.base_url(), "embedded simulator started");
                let url = server.base_url();
                sim = Some(server);
                url
            }
        };
        let mut client_cfg = ClientConfig::new(base_url, cfg.corp_id.clone(), secret);
        client_cfg.request_timeout = cfg.request_timeout;
        client_cfg.retry = cfg.retry.clone();
        let client = ArchiveClient::new(client_cfg).map_err(|source| PipelineError::Api {
            corp_id: cfg.corp_id.clone(),
            source: Box::new(source),
        })?;
        let rooms = match (cfg.rooms.enrich, cfg.archive.enabled) {
            (false, _) => None,
            (true, false) => Some(crate::rooms::RoomCache::from_client(&client, &cfg.rooms)),
            (true, true) => {
                let ledger = crate::room_history::open_ledger(cfg)?;
                Some(
                    crate::rooms::RoomCache::from_client(&client, &cfg.rooms)
                        .with_snapshots(crate::room_history::SnapshotWriter::start(ledger)),
                )
            }
        }
        .map(Arc::new);
        let consent = cfg.consent.enabled.then(|| {
            Arc::new(crate::consent::ConsentCache::from_client(
                &client,
                &cfg.consent,
            ))
        });
        Ok(Self {
            consent,
            client,
            #[cfg(feature = "sim")]
            sim,
            sdk,
            gateway,
            rooms,
        })
    }

    pub async fn shutdown(self) {
        if let Some(w) = self.rooms.as_ref().and_then(|r| r.snapshots()) {
            w.finish().await;
        }
        #[cfg(feature = "sim")]
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
        if let Some(g) = self.gateway {
            if let Err(e) = g.shutdown().await {
                warn!(error = %wecom_model::error_chain(&e), "in-process sdk gateway did not shut down cleanly");
            }
        }
        if let Some(pool) = self.sdk {
            pool.shutdown().await;
        }
    }
}
