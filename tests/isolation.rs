//! The job's child process, through the real binary (`run` against the test hub, and a
//! local `build`; host processes, the stand-in compiler): the child runs under its limits
//! with no secret in its environment, a hub cancel ends it at once, and a local build whose
//! icon needs more memory than the job process may use names the stage and the limit.
//! (The same icon as a hub job, among other hostile jobs: `hostile_hub_jobs.rs`.)

#![cfg(target_os = "linux")]

use base64::Engine;
use perry_test_support::example_project;
use perry_test_support::fleet_support::BinWorker;
use perry_test_support::hostile_projects::icon_bomb;
use perry_test_support::sign_fixtures as fixtures;
use perry_test_support::testhub::TestHub;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const JOB_MEMORY: &str = "128m";
const JOB_MEMORY_BYTES: u64 = 128 << 20;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn standin_perry() -> PathBuf {
    repo().join("images/linux/standin/perry")
}

/// True when the stand-in compiler can build on this host (it needs mingw).
fn can_build() -> bool {
    fixtures::require_tools(&["x86_64-w64-mingw32-gcc"])
}

/// The example project at `to` with an 8000 px icon (256 MB decoded).
fn icon_bomb_project(to: &Path) -> PathBuf {
    example_project::copy_dir(&example_project::example_dir(), to);
    icon_bomb(to);
    to.to_path_buf()
}

/// The worker binary serving `hub` with the building stand-in compiler and a small
/// job-process memory limit.
fn start_worker(hub: &TestHub) -> BinWorker {
    BinWorker::start_building(
        hub,
        &[
            ("PERRY_JOB_MEMORY", JOB_MEMORY),
            ("PERRY_JOB_OPEN_FILES", "200"),
        ],
    )
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

#[tokio::test]
async fn the_job_process_has_its_limits_no_secret_and_dies_with_a_cancel() {
    if !can_build() || !fixtures::require_tools(&["openssl"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = fixtures::Pki::create(&dir.path().join("pki"));
    let password = "Isolation-Pfx-Passw0rd";
    let pfx = pki.pfx("iso", "rsa.key", "rsa.crt", password, &[]);
    let credentials = json!({
        "windows_pfx_base64": base64::engine::general_purpose::STANDARD.encode(pfx),
        "windows_pfx_password": password,
        "windows_timestamp_url": "none",
    });
    let hub = TestHub::start().await.unwrap();
    let worker = start_worker(&hub);
    hub.wait_for_hello(1, Duration::from_secs(20))
        .await
        .unwrap();

    let slow =
        example_project::example_with_marker(&dir.path().join("slow"), "perry-standin: sleep 30");
    hub.assign(
        "slow",
        "token-slow",
        example_project::tarball_of(&slow),
        example_project::example_manifest("portable"),
        credentials,
    )
    .unwrap();
    let mut child = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            child = worker.job_processes().first().copied();
            child.is_some()
        })
        .await,
        "the job process starts"
    );
    let child = child.unwrap();

    let environ = std::fs::read(format!("/proc/{child}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for secret in [password, "fleet-hub-secret", "token-slow", "PERRY_"] {
        assert!(!environ.contains(secret), "{secret:?} in {environ:?}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{child}/limits")).unwrap();
    let row = |name: &str| -> Vec<String> {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(str::to_string)
            .collect()
    };
    let memory = JOB_MEMORY_BYTES.to_string();
    assert_eq!(row("Max data size"), [memory.as_str(), memory.as_str()]);
    assert_eq!(row("Max core file size"), ["0", "0"]);
    assert_eq!(row("Max open files"), ["200", "200"]);
    assert_eq!(row("Max cpu time")[0], "3600");

    let cancelled_at = Instant::now();
    hub.send_json(&json!({"type": "cancel", "job_id": "slow"}))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{child}"
        ))
        .exists()
            || std::fs::read_to_string(format!("/proc/{child}/status"))
                .unwrap_or_default()
                .contains("(zombie)"))
        .await,
        "the job process is gone after the cancel"
    );
    let complete = hub
        .wait_for_complete("slow", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(complete.json["success"], false);
    assert!(cancelled_at.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_local_build_over_the_memory_limit_names_the_stage_and_the_limit() {
    if !can_build() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bomb = icon_bomb_project(&dir.path().join("bomb"));
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perry-ship-windows"))
        .args(["build", "--no-docker", "--distribute", "portable", "--out"])
        .arg(dir.path().join("out"))
        .arg(&bomb)
        .env("PERRY_BUILD_PERRY_BINARY", standin_perry())
        .env("PERRY_WORK_DIR", dir.path().join("work"))
        .env("PERRY_MIN_FREE_DISK", "1m")
        .env("PERRY_JOB_MEMORY", JOB_MEMORY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "PACKAGE_FAILED (generating_assets): generating assets exceeded its 128 MiB memory limit"
        ),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        std::fs::read_dir(dir.path().join("work")).unwrap().count(),
        0,
        "the job folder is gone"
    );
}
