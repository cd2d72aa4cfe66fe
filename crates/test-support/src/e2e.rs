//! Shared harness of the end-to-end tests: a test hub, a worker running the real
//! Windows pipeline in its per-job child process (as in production) with Docker containers (started by [`crate::worker::WorkerBuilder`]),
//! project tarballs and frame assertions.

use crate::testhub::{ReceivedFrame, TestHub};
use crate::worker::WorkerBuilder;
use perry_ship_windows::isolation::IsolatedPipeline;
use perry_ship_windows::sandbox::docker::DockerRunner;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const JOB_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Worker {
    pub hub: TestHub,
    pub runner: Arc<DockerRunner>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub work_dir: tempfile::TempDir,
    pub name: String,
}

/// Starts a test hub and a Docker-backed worker connected to it. `None` when the engine or
/// the toolchain image is missing outside CI (under `CI=true` that panics instead).
pub async fn start_worker(extra_env: &[(&str, &str)]) -> Option<Worker> {
    let image = crate::docker::toolchain_image();
    crate::docker::require_image(&image).await?;
    let hub = TestHub::start().await.expect("test hub");
    let name = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let (worker, runner) = WorkerBuilder::new(&hub, &name)
        .docker(&image)
        .env(extra_env)
        .start_docker(Arc::new(IsolatedPipeline::new(crate::worker_binary())));
    hub.wait_for_hello(1, Duration::from_secs(20))
        .await
        .expect("worker says hello");
    Some(Worker {
        hub,
        runner,
        shutdown: worker.shutdown,
        task: worker.handle,
        work_dir: worker.work_dir,
        name: worker.name,
    })
}

impl Worker {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// Asserts the protocol shape of one job's frames: every frame has the job id, stages only
/// move forward, `complete` is last and carries every field the CLI needs.
pub fn assert_protocol_sequence(frames: &[ReceivedFrame], job_id: &str, success: bool) {
    assert!(!frames.is_empty(), "no frames for {job_id}");
    const ORDER: [&str; 8] = [
        "extracting",
        "compiling",
        "generating_assets",
        "bundling",
        "signing",
        "packaging",
        "uploading",
        "complete",
    ];
    let mut last_stage = 0;
    for f in frames {
        assert_eq!(f.job_id(), Some(job_id), "frame without job_id: {}", f.raw);
        if f.kind() == "stage" {
            let stage = f.json["stage"].as_str().unwrap();
            let pos = ORDER
                .iter()
                .position(|s| *s == stage)
                .unwrap_or_else(|| panic!("unknown stage {stage}"));
            assert!(
                pos >= last_stage,
                "stage {stage} after {}",
                ORDER[last_stage]
            );
            last_stage = pos;
        }
        if f.kind() == "progress" {
            let p = f.json["percent"].as_u64().expect("integer percent");
            assert!(p <= 100);
        }
    }
    let last = frames.last().unwrap();
    assert_eq!(
        last.kind(),
        "complete",
        "complete is not last: {}",
        last.raw
    );
    for field in ["job_id", "success", "duration_secs", "artifacts"] {
        assert!(last.json.get(field).is_some(), "complete lacks {field}");
    }
    assert_eq!(last.json["success"], Value::Bool(success), "{}", last.raw);
    let errors: Vec<_> = frames.iter().filter(|f| f.kind() == "error").collect();
    if success {
        assert!(
            errors.is_empty(),
            "error frames in a successful job: {:?}",
            errors.iter().map(|f| &f.raw).collect::<Vec<_>>()
        );
    } else {
        assert_eq!(errors.len(), 1, "exactly one error frame expected");
        let pos_err = frames.iter().position(|f| f.kind() == "error").unwrap();
        assert_eq!(
            pos_err,
            frames.len() - 2,
            "error must come right before complete"
        );
        assert_eq!(
            last.json["error"], errors[0].json["message"],
            "a failed complete carries the error message"
        );
    }
    if success {
        assert!(last.json.get("error").is_none(), "{}", last.raw);
    }
}

/// Assigns `job` with this tarball, manifest and credentials and returns its `complete`
/// frame.
pub async fn run_job(
    worker: &Worker,
    job: &str,
    tarball: Vec<u8>,
    manifest: Value,
    credentials: Value,
) -> ReceivedFrame {
    worker
        .hub
        .assign(job, &format!("tok-{job}"), tarball, manifest, credentials)
        .unwrap();
    worker
        .hub
        .wait_for_complete(job, JOB_TIMEOUT)
        .await
        .unwrap()
}

/// [`run_job`] on the unchanged example project built as `distribute`.
pub async fn run_example_job(
    worker: &Worker,
    job: &str,
    distribute: &str,
    credentials: Value,
) -> ReceivedFrame {
    let tarball = crate::example_project::tarball_of(&crate::example_project::example_dir());
    let manifest = crate::example_project::example_manifest(distribute);
    run_job(worker, job, tarball, manifest, credentials).await
}

/// Assigns `job`: the example project with a compile step that sleeps 300 s (portable, no
/// signing). Returns once its compile container exists and has had half a second to start;
/// keep the returned folder alive until the job ends.
pub async fn assign_long_compile(worker: &Worker, job: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let slow = crate::example_project::example_with_marker(
        &dir.path().join("project"),
        "perry-standin: sleep 300",
    );
    worker
        .hub
        .assign(
            job,
            &format!("tok-{job}"),
            crate::example_project::tarball_of(&slow),
            crate::example_project::example_manifest("portable"),
            serde_json::json!({}),
        )
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while containers_of_job(job).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the compile container of {job} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    dir
}

/// Containers (running or not) that carry this job's label.
pub async fn containers_of_job(job_id: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=perry-ship.job={job_id}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `7z l -slt` paths of an archive (NSIS installers included).
pub fn seven_zip_paths(archive: &Path) -> Vec<String> {
    let out = std::process::Command::new("7z")
        .arg("l")
        .arg("-slt")
        .arg(archive)
        .output()
        .expect("7z");
    assert!(
        out.status.success(),
        "7z l failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("Path = "))
        .map(|p| p.replace('\\', "/"))
        .collect()
}
