//! `perry-ship-windows run`: serve the hub until SIGTERM / Ctrl-C (then drain), the idle
//! action, or the job limit (`--max-jobs` / `PERRY_MAX_JOBS`). On Unix, `SIGUSR1` pauses
//! the worker and `SIGUSR2` resumes it. The Windows service ([`super::service`]) serves the
//! same way, with an SCM stop as the signal.

use crate::hub::lifecycle::Lifecycle;
use crate::isolation::IsolatedPipeline;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Options of `run`.
#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// Exit 0 after this many jobs ended (one-job workers: 1). Overrides PERRY_MAX_JOBS.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) max_jobs: Option<u64>,
}

/// Runs `run`: serves the hub until a stop signal (then drains), the idle action or the job limit.
pub async fn run(args: RunArgs) -> ExitCode {
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_stop_signal(shutdown.clone()));
    serve(args, shutdown).await
}

/// Serves the hub until `shutdown` fires, then drains running jobs (PERRY_DRAIN_TIMEOUT).
pub(crate) async fn serve(args: RunArgs, shutdown: CancellationToken) -> ExitCode {
    let mut config = match super::load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(n) = args.max_jobs {
        config.fleet.max_jobs = Some(n);
    }
    let config = Arc::new(config);
    crate::hub::init_tracing(&config);
    let runner = match super::make_worker_runner(&config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot set up the build runner: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let lifecycle = Arc::new(Lifecycle::new(
        config.fleet.idle_timeout,
        config.fleet.max_jobs,
    ));
    #[cfg(unix)]
    tokio::spawn(pause_on_signals(lifecycle.clone()));
    let pipeline = match IsolatedPipeline::of_this_program() {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!("cannot find this program to start job processes: {e}");
            return ExitCode::FAILURE;
        }
    };
    match crate::hub::run_worker_with(config, pipeline, runner, shutdown, lifecycle).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("worker stopped: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `SIGUSR1` pauses (running jobs finish, then the hub link closes), `SIGUSR2` resumes.
#[cfg(unix)]
async fn pause_on_signals(lifecycle: Arc<Lifecycle>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut pause, mut resume) = match (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("cannot listen for SIGUSR1/SIGUSR2 (pause/resume): {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            Some(()) = pause.recv() => {
                tracing::info!("SIGUSR1: pausing (running jobs finish, then the hub link closes)");
                lifecycle.request_pause();
            }
            Some(()) = resume.recv() => {
                tracing::info!("SIGUSR2: resuming");
                lifecycle.request_resume();
            }
            else => return,
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
