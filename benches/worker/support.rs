//! Shared set-up of the worker benchmarks: prerequisites (engine, image, through the gate),
//! the test PKI and local TSA, a worker connected to an in-process test hub (the shared
//! [`WorkerBuilder`]), project tarballs, and the process's resident-memory figures from
//! /proc/self/status.

use base64::Engine as _;
use perry_ship_windows::pipeline::Pipeline;
use perry_test_support::sign_fixtures as fixtures;
use perry_test_support::sign_servers as servers;
use perry_test_support::testhub::TestHub;
use perry_test_support::worker::{InProcessWorker, WorkerBuilder};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const JOB_TIMEOUT: Duration = Duration::from_secs(900);
pub const PFX_PASSWORD: &str = "bench-Pfx-Passw0rd!";

/// What every section needs: the image, a code-signing PKI with a PFX, a local TSA.
pub struct BenchEnv {
    pub image: String,
    pub pki: fixtures::Pki,
    pub tsa: servers::Tsa,
    /// The PFX on disk (for osslsigncode) and its password in a 0600 file.
    pub pfx_path: PathBuf,
    pub pass_file: PathBuf,
    /// `job_assign.credentials` signing with the same PFX and TSA.
    pub credentials: Value,
    _dir: tempfile::TempDir,
}

impl BenchEnv {
    pub async fn prepare() -> Option<BenchEnv> {
        let (_, image) = perry_test_support::docker::require_toolchain().await?;
        let dir = tempfile::tempdir().unwrap();
        let pki = fixtures::Pki::create(&dir.path().join("pki"));
        let pfx = pki.pfx("bench", "rsa.key", "rsa.crt", PFX_PASSWORD, &[]);
        let pfx_path = dir.path().join("bench.pfx");
        write_private(&pfx_path, &pfx);
        let pass_file = dir.path().join("pfx.pass");
        write_private(&pass_file, PFX_PASSWORD.as_bytes());
        let tsa = servers::start_tsa(pki.dir.clone()).await;
        let credentials = json!({
            "windows_pfx_base64": base64::engine::general_purpose::STANDARD.encode(&pfx),
            "windows_pfx_password": PFX_PASSWORD,
            "windows_timestamp_url": tsa.url,
        });
        Some(BenchEnv {
            image,
            pki,
            tsa,
            pfx_path,
            pass_file,
            credentials,
            _dir: dir,
        })
    }
}

fn write_private(path: &Path, data: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}

/// The pipeline as the worker binary runs it: the Windows pipeline in a child process per
/// job.
pub fn production_pipeline() -> Arc<dyn Pipeline> {
    Arc::new(perry_ship_windows::isolation::IsolatedPipeline::new(
        env!("CARGO_BIN_EXE_perry-ship-windows").into(),
    ))
}

/// A worker (Docker runner) connected to its own in-process test hub.
pub struct Worker {
    pub hub: TestHub,
    worker: InProcessWorker,
}

impl Worker {
    pub async fn start(
        env: &BenchEnv,
        pipeline: Arc<dyn Pipeline>,
        extra: &[(&str, &str)],
    ) -> Worker {
        let hub = TestHub::start().await.expect("test hub");
        let name = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let (worker, _) = WorkerBuilder::new(&hub, &name)
            .docker(&env.image)
            .env(&[("PERRY_MAX_ARTIFACT_SIZE", "2g")])
            .env(extra)
            .start_docker(pipeline);
        hub.wait_for_hello(1, Duration::from_secs(30))
            .await
            .expect("worker says hello");
        Worker { hub, worker }
    }

    /// Assigns a job and waits for its `complete`; returns (success, wall time from assign).
    pub async fn run_job(
        &self,
        job_id: &str,
        tarball: Vec<u8>,
        manifest: Value,
        credentials: Value,
    ) -> (bool, Duration) {
        let started = Instant::now();
        self.hub
            .assign(
                job_id,
                &format!("tok-{job_id}"),
                tarball,
                manifest,
                credentials,
            )
            .expect("assign");
        let complete = self
            .hub
            .wait_for_complete(job_id, JOB_TIMEOUT)
            .await
            .expect("complete frame");
        let ok = complete.json["success"] == Value::Bool(true);
        if !ok {
            let error = self
                .hub
                .job_frames(job_id)
                .into_iter()
                .find(|f| f.kind() == "error");
            eprintln!(
                "job {job_id} failed: {}",
                error.map_or(complete.raw.clone(), |f| f.raw)
            );
        }
        (ok, started.elapsed())
    }

    pub async fn stop(self) {
        self.worker.stop_within(Duration::from_secs(60)).await;
    }
}

pub use perry_test_support::example_project::{
    copy_dir, example_dir, example_manifest, example_with_marker, tarball_of,
};
pub use perry_test_support::measure::{reset_peak_rss, status_kib};

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
