//! The ops HTTP server: `/metrics` (Prometheus text), `/health` (the process is up), `/ready` (every
//! running stream fetches and commits; otherwise a 503 with the problems as JSON), and, with `[notify]`,
//! the `msgaudit_notify` callback receiver (`crate::notify`).

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{export_process_stats, install_recorder, readiness};
use crate::notify::OpsEndpoint;

/// Starts the `/metrics`, `/health`, `/ready` server until `shutdown`, with the `msgaudit_notify`
/// callback receiver when the endpoint has one; returns the bound address. A bare address serves no
/// callback.
pub async fn serve(
    endpoint: impl Into<OpsEndpoint>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;

    let OpsEndpoint { listen, callback } = endpoint.into();
    let handle = install_recorder();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    export_process_stats();
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/ready",
            get(|| async {
                match readiness() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
                    Err(problems) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::CONTENT_TYPE, "application/json")],
                        serde_json::json!({ "ready": false, "problems": problems }).to_string(),
                    )
                        .into_response(),
                }
            }),
        );
    let with_callback = callback.is_some();
    let app = match callback {
        Some(receiver) => app.merge(crate::notify::router(receiver)),
        None => app,
    };
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %wecom_model::error_chain(&e), "ops server stopped with an error");
        }
    });
    if with_callback {
        info!(%addr, callback = crate::notify::CALLBACK_PATH, "ops server listening (/metrics, /health, /ready, msgaudit_notify callback)");
    } else {
        info!(%addr, "ops server listening (/metrics, /health, /ready)");
    }
    Ok(addr)
}
