//! Streaming memory (issue 6, figure 3): peak RSS growth of the bench process (worker + test
//! hub) for jobs whose artifact is 1 MiB, 100 MiB and 1 GiB.
//!
//! The job's pipeline ([`BigArtifactPipeline`]) copies a small mingw exe into a container
//! (DockerRunner), grows it there to the requested size with `truncate -s` (a PE with a
//! zero-filled overlay, like an NSIS installer's payload), copies it back out (archive API
//! stream), signs it with the job's PFX (our signer, local TSA), and returns it; the worker
//! then uploads it as base64 to the test hub, which decodes it into a file while hashing.
//! The tarball download is the small example project. Peak RSS is VmHWM after a reset via
//! /proc/self/clear_refs; growth is measured against the idle RSS right before the job.

use crate::support::{self, mib, BenchEnv, Worker};
use perry_ship_windows::error::{ErrorCode, JobError};
use perry_ship_windows::events::Stage;
use perry_ship_windows::pipeline::{Artifact, JobContext, Pipeline};
use perry_ship_windows::sandbox::{Step, StepInput};
use perry_ship_windows::sign::SigningSession;
use perry_test_support::bench_report::Report;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const TARGET_GROWTH_MIB: f64 = 64.0;

/// Makes, signs and returns an artifact of `size` bytes (set before each job).
pub struct BigArtifactPipeline {
    pub size: AtomicU64,
    pub small_exe: PathBuf,
}

fn failed(code: ErrorCode, stage: Stage, e: impl std::fmt::Display) -> JobError {
    JobError::new(code, Some(stage), e.to_string())
}

#[async_trait::async_trait]
impl Pipeline for BigArtifactPipeline {
    async fn run(&self, job: &JobContext) -> Result<Vec<Artifact>, JobError> {
        let size = self.size.load(Ordering::SeqCst);
        let stage = Stage::Packaging;
        job.events.stage(
            stage,
            &format!("growing app.exe to {size} bytes in the sandbox"),
        );
        let step = Step {
            name: "grow".into(),
            image: job.config.docker.image.clone(),
            argv: vec![
                "truncate".into(),
                "-s".into(),
                size.to_string(),
                "app.exe".into(),
            ],
            env: Vec::new(),
            inputs: vec![StepInput {
                host_path: self.small_exe.clone(),
                dest: "app.exe".into(),
            }],
            outputs: vec!["app.exe".into()],
            cwd: String::new(),
            timeout: job.config.docker.step_timeout,
        };
        let out_dir = job.work_dir.join("grown");
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| failed(ErrorCode::InternalError, stage, e))?;
        let ctx = job.step_context(stage, out_dir.clone());
        let outcome = job
            .runner
            .run(&step, &ctx)
            .await
            .map_err(|e| failed(ErrorCode::PackageFailed, stage, e))?;
        if outcome.exit_code != 0 {
            return Err(failed(
                ErrorCode::PackageFailed,
                stage,
                format!("truncate exited with {}", outcome.exit_code),
            ));
        }
        let path = out_dir.join("app.exe");
        let session =
            SigningSession::from_credentials(&job.credentials, &job.http, &job.config.signing)
                .await
                .map_err(|e| failed(ErrorCode::SigningFailed, Stage::Signing, e))?
                .ok_or_else(|| {
                    failed(
                        ErrorCode::SigningFailed,
                        Stage::Signing,
                        "no signing credentials",
                    )
                })?;
        job.events.stage(Stage::Signing, "signing the artifact");
        session
            .sign_pe(&path)
            .await
            .map_err(|e| failed(ErrorCode::SigningFailed, Stage::Signing, e))?;
        Ok(vec![Artifact {
            path,
            name: "Bench-Setup.exe".into(),
            target: "windows".into(),
        }])
    }
}

pub async fn run(env: &BenchEnv, report: &mut Report) {
    let max_mib: u64 = std::env::var("BENCH_WORKER_MAX_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let sizes: Vec<u64> = [1, 100, max_mib]
        .into_iter()
        .filter(|s| *s <= max_mib)
        .collect();
    println!("\n== streaming memory: artifact made in a container, copied out, PFX-signed, uploaded ({sizes:?} MiB)");
    let tmp = tempfile::tempdir().unwrap();
    let small_exe = crate::fixtures::mingw_exe(tmp.path(), "bench-small");
    let pipeline = Arc::new(BigArtifactPipeline {
        size: AtomicU64::new(0),
        small_exe,
    });
    let worker = Worker::start(env, pipeline.clone(), &[]).await;
    let tarball = support::tarball_of(&support::example_dir());
    let manifest = support::example_manifest("installer");

    let mut worst: f64 = 0.0;
    let mut all_ok = true;
    for size_mib in &sizes {
        let bytes = size_mib << 20;
        pipeline.size.store(bytes, Ordering::SeqCst);
        let job = format!("memory-{size_mib}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let idle = support::status_kib("VmRSS");
        support::reset_peak_rss();
        let (ok, took) = worker
            .run_job(
                &job,
                tarball.clone(),
                manifest.clone(),
                env.credentials.clone(),
            )
            .await;
        let peak = support::status_kib("VmHWM");
        let uploaded = worker
            .hub
            .uploads()
            .into_iter()
            .find(|u| u.job_id == job)
            .map_or(0, |u| u.size);
        let ok = ok && uploaded > bytes;
        all_ok &= ok;
        let growth = mib(peak.saturating_sub(idle));
        worst = worst.max(growth);
        println!(
            "  {size_mib:>5} MiB artifact: idle {:>6.1} MiB, peak {:>6.1} MiB, growth {growth:>6.1} MiB, {:.1} s, uploaded {:.1} MiB, {}",
            mib(idle),
            mib(peak),
            took.as_secs_f64(),
            uploaded as f64 / 1048576.0,
            if ok { "ok" } else { "FAILED" }
        );
        report.figure(
            &format!("memory: peak RSS growth, {size_mib} MiB artifact"),
            growth,
            "MiB",
            Some("<= 64 MiB over idle"),
            Some(ok && growth <= TARGET_GROWTH_MIB),
        );
        report.figure(
            &format!("memory: job time, {size_mib} MiB artifact"),
            took.as_secs_f64(),
            "s",
            None,
            None,
        );
    }
    worker.stop().await;
    println!("  worst growth {worst:.1} MiB (target <= {TARGET_GROWTH_MIB} MiB at every size); all jobs ok: {all_ok}");
    report.note(format!(
        "memory: artifact sizes {sizes:?} MiB; path = container copy-out + PFX signing (our signer) + base64 upload; \
         the tarball download is the small example; the in-process test hub's decoding is included in the RSS"
    ));
}
