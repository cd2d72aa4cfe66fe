//! `perry-ship-windows run`: serve the hub until SIGTERM / Ctrl-C, then drain. The Windows
//! service ([`super::service`]) serves the same way, with an SCM stop as the signal.

use crate::pipeline::windows::WindowsPipeline;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub async fn run() -> ExitCode {
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_stop_signal(shutdown.clone()));
    serve(shutdown).await
}

/// Serves the hub until `shutdown` fires, then drains running jobs (PERRY_DRAIN_TIMEOUT).
pub async fn serve(shutdown: CancellationToken) -> ExitCode {
    let config = match super::load_config() {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    crate::hub::init_tracing(&config);
    let runner = match super::make_worker_runner(&config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot set up the build runner: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match crate::hub::run_worker(config, Arc::new(WindowsPipeline), runner, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("worker stopped: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on Ctrl-C or (on Unix) SIGTERM.
async fn wait_for_stop_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining running jobs"),
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: draining running jobs"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C: draining running jobs");
    }
    shutdown.cancel();
}
