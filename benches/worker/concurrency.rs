//! Concurrency (issue 6, figure 4): 8 CPU-bound jobs with `PERRY_MAX_CONCURRENT_BUILDS=1`
//! and `=2`, same worker code, same hub. The job's pipeline hashes in memory for about one
//! second of one core (calibrated at start) on a blocking thread and returns a tiny
//! artifact, so the wall time is dominated by CPU work and the slots.

use crate::support::{self, BenchEnv, Worker};
use perry_ship_windows::error::JobError;
use perry_ship_windows::events::Stage;
use perry_ship_windows::pipeline::{Artifact, JobContext, Pipeline};
use perry_test_support::bench_report::Report;
use sha2::Digest;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const JOBS: usize = 8;
const TARGET_RATIO: f64 = 1.6;
const CHUNK: usize = 64 * 1024;

/// Hashes `rounds` chunks of 64 KiB; records how many jobs ran at the same time.
pub struct CpuPipeline {
    pub rounds: u64,
    running: AtomicU32,
    pub max_parallel: AtomicU32,
}

struct Running<'a>(&'a AtomicU32);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn hash_rounds(rounds: u64) -> [u8; 32] {
    let chunk = vec![0x5au8; CHUNK];
    let mut hasher = sha2::Sha256::new();
    for _ in 0..rounds {
        hasher.update(&chunk);
    }
    hasher.finalize().into()
}

/// Rounds that take about `target` on one core of this machine now (after a warm-up).
fn calibrate(target: Duration) -> u64 {
    let probe = 2000;
    std::hint::black_box(hash_rounds(probe));
    let started = Instant::now();
    std::hint::black_box(hash_rounds(probe));
    let per_round = started.elapsed().as_secs_f64() / probe as f64;
    ((target.as_secs_f64() / per_round) as u64).max(1)
}

#[async_trait::async_trait]
impl Pipeline for CpuPipeline {
    async fn run(&self, job: &JobContext) -> Result<Vec<Artifact>, JobError> {
        job.events.stage(
            Stage::Compiling,
            "hashing (CPU-bound stand-in for a compile)",
        );
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = Running(&self.running);
        self.max_parallel.fetch_max(now, Ordering::SeqCst);
        let rounds = self.rounds;
        let digest = tokio::task::spawn_blocking(move || hash_rounds(rounds))
            .await
            .map_err(|e| JobError::internal(Some(Stage::Compiling), e.to_string()))?;
        let path = job.work_dir.join("digest.bin");
        std::fs::write(&path, digest)
            .map_err(|e| JobError::internal(Some(Stage::Packaging), e.to_string()))?;
        Ok(vec![Artifact {
            path,
            name: "digest.bin".into(),
            target: "windows".into(),
        }])
    }
}

/// Runs the 8 jobs with `slots`; returns (wall time, jobs completed successfully and
/// uploaded, most jobs seen inside the pipeline at once).
async fn batch(env: &BenchEnv, rounds: u64, slots: &str) -> (Duration, usize, u32) {
    let pipeline = Arc::new(CpuPipeline {
        rounds,
        running: AtomicU32::new(0),
        max_parallel: AtomicU32::new(0),
    });
    let worker = Worker::start(
        env,
        pipeline.clone(),
        &[("PERRY_MAX_CONCURRENT_BUILDS", slots)],
    )
    .await;
    let tarball = support::tarball_of(&support::example_dir());
    let manifest = support::example_manifest("portable");
    let ids: Vec<String> = (0..JOBS).map(|i| format!("cpu-{slots}-{i}")).collect();
    let started = Instant::now();
    for id in &ids {
        worker
            .hub
            .assign(
                id,
                &format!("tok-{id}"),
                tarball.clone(),
                manifest.clone(),
                serde_json::json!({}),
            )
            .expect("assign");
    }
    let mut completed = 0;
    for id in &ids {
        if let Ok(f) = worker.hub.wait_for_complete(id, support::JOB_TIMEOUT).await {
            let uploaded = worker.hub.uploads().iter().any(|u| &u.job_id == id);
            if f.json["success"] == serde_json::Value::Bool(true) && uploaded {
                completed += 1;
            }
        }
    }
    let wall = started.elapsed();
    worker.stop().await;
    (
        wall,
        completed,
        pipeline.max_parallel.load(Ordering::SeqCst),
    )
}

pub async fn run(env: &BenchEnv, report: &mut Report) {
    let rounds = calibrate(Duration::from_secs(1));
    println!("\n== concurrency: {JOBS} CPU-bound jobs (~1 s of one core each, {rounds} x 64 KiB SHA-256), 1 vs 2 slots");
    let (one, done_one, par_one) = batch(env, rounds, "1").await;
    let (two, done_two, par_two) = batch(env, rounds, "2").await;
    let ratio = one.as_secs_f64() / two.as_secs_f64();
    let no_loss = done_one == JOBS && done_two == JOBS;
    println!(
        "  PERRY_MAX_CONCURRENT_BUILDS=1: {:>6.2} s, {done_one}/{JOBS} jobs complete, at most {par_one} at once",
        one.as_secs_f64()
    );
    println!(
        "  PERRY_MAX_CONCURRENT_BUILDS=2: {:>6.2} s, {done_two}/{JOBS} jobs complete, at most {par_two} at once",
        two.as_secs_f64()
    );
    println!("  ratio {ratio:.2}x (expected close to 2x on 2 idle cores; target >= {TARGET_RATIO}x), no job lost: {no_loss}");
    report.figure(
        "concurrency: 8 jobs, 1 slot",
        one.as_secs_f64(),
        "s",
        None,
        None,
    );
    report.figure(
        "concurrency: 8 jobs, 2 slots",
        two.as_secs_f64(),
        "s",
        None,
        None,
    );
    report.figure(
        "concurrency: most jobs at once, 2 slots",
        par_two as f64,
        "jobs",
        Some("2 (and 1 with 1 slot)"),
        Some(par_one == 1 && par_two == 2),
    );
    report.figure(
        "concurrency: wall time 1 slot / 2 slots",
        ratio,
        "x",
        Some(">= 1.6 (close to 2)"),
        Some(ratio >= TARGET_RATIO),
    );
    report.figure(
        "concurrency: jobs lost",
        (2 * JOBS - done_one - done_two) as f64,
        "jobs",
        Some("0"),
        Some(no_loss),
    );
}
