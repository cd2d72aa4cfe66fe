//! Shared set-up of the worker benchmarks: prerequisites (engine, image), the test PKI and
//! local TSA, a worker connected to an in-process test hub, project tarballs, and the
//! process's resident-memory figures from /proc/self/status.

use crate::{fixtures, servers};
use base64::Engine as _;
use perry_ship_windows::config::Config;
use perry_ship_windows::hub::run_worker;
use perry_ship_windows::pipeline::Pipeline;
use perry_ship_windows::sandbox::docker::DockerRunner;
use perry_ship_windows::testhub::TestHub;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const JOB_TIMEOUT: Duration = Duration::from_secs(900);
pub const PFX_PASSWORD: &str = "bench-Pfx-Passw0rd!";

/// Panics under `CI=true`, otherwise prints a SKIP note.
pub fn skip_or_fail(why: &str) {
    if matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1")) {
        panic!("CI=true but {why} (run scripts/setup-host.sh)");
    }
    eprintln!("SKIPPED: {why} (run scripts/setup-host.sh; with CI=true this fails)");
}

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
        let image = std::env::var("PERRY_DOCKER_IMAGE")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| perry_ship_windows::config::default_image().to_string());
        let docker = match bollard::Docker::connect_with_defaults() {
            Ok(d) => d,
            Err(e) => {
                skip_or_fail(&format!("cannot connect to the Docker engine: {e}"));
                return None;
            }
        };
        if !matches!(
            tokio::time::timeout(Duration::from_secs(5), docker.ping()).await,
            Ok(Ok(_))
        ) {
            skip_or_fail("the Docker engine does not answer a ping");
            return None;
        }
        if docker.inspect_image(&image).await.is_err() {
            skip_or_fail(&format!("image {image} is missing"));
            return None;
        }
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

/// A worker (Docker runner) connected to its own in-process test hub.
pub struct Worker {
    pub hub: TestHub,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _work_dir: tempfile::TempDir,
}

impl Worker {
    pub async fn start(
        env: &BenchEnv,
        pipeline: Arc<dyn Pipeline>,
        extra: &[(&str, &str)],
    ) -> Worker {
        let hub = TestHub::start().await.expect("test hub");
        let work_dir = tempfile::tempdir().unwrap();
        let ws = hub.ws_url();
        let work = work_dir.path().display().to_string();
        let name = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let mut vars: Vec<(&str, &str)> = vec![
            ("PERRY_HUB_URL", &ws),
            ("PERRY_DOCKER_ENABLED", "true"),
            ("PERRY_DOCKER_IMAGE", &env.image),
            ("PERRY_WORK_DIR", &work),
            ("PERRY_WORKER_NAME", &name),
            ("PERRY_MIN_FREE_DISK", "1m"),
            ("PERRY_DOCKER_MEMORY", "1g"),
            ("PERRY_MAX_ARTIFACT_SIZE", "2g"),
        ];
        vars.extend_from_slice(extra);
        let config = Arc::new(Config::for_tests(&vars));
        let runner = Arc::new(DockerRunner::new(&config).expect("docker runner"));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_worker(config, pipeline, runner, shutdown.clone()));
        hub.wait_for_hello(1, Duration::from_secs(30))
            .await
            .expect("worker says hello");
        Worker {
            hub,
            shutdown,
            task,
            _work_dir: work_dir,
        }
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
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(60), self.task).await;
    }
}

pub use crate::example_project::{
    copy_dir, example_dir, example_manifest, example_with_marker, tarball_of,
};
pub use crate::measure::status_kib;

/// Resets the peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
