//! The one worker starter of the tests and benchmarks: [`WorkerBuilder`] runs the worker's
//! service loop (`perry_ship_windows::hub::run_worker`) in this process against a
//! [`TestHub`], with a private work folder, a name, the configuration a test adds, and the
//! pipeline and runner it picks (a stand-in, the host runner, or a Docker runner made from the
//! configuration). [`InProcessWorker`] stops it. (`fleet_support::BinWorker` runs the worker
//! binary as a child process instead, for what only a process shows: signals, exit codes.)

use crate::testhub::TestHub;
use perry_ship_windows::config::Config;
use perry_ship_windows::hub::run_worker;
use perry_ship_windows::pipeline::Pipeline;
use perry_ship_windows::sandbox::docker::DockerRunner;
use perry_ship_windows::sandbox::Runner;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a worker is started with: `PERRY_*` pairs (later pairs win) on top of the hub's URL,
/// a fresh work folder, `PERRY_MIN_FREE_DISK=1m` and the worker's name.
pub struct WorkerBuilder {
    vars: Vec<(String, String)>,
    work_dir: tempfile::TempDir,
    name: String,
}

impl WorkerBuilder {
    /// A worker named `name` for `hub`, working in a new temporary folder.
    pub fn new(hub: &TestHub, name: &str) -> WorkerBuilder {
        let work_dir = tempfile::tempdir().expect("a temporary work folder");
        let work = work_dir.path().display().to_string();
        let builder = WorkerBuilder {
            vars: Vec::new(),
            work_dir,
            name: name.to_string(),
        };
        builder.env(&[
            ("PERRY_HUB_URL", &hub.ws_url()),
            ("PERRY_WORK_DIR", &work),
            ("PERRY_MIN_FREE_DISK", "1m"),
            ("PERRY_WORKER_NAME", name),
        ])
    }

    /// Compile and makensis steps in Docker containers of `image`, with 1 GiB of memory.
    pub fn docker(self, image: &str) -> WorkerBuilder {
        self.env(&[
            ("PERRY_DOCKER_ENABLED", "true"),
            ("PERRY_DOCKER_IMAGE", image),
            ("PERRY_DOCKER_MEMORY", "1g"),
        ])
    }

    /// Adds `PERRY_*` pairs; they win over what was set before.
    pub fn env(mut self, pairs: &[(&str, &str)]) -> WorkerBuilder {
        self.vars
            .extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// The configuration these pairs make.
    pub fn config(&self) -> Config {
        let pairs: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Config::for_tests(&pairs)
    }

    /// Starts the worker with `pipeline` and `runner`.
    pub fn start(self, pipeline: Arc<dyn Pipeline>, runner: Arc<dyn Runner>) -> InProcessWorker {
        self.start_tweaked(|_| {}, pipeline, runner)
    }

    /// [`WorkerBuilder::start`] after `tweak` adjusted the configuration (settings that have
    /// no variable, such as link timings).
    pub fn start_tweaked(
        self,
        tweak: impl FnOnce(&mut Config),
        pipeline: Arc<dyn Pipeline>,
        runner: Arc<dyn Runner>,
    ) -> InProcessWorker {
        let mut config = self.config();
        tweak(&mut config);
        self.spawn(config, pipeline, runner)
    }

    /// Starts the worker with `pipeline` and a Docker runner made from its configuration
    /// (returned too, for its audit).
    pub fn start_docker(self, pipeline: Arc<dyn Pipeline>) -> (InProcessWorker, Arc<DockerRunner>) {
        let config = self.config();
        let runner = Arc::new(DockerRunner::new(&config).expect("docker runner"));
        (self.spawn(config, pipeline, runner.clone()), runner)
    }

    fn spawn(
        self,
        config: Config,
        pipeline: Arc<dyn Pipeline>,
        runner: Arc<dyn Runner>,
    ) -> InProcessWorker {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run_worker(
            Arc::new(config),
            pipeline,
            runner,
            shutdown.clone(),
        ));
        InProcessWorker {
            shutdown,
            handle,
            work_dir: self.work_dir,
            name: self.name,
        }
    }
}

/// A worker running in this process.
pub struct InProcessWorker {
    /// Cancelling it drains the worker (no new jobs, running ones finish).
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The work folder (removed when this is dropped).
    pub work_dir: tempfile::TempDir,
    /// `PERRY_WORKER_NAME` (the label on its containers).
    pub name: String,
}

impl InProcessWorker {
    /// Drains the worker and waits up to `limit` for it, whatever it returns.
    pub async fn stop_within(self, limit: Duration) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(limit, self.handle).await;
    }
}
