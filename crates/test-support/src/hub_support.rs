//! Shared pieces of the hub tests: a controllable test pipeline, a worker started against
//! the in-process test hub (through [`crate::worker::WorkerBuilder`]), and project tarballs.
//!
//! The pipeline reads `perry-test.json` from the extracted project, so each job says what
//! it should do: sleep, fail with a code, print N log lines, echo the job's secrets.

use crate::testhub::{ReceivedFrame, TestHub};
use crate::worker::WorkerBuilder;
use perry_ship_windows::config::{Config, LinkTimings};
use perry_ship_windows::error::{ErrorCode, JobError};
use perry_ship_windows::events::{LogStream, Stage};
use perry_ship_windows::pipeline::{Artifact, JobContext, Pipeline};
use perry_ship_windows::sandbox::{Runner, Step, StepContext, StepError, StepOutcome};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PipelineEvent {
    Started(String),
    Ended(String),
}

/// What a job's `perry-test.json` asks for.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct Control {
    sleep_ms: u64,
    fail: Option<String>,
    log_lines: u64,
    echo_secrets: bool,
    artifact_repeat: usize,
}

#[derive(Default)]
pub struct TestPipeline {
    pub events: Mutex<Vec<PipelineEvent>>,
    active: Mutex<HashMap<String, u32>>,
    /// Highest number of simultaneous runs of one job id ever seen.
    pub max_same_job_overlap: AtomicU32,
    /// Highest number of simultaneous runs of any jobs.
    pub max_parallel: AtomicU32,
}

impl TestPipeline {
    pub fn events(&self) -> Vec<PipelineEvent> {
        self.events.lock().unwrap().clone()
    }

    fn enter(&self, job_id: &str) {
        let mut active = self.active.lock().unwrap();
        let n = active.entry(job_id.to_string()).or_default();
        *n += 1;
        self.max_same_job_overlap.fetch_max(*n, Ordering::SeqCst);
        let total: u32 = active.values().sum();
        self.max_parallel.fetch_max(total, Ordering::SeqCst);
        self.events
            .lock()
            .unwrap()
            .push(PipelineEvent::Started(job_id.to_string()));
    }

    fn leave(&self, job_id: &str) {
        *self.active.lock().unwrap().get_mut(job_id).unwrap() -= 1;
        self.events
            .lock()
            .unwrap()
            .push(PipelineEvent::Ended(job_id.to_string()));
    }
}

struct Leave<'a>(&'a TestPipeline, String);
impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.leave(&self.1);
    }
}

fn code_named(name: &str) -> ErrorCode {
    match name {
        "COMPILE_FAILED" => ErrorCode::CompileFailed,
        "SIGNING_FAILED" => ErrorCode::SigningFailed,
        "PACKAGE_FAILED" => ErrorCode::PackageFailed,
        "UPLOAD_TOO_LARGE" => ErrorCode::UploadTooLarge,
        _ => ErrorCode::InternalError,
    }
}

#[async_trait::async_trait]
impl Pipeline for TestPipeline {
    async fn run(&self, job: &JobContext) -> Result<Vec<Artifact>, JobError> {
        self.enter(&job.job_id);
        let _leave = Leave(self, job.job_id.clone());
        let control: Control = std::fs::read(job.project_dir.join("perry-test.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let events = &job.events;
        events.stage(
            Stage::Compiling,
            &format!("compiling {}", job.manifest.entry),
        );
        let secrets: Vec<String> = job
            .credentials
            .secret_values
            .iter()
            .map(|s| s.expose().to_string())
            .collect();
        if control.echo_secrets {
            use base64::Engine;
            for s in &secrets {
                events.log(
                    Stage::Compiling,
                    LogStream::Stderr,
                    &format!("password is {s}!"),
                );
                let b64 = base64::engine::general_purpose::STANDARD.encode(s);
                events.info(Stage::Compiling, &format!("encoded: {b64}"));
                events.progress(Stage::Compiling, 10, Some(&format!("using {s}")));
            }
            if let Some(s) = secrets.first() {
                events.stage(Stage::Compiling, &format!("still compiling with {s}"));
            }
        }
        for i in 0..control.log_lines {
            events.info(Stage::Compiling, &format!("compiler output line {i}"));
        }
        let mut slept = 0;
        while slept < control.sleep_ms {
            if job.cancel.is_cancelled() {
                return Err(JobError::cancelled(Some(Stage::Compiling)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            slept += 20;
        }
        if let Some(code) = &control.fail {
            let secret = secrets.first().cloned().unwrap_or_default();
            return Err(JobError::new(
                code_named(code),
                Some(Stage::Compiling),
                format!("the tool failed (it printed {secret})"),
            ));
        }
        events.stage(Stage::Packaging, "packaging");
        let content = std::fs::read(job.project_dir.join("app.txt"))
            .map_err(|e| JobError::internal(Some(Stage::Packaging), format!("app.txt: {e}")))?;
        let out_dir = job.work_dir.join("out");
        std::fs::create_dir_all(&out_dir).unwrap();
        let path = out_dir.join("TestApp-Setup.exe");
        let body = content.repeat(control.artifact_repeat.max(1));
        std::fs::write(&path, body).unwrap();
        Ok(vec![Artifact {
            path,
            name: "TestApp-1.0.0-Setup.exe".into(),
            target: "windows".into(),
        }])
    }
}

/// The tests never run tools.
pub struct NoRunner;

#[async_trait::async_trait]
impl Runner for NoRunner {
    async fn run(&self, step: &Step, _ctx: &StepContext) -> Result<StepOutcome, StepError> {
        Err(StepError::Infrastructure(anyhow::anyhow!(
            "no runner in hub tests ({})",
            step.name
        )))
    }
    fn describe(&self) -> String {
        "none (hub tests)".into()
    }
}

/// Answers `perry --version` with `perry <version>` the way the Docker runner would
/// (from inside the image); runs no other step.
pub struct VersionRunner(pub &'static str);

#[async_trait::async_trait]
impl Runner for VersionRunner {
    async fn run(&self, step: &Step, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        if step.argv.get(1).map(String::as_str) != Some("--version") {
            return NoRunner.run(step, ctx).await;
        }
        let line = format!("perry {}", self.0);
        ctx.events.log(ctx.stage, LogStream::Stdout, &line);
        Ok(StepOutcome { exit_code: 0 })
    }
    fn describe(&self) -> String {
        "version only (hub tests)".into()
    }
}

/// What the hub tests' worker is never meant to run.
const NO_PERRY: (&str, &str) = ("PERRY_BUILD_PERRY_BINARY", "/nonexistent/perry");

/// Test configuration: fast link timings, a private work dir, tiny free-disk minimum.
/// (The configuration [`start_worker`] uses, with `work_dir` as its work folder.)
pub fn test_config(hub: &TestHub, work_dir: &Path, extra: &[(&str, &str)]) -> Config {
    let work = work_dir.display().to_string();
    let mut config = hub_worker(hub)
        .env(&[("PERRY_WORK_DIR", &work)])
        .env(extra)
        .config();
    fast_link(&mut config);
    config
}

/// The hub tests' worker: named `test-worker`, with no `perry` to run.
fn hub_worker(hub: &TestHub) -> WorkerBuilder {
    WorkerBuilder::new(hub, "test-worker").env(&[NO_PERRY])
}

/// Link timings for tests: pings every 500 ms, reconnects within 50-400 ms.
fn fast_link(config: &mut Config) {
    config.link = LinkTimings {
        ping_interval: Duration::from_millis(500),
        silence_timeout: Duration::from_secs(10),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        healthy_after: Duration::from_secs(60),
        auth_failed_backoff: Duration::from_secs(300),
    };
}

pub struct Worker {
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub pipeline: Arc<TestPipeline>,
    pub work_dir: tempfile::TempDir,
}

impl Worker {
    /// Stops the worker (drain) and waits for it.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("worker stops in time")
            .expect("worker task")
            .expect("worker result");
        self.work_dir
    }
}

/// Starts a worker against `hub`; `tweak` may adjust the configuration.
pub fn start_worker(
    hub: &TestHub,
    extra: &[(&str, &str)],
    tweak: impl FnOnce(&mut Config),
) -> Worker {
    start_worker_with_runner(hub, extra, tweak, Arc::new(NoRunner))
}

/// [`start_worker`] with a given runner (the worker asks it for `perry --version`).
pub fn start_worker_with_runner(
    hub: &TestHub,
    extra: &[(&str, &str)],
    tweak: impl FnOnce(&mut Config),
    runner: Arc<dyn Runner>,
) -> Worker {
    let pipeline = Arc::new(TestPipeline::default());
    let worker = hub_worker(hub).env(extra).start_tweaked(
        |config| {
            fast_link(config);
            tweak(config);
        },
        pipeline.clone(),
        runner,
    );
    Worker {
        shutdown: worker.shutdown,
        handle: worker.handle,
        pipeline,
        work_dir: worker.work_dir,
    }
}

/// Starts a worker and waits for its first hello.
pub async fn connected_worker(hub: &TestHub, extra: &[(&str, &str)]) -> Worker {
    let w = start_worker(hub, extra, |_| {});
    hub.wait_for_hello(1, WAIT)
        .await
        .expect("worker says hello");
    w
}

pub fn manifest() -> Value {
    json!({"app_name":"TestApp","bundle_id":"com.example.test","version":"1.0","entry":"src/main.ts"})
}

/// A gzip tarball of a small project whose pipeline behaviour is `control`.
pub fn project_tarball(control: Value) -> Vec<u8> {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("src/main.ts", b"console.log('hi')\n".to_vec()),
        ("app.txt", b"MZ pretend this is an installer\n".to_vec()),
        ("perry-test.json", control.to_string().into_bytes()),
    ];
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Registers and assigns a job with `control`.
pub fn assign(hub: &TestHub, job_id: &str, control: Value) {
    hub.assign(
        job_id,
        &format!("token-{job_id}"),
        project_tarball(control),
        manifest(),
        json!({}),
    )
    .expect("assign");
}

pub fn kinds(frames: &[ReceivedFrame]) -> Vec<String> {
    frames.iter().map(|f| f.kind().to_string()).collect()
}

/// The `error` frame of a job (panics when missing).
pub fn error_of(hub: &TestHub, job_id: &str) -> Value {
    hub.job_frames(job_id)
        .into_iter()
        .find(|f| f.kind() == "error")
        .map(|f| f.json)
        .unwrap_or_else(|| {
            panic!(
                "no error frame for {job_id}: {:?}",
                kinds(&hub.job_frames(job_id))
            )
        })
}

/// Asserts the failure shape: `error` then `complete{success:false, artifacts:[]}`, last.
pub fn assert_failed(hub: &TestHub, job_id: &str) -> Value {
    let frames = hub.job_frames(job_id);
    let k = kinds(&frames);
    let n = k.len();
    assert!(n >= 2, "{job_id}: {k:?}");
    assert_eq!(&k[n - 2..], ["error", "complete"], "{job_id}: {k:?}");
    let complete = &frames[n - 1].json;
    assert_eq!(complete["success"], false);
    assert_eq!(complete["artifacts"], json!([]));
    assert!(complete["duration_secs"].is_f64() || complete["duration_secs"].is_u64());
    let error = frames[n - 2].json.clone();
    assert_eq!(
        complete["error"], error["message"],
        "{job_id}: the failed complete carries the error message"
    );
    error
}

/// Lets in-flight frames arrive before asserting "nothing more came".
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// The work dir holds no job folder any more.
pub fn assert_work_dir_clean(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "job folders left behind: {left:?}");
}
