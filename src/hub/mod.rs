//! The worker service: the link to the Perry Hub, the wire protocol, and the job scheduler.
//!
//! [`run_worker`] wires the pieces: the `link` task owns the WebSocket and turns frames
//! into `protocol::HubFrame`s; the `scheduler` decides which job runs when; each job runs
//! through `job_run`, reporting via a masked, rate-limited `sink::HubEventSink` into one
//! bounded outgoing channel that the link drains. `status` optionally serves `/healthz`,
//! `/readyz`, `/metrics`, `POST /pause` and `POST /resume`. The `lifecycle` says whether
//! the worker takes jobs (pause, idle action, job limit); the `supervisor` acts on it
//! through the link's `link_switch` and the `idle_action`.
//!
//! The hub's HTTP side is here too: [`transfer`] downloads a job's project tarball and
//! uploads its artifacts; `job_io` plugs both into `crate::job::lifecycle`, which runs
//! the job itself.

pub(crate) mod azure_vm;
pub(crate) mod backoff;
pub(crate) mod gate;
pub(crate) mod idle_action;
mod job_io;
pub(crate) mod job_run;
pub(crate) mod lifecycle;
pub(crate) mod link;
pub(crate) mod link_switch;
mod logging;
pub mod metrics;
mod oversize;
pub mod protocol;
pub(crate) mod scheduler;
pub(crate) mod sink;
pub(crate) mod status;
pub(crate) mod supervisor;
pub mod transfer;
pub(crate) mod update;

pub(crate) use logging::init_tracing;

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::sandbox::Runner;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames waiting for the link. Bounded: a log flood drops lines instead of growing memory.
const OUTGOING_CAPACITY: usize = 1024;
/// Hub frames waiting for the scheduler.
const INCOMING_CAPACITY: usize = 64;
/// Time allowed to flush the last frames and close the link after the jobs ended.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the worker until `shutdown` fires and the running jobs have drained (or were
/// cancelled at the drain deadline and reported), then closes the link. The worker fires
/// `shutdown` itself after its idle action or its last job (`PERRY_MAX_JOBS`).
pub async fn run_worker(
    config: Arc<Config>,
    pipeline: Arc<dyn Pipeline>,
    runner: Arc<dyn Runner>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let lifecycle = Arc::new(lifecycle::Lifecycle::new(
        config.fleet.idle_timeout,
        config.fleet.max_jobs,
    ));
    run_worker_with(config, pipeline, runner, shutdown, lifecycle).await
}

/// [`run_worker`] with a lifecycle the caller also holds (to pause and resume on signals).
pub(crate) async fn run_worker_with(
    config: Arc<Config>,
    pipeline: Arc<dyn Pipeline>,
    runner: Arc<dyn Runner>,
    shutdown: CancellationToken,
    lifecycle: Arc<lifecycle::Lifecycle>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(metrics::WorkerMetrics::new(config.max_concurrent));
    let status_stop = CancellationToken::new();
    let _status_guard = status_stop.clone().drop_guard();
    if let Some(addr) = config.metrics_addr {
        let state = status::StatusState {
            metrics: metrics.clone(),
            lifecycle: lifecycle.clone(),
            control_allow_remote: config.fleet.control_allow_remote,
        };
        status::serve_status(addr, state, status_stop.clone()).await?;
    }

    // Like orphan containers: what a crashed run of this worker left goes first.
    match crate::job::workdir::remove_leftovers(&config.work_dir, &config.worker_name) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} leftover work folder(s) of a previous run"),
        Err(e) => tracing::warn!("could not remove leftover work folders: {e:#}"),
    }
    let perry_version = update::perry_version(&config, runner.as_ref()).await;
    let hello = update::worker_hello(&config, perry_version);
    let capabilities = match &hello {
        protocol::WorkerFrame::WorkerHello { capabilities, .. } => capabilities.clone(),
        _ => Vec::new(),
    };
    let (hello_tx, hello_rx) = tokio::sync::watch::channel(hello);
    tracing::info!(
        name = %config.worker_name,
        ?capabilities,
        slots = config.max_concurrent,
        runner = %runner.describe(),
        "starting worker"
    );

    let (out_tx, out_rx) = mpsc::channel(OUTGOING_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel(INCOMING_CAPACITY);
    let link_stop = CancellationToken::new();
    let (switch, hold) = link_switch::link_switch();
    let mut link = tokio::spawn(link::run_link(link::LinkSetup {
        url: config.hub_url.clone(),
        hello: hello_rx,
        timings: config.link,
        max_assign_frame: config.max_assign_frame,
        metrics: metrics.clone(),
        incoming: in_tx,
        outgoing: out_rx,
        stop: link_stop.clone(),
        hold,
    }));

    let supervisor = tokio::spawn(
        supervisor::Supervisor {
            lifecycle: lifecycle.clone(),
            switch,
            idle_actor: idle_action::IdleActor::new(&config, crate::hub::transfer::http_client()),
            idle_timeout: config.fleet.idle_timeout,
            shutdown: shutdown.clone(),
        }
        .run(),
    );
    let _supervisor_guard = AbortOnDrop(supervisor);

    let env = Arc::new(job_run::JobEnv {
        config: config.clone(),
        pipeline,
        runner,
        http: crate::hub::transfer::http_client_allowing(config.transfer_origins.clone()),
        out: out_tx,
        metrics,
    });
    scheduler::Scheduler::new(env, hello_tx)
        .with_lifecycle(lifecycle)
        .run(in_rx, shutdown)
        .await;

    // Every sender is gone now: the link sends what is left, closes, and returns.
    if tokio::time::timeout(FLUSH_TIMEOUT, &mut link)
        .await
        .is_err()
    {
        tracing::warn!("could not flush the last frames to the hub in time; closing anyway");
        link_stop.cancel();
        let _ = link.await;
    }
    tracing::info!("worker stopped");
    Ok(())
}

/// Stops a background task when the worker returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
