//! The optional status server (`PERRY_METRICS_ADDR`): `/healthz` (JSON: link state, slots,
//! queue) and `/metrics` (Prometheus text). Off unless the variable is set.

use super::metrics::WorkerMetrics;
use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Binds `addr` and serves until `stop` fires. Returns the bound address.
pub async fn serve_status(
    addr: SocketAddr,
    metrics: Arc<WorkerMetrics>,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on PERRY_METRICS_ADDR {addr}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .with_state(metrics);
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(e) = server.await {
            tracing::warn!("status server stopped: {e}");
        }
    });
    tracing::info!("status server on http://{bound} (/healthz, /metrics)");
    Ok(bound)
}

async fn healthz(State(metrics): State<Arc<WorkerMetrics>>) -> impl IntoResponse {
    Json(metrics.health_json())
}

async fn prometheus(State(metrics): State<Arc<WorkerMetrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.prometheus_text(),
    )
}
