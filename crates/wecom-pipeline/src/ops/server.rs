//! The ops HTTP server: `/metrics` (Prometheus text), `/health` (the process is up), `/ready` (every
//! running stream fetches and commits; otherwise a 503 with the problems as JSON).

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{export_process_stats, install_recorder, readiness};

/// Starts the `/metrics`, `/health`, `/ready` server on `listen` until `shutdown`; returns the bound address.
pub async fn serve(listen: SocketAddr, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;

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
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "ops server stopped with an error");
        }
    });
    info!(%addr, "ops server listening (/metrics, /health, /ready)");
    Ok(addr)
}
