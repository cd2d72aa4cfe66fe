//! The optional status server (`PERRY_METRICS_ADDR`). Off unless the variable is set.
//!
//! - `GET /healthz`: liveness, always 200 while the process serves requests; the JSON body
//!   also says whether the worker is ready (connected and taking jobs) and its lifecycle
//!   state (`serving`, `pausing`, `paused`, `idle_exiting`, `job_limit_reached`, `draining`).
//! - `GET /readyz`: readiness, 200 when connected and taking jobs, else 503.
//! - `GET /metrics`: Prometheus text.
//! - `POST /pause`, `POST /resume`: pause and resume the worker. Loopback clients only,
//!   unless `PERRY_CONTROL_ALLOW_REMOTE` is true.

use super::lifecycle::{Lifecycle, Snapshot};
use super::metrics::{LinkState, WorkerMetrics};
use anyhow::Context;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the status server reads and controls.
#[derive(Clone)]
pub(crate) struct StatusState {
    pub(crate) metrics: Arc<WorkerMetrics>,
    pub(crate) lifecycle: Arc<Lifecycle>,
    /// Accept `POST /pause` and `/resume` from any client, not only loopback.
    pub(crate) control_allow_remote: bool,
}

/// Binds `addr` and serves until `stop` fires. Returns the bound address.
pub(crate) async fn serve_status(
    addr: SocketAddr,
    state: StatusState,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on PERRY_METRICS_ADDR {addr}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .with_state(state);
    tokio::spawn(async move {
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.cancelled_owned());
        if let Err(e) = server.await {
            tracing::warn!("status server stopped: {e}");
        }
    });
    tracing::info!(
        "status server on http://{bound} (/healthz, /readyz, /metrics, POST /pause, POST /resume)"
    );
    Ok(bound)
}

/// Connected to the hub and taking jobs.
fn is_ready(state: &StatusState, snapshot: &Snapshot) -> bool {
    snapshot.accepting && state.metrics.link_state() == LinkState::Connected
}

fn lifecycle_json(state: &StatusState) -> serde_json::Value {
    let s = state.lifecycle.snapshot();
    json!({
        "live": true,
        "ready": is_ready(state, &s),
        "state": s.phase.as_str(),
        "paused": s.paused,
        "idle_seconds": s.idle.as_secs(),
        "jobs_taken": s.jobs_taken,
        "max_jobs": s.max_jobs,
    })
}

async fn healthz(State(state): State<StatusState>) -> impl IntoResponse {
    let mut body = state.metrics.health_json();
    if let (Some(body), serde_json::Value::Object(extra)) =
        (body.as_object_mut(), lifecycle_json(&state))
    {
        body.extend(extra);
    }
    Json(body)
}

async fn readyz(State(state): State<StatusState>) -> impl IntoResponse {
    let body = lifecycle_json(&state);
    let code = if body["ready"] == true {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn prometheus(State(state): State<StatusState>) -> impl IntoResponse {
    let mut text = state.metrics.prometheus_text();
    let s = state.lifecycle.snapshot();
    let busy = state
        .metrics
        .running
        .load(std::sync::atomic::Ordering::Relaxed);
    for (name, help, value) in [
        (
            "perry_slots_free",
            "Job slots free now",
            state.metrics.slots_total.saturating_sub(busy) as f64,
        ),
        (
            "perry_idle_seconds",
            "Seconds since the last job ended (0 while a job runs or waits)",
            s.idle.as_secs_f64(),
        ),
        (
            "perry_paused",
            "1 when paused (or pausing)",
            f64::from(u8::from(s.paused)),
        ),
        (
            "perry_ready",
            "1 when connected to the hub and taking jobs",
            f64::from(u8::from(is_ready(&state, &s))),
        ),
        (
            "perry_jobs_taken",
            "Jobs this worker has taken since it started",
            s.jobs_taken as f64,
        ),
    ] {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Whether a control request from `peer` is allowed.
fn control_allowed(peer: &SocketAddr, allow_remote: bool) -> bool {
    allow_remote || peer.ip().is_loopback()
}

fn refused() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::FORBIDDEN,
        Json(
            json!({"error": "pause and resume are accepted from loopback clients only (PERRY_CONTROL_ALLOW_REMOTE)"}),
        ),
    )
}

async fn pause(
    State(state): State<StatusState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> (StatusCode, Json<serde_json::Value>) {
    if !control_allowed(&peer, state.control_allow_remote) {
        return refused();
    }
    tracing::info!(%peer, "POST /pause: pausing (running jobs finish, then the hub link closes)");
    let phase = state.lifecycle.request_pause();
    (
        StatusCode::ACCEPTED,
        Json(json!({"paused": true, "state": phase.as_str()})),
    )
}

async fn resume(
    State(state): State<StatusState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> (StatusCode, Json<serde_json::Value>) {
    if !control_allowed(&peer, state.control_allow_remote) {
        return refused();
    }
    tracing::info!(%peer, "POST /resume: resuming");
    let phase = state.lifecycle.request_resume();
    (
        StatusCode::ACCEPTED,
        Json(json!({"paused": false, "state": phase.as_str()})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_is_loopback_only_unless_allowed() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert!(control_allowed(&local, false));
        assert!(control_allowed(&local6, false));
        assert!(!control_allowed(&remote, false));
        assert!(control_allowed(&remote, true));
    }
}
