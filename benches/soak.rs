//! Soak (issue 11, item 4): nothing accumulates in a long-running worker.
//!
//! One worker (host runner, the real Windows pipeline in a child process per job, as in
//! production) connected to an in-process test hub runs `SOAK_JOBS` (default 500) jobs
//! back to back. Each job is a sign-only hand-off bundle
//! (a small mingw exe, `metadata.json`, an asset) packaged as a portable ZIP, unsigned: the
//! worker's own code end to end — download, extraction, metadata, icon, PE resources, DLL
//! discovery, ZIP, upload, frames — in about a tenth of a second per job, no tool run.
//!
//! Pass when every job succeeds, RSS after the last job is within 5 MiB of RSS after the
//! tenth, the process holds no more file descriptors than after the tenth, no job process is
//! left, the work root is empty, and the engine (when reachable) has no container or volume labelled with this
//! worker's name. Prints `SOAK PASS` / `SOAK FAIL` and writes
//! `$CARGO_TARGET_DIR/bench/soak.json` (default `target/bench/soak.json`).
//!
//! Run: `cargo bench --bench soak` (needs x86_64-w64-mingw32-gcc: scripts/setup-host.sh;
//! without it SKIP, or a failure under `CI=true`).

use perry_ship_windows::isolation::IsolatedPipeline;
use perry_ship_windows::sandbox::docker::LABEL_WORKER;
use perry_ship_windows::sandbox::host::HostRunner;
use perry_test_support::bench_report as report;
use perry_test_support::measure;
use perry_test_support::sign_fixtures as fixtures;
use perry_test_support::testhub::TestHub;
use perry_test_support::worker::WorkerBuilder;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RSS_SLACK_MIB: f64 = 5.0;
const BASELINE_JOB: usize = 10;

fn jobs() -> usize {
    std::env::var("SOAK_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > BASELINE_JOB)
        .unwrap_or(500)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Child processes of this process that are still there (running or not yet reaped).
fn child_processes() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("status"))
                        .unwrap_or_default()
                        .lines()
                        .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(me.as_str()))
                })
                .count()
        })
        .unwrap_or(0)
}

/// A sign-only hand-off bundle, as a gzip tarball.
fn bundle_tarball(dir: &Path) -> Vec<u8> {
    let pre = dir.join("bundle/perry-precompiled");
    std::fs::create_dir_all(pre.join("assets")).unwrap();
    let exe = fixtures::mingw_exe(dir, "soak");
    std::fs::copy(&exe, pre.join("Soak App.exe")).unwrap();
    std::fs::write(pre.join("assets/readme.txt"), "bundled asset").unwrap();
    std::fs::write(
        pre.join("metadata.json"),
        r#"{"perry_version":"0.5.3","compiled_by":"soak","compile_timestamp":"2026-11-30T00:00:00Z"}"#,
    )
    .unwrap();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(".", dir.join("bundle")).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn manifest() -> Value {
    json!({"app_name": "Soak App", "bundle_id": "com.example.soak", "version": "1.0.0",
           "entry": "src/main.ts", "targets": ["windows-sign"], "windows_distribute": "portable"})
}

/// Containers and volumes the engine holds with this worker's label; `None` without an engine.
async fn engine_leftovers(worker_name: &str) -> Option<(usize, usize)> {
    let docker = bollard::Docker::connect_with_defaults().ok()?;
    tokio::time::timeout(Duration::from_secs(5), docker.ping())
        .await
        .ok()?
        .ok()?;
    let label = format!("{LABEL_WORKER}={worker_name}");
    let filters = std::collections::HashMap::from([("label".to_string(), vec![label])]);
    let containers = docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .ok()?;
    let volumes = docker
        .list_volumes(Some(
            bollard::query_parameters::ListVolumesOptionsBuilder::new()
                .filters(&filters)
                .build(),
        ))
        .await
        .ok()?;
    Some((containers.len(), volumes.volumes.map_or(0, |v| v.len())))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !fixtures::require_tools(&["x86_64-w64-mingw32-gcc"]) {
        return;
    }
    let total = jobs();
    let dir = tempfile::tempdir().unwrap();
    let tarball = bundle_tarball(dir.path());
    let work_root = dir.path().join("work");
    std::fs::create_dir_all(&work_root).unwrap();
    let hub = TestHub::start().await.expect("test hub");
    let name = format!("soak-{}", uuid::Uuid::new_v4().simple());
    let work = work_root.display().to_string();
    let worker = WorkerBuilder::new(&hub, &name)
        .env(&[("PERRY_DOCKER_ENABLED", "false"), ("PERRY_WORK_DIR", &work)])
        .start(
            Arc::new(IsolatedPipeline::new(
                env!("CARGO_BIN_EXE_perry-ship-windows").into(),
            )),
            Arc::new(HostRunner::new()),
        );
    hub.wait_for_hello(1, Duration::from_secs(30))
        .await
        .expect("worker says hello");

    println!("\n== soak: {total} sign-only portable jobs back to back through the test hub");
    let started = Instant::now();
    let (mut failed, mut baseline) = (0usize, (0u64, 0usize));
    for i in 1..=total {
        let job = format!("soak-{i}");
        hub.assign(
            &job,
            &format!("tok-{i}"),
            tarball.clone(),
            manifest(),
            json!({}),
        )
        .expect("assign");
        let complete = hub
            .wait_for_complete(&job, Duration::from_secs(120))
            .await
            .expect("complete frame");
        if complete.json["success"] != Value::Bool(true) {
            failed += 1;
            if failed <= 3 {
                eprintln!("job {job} failed: {}", complete.raw);
            }
        }
        hub.forget_job(&job);
        if i == BASELINE_JOB {
            tokio::time::sleep(Duration::from_millis(200)).await;
            baseline = (measure::status_kib("VmRSS"), open_fds());
        }
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss, fds) = (measure::status_kib("VmRSS"), open_fds());
    let leftovers: Vec<String> = std::fs::read_dir(&work_root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let children = child_processes();
    let engine = engine_leftovers(&name).await;
    worker.stop_within(Duration::from_secs(30)).await;

    let growth = (rss as f64 - baseline.0 as f64) / 1024.0;
    let rss_ok = growth <= RSS_SLACK_MIB;
    let fds_ok = fds <= baseline.1;
    let engine_ok = engine.is_none_or(|(c, v)| c == 0 && v == 0);
    let pass =
        failed == 0 && rss_ok && fds_ok && children == 0 && leftovers.is_empty() && engine_ok;
    println!(
        "  {total} jobs in {:.1} s ({:.0} ms/job), {failed} failed",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / total as f64
    );
    println!(
        "  RSS after job {BASELINE_JOB}: {:.1} MiB, after job {total}: {:.1} MiB, growth {growth:+.2} MiB (limit {RSS_SLACK_MIB} MiB)",
        baseline.0 as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    println!(
        "  open fds after job {BASELINE_JOB}: {}, after job {total}: {fds}; job processes left: {children}; work root entries left: {}; engine: {}",
        baseline.1,
        leftovers.len(),
        engine.map_or("not reachable (not checked)".into(), |(c, v)| format!(
            "{c} containers, {v} volumes labelled {LABEL_WORKER}={name}"
        ))
    );
    println!("SOAK {}", if pass { "PASS" } else { "FAIL" });

    let mut report = report::Report::new("soak");
    report.note("the test hub shares the bench process; it forgets each job once complete, so RSS is the worker's (plus the hub's constant share)");
    report.figure(
        "soak: jobs failed",
        failed as f64,
        "jobs",
        Some("0"),
        Some(failed == 0),
    );
    report.figure(
        &format!("soak: RSS growth job {BASELINE_JOB} -> {total}"),
        growth,
        "MiB",
        Some("<= 5 MiB"),
        Some(rss_ok),
    );
    report.figure(
        "soak: open fds growth",
        fds as f64 - baseline.1 as f64,
        "fds",
        Some("<= 0"),
        Some(fds_ok),
    );
    report.figure(
        "soak: job processes left",
        children as f64,
        "processes",
        Some("0"),
        Some(children == 0),
    );
    report.figure(
        "soak: work folders left",
        leftovers.len() as f64,
        "entries",
        Some("0"),
        Some(leftovers.is_empty()),
    );
    report.figure(
        "soak: labelled containers + volumes left",
        engine.map_or(0.0, |(c, v)| (c + v) as f64),
        "objects",
        Some("0"),
        engine.map(|_| engine_ok),
    );
    report.figure(
        "soak: time per job",
        elapsed.as_secs_f64() * 1000.0 / total as f64,
        "ms",
        None,
        None,
    );
    report.write();
    if !pass {
        std::process::exit(1);
    }
}
