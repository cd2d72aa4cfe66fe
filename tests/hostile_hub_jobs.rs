//! Hostile hub jobs through the real binary (`run` against the test hub, host processes,
//! the building stand-in compiler): one worker process gets one hostile job after another —
//! asset links that fan out, an asset link out of the project, a Windows device name among
//! the assets, a tarball URL on another origin, an oversized `job_assign`, an icon that
//! needs more memory than the job process may use — and each fails alone, within seconds,
//! with `error` + `complete{success:false}` naming the problem. Then the same worker builds
//! a good job; its own memory stayed small and no job folder or job process is left.

#![cfg(target_os = "linux")]

use perry_test_support::example_project;
use perry_test_support::fleet_support::BinWorker;
use perry_test_support::gate;
use perry_test_support::hostile_projects::{fan_out_assets, icon_bomb};
use perry_test_support::testhub::TestHub;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The example project copied to `to`, changed by `edit`, as a tarball.
fn example_tarball(to: &Path, edit: impl FnOnce(&Path)) -> Vec<u8> {
    example_project::copy_dir(&example_project::example_dir(), to);
    edit(to);
    example_project::tarball_of(to)
}

/// The job's `error` frame (`Null` when it sent none).
fn error_frame(hub: &TestHub, job_id: &str) -> Value {
    hub.job_frames(job_id)
        .into_iter()
        .find(|f| f.kind() == "error")
        .map(|f| f.json.clone())
        .unwrap_or(Value::Null)
}

/// Waits for the job's `complete` and checks it failed, within `seconds`, with an `error`
/// whose code and message are as expected; returns the message.
async fn assert_fails(
    hub: &TestHub,
    worker: &BinWorker,
    job_id: &str,
    code: &str,
    says: &[&str],
) -> String {
    let started = Instant::now();
    let complete = hub
        .wait_for_complete(job_id, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{job_id}: {e}; worker log:\n{}", worker.log()));
    assert_eq!(
        complete.json["success"], false,
        "{job_id}: {}",
        complete.json
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{job_id} took {:?}",
        started.elapsed()
    );
    let error = error_frame(hub, job_id);
    assert_eq!(error["code"], code, "{job_id}: {error}");
    let message = error["message"].as_str().unwrap_or_default().to_string();
    for part in says {
        assert!(
            message.contains(part),
            "{job_id}: {message:?} lacks {part:?}"
        );
    }
    assert_eq!(complete.json["error"], message.as_str(), "{job_id}");
    message
}

#[tokio::test]
async fn each_hostile_job_fails_alone_and_the_same_worker_builds_the_next() {
    if !gate::require_tools(&["x86_64-w64-mingw32-gcc"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start().await.unwrap();
    let mut worker = BinWorker::start_building(
        &hub,
        &[
            ("PERRY_JOB_MEMORY", "128m"),
            ("PERRY_MAX_ASSIGN_FRAME", "64k"),
        ],
    );
    hub.wait_for_hello(1, Duration::from_secs(20))
        .await
        .unwrap();
    let manifest = |mode: &str| example_project::example_manifest(mode);

    let tarball = example_tarball(&dir.path().join("fan"), fan_out_assets);
    hub.assign("fan-out", "t1", tarball, manifest("portable"), json!({}))
        .unwrap();
    assert_fails(
        &hub,
        &worker,
        "fan-out",
        "PACKAGE_FAILED",
        &["already copied"],
    )
    .await;

    let outside = dir.path().join("secret.txt");
    std::fs::write(&outside, "another job's file").unwrap();
    let tarball = example_tarball(&dir.path().join("leak"), |p| {
        std::os::unix::fs::symlink(&outside, p.join("assets/leak.txt")).unwrap()
    });
    hub.assign("leak", "t2", tarball, manifest("portable"), json!({}))
        .unwrap();
    assert_fails(
        &hub,
        &worker,
        "leak",
        "INTERNAL_ERROR",
        &["assets/leak.txt"],
    )
    .await;

    let tarball = example_tarball(&dir.path().join("device"), |p| {
        std::fs::write(p.join("assets/COM1.png"), "x").unwrap()
    });
    hub.assign("device", "t3", tarball, manifest("msix"), json!({}))
        .unwrap();
    assert_fails(
        &hub,
        &worker,
        "device",
        "PACKAGE_FAILED",
        &["assets/COM1.png"],
    )
    .await;

    let tarball = example_tarball(&dir.path().join("origin"), |_| {});
    hub.add_job("origin", "t4", tarball);
    let mut frame = hub.assign_frame("origin", manifest("portable"), json!({}));
    frame["tarball_url"] = json!("http://127.0.0.1:9/tarball/origin");
    hub.send_json(&frame).unwrap();
    assert_fails(
        &hub,
        &worker,
        "origin",
        "INTERNAL_ERROR",
        &["tarball_url points at http://127.0.0.1:9"],
    )
    .await;

    let tarball = example_tarball(&dir.path().join("big"), |_| {});
    hub.add_job("big", "t5", tarball);
    let mut big = manifest("portable");
    big["windows_copyright"] = json!("x".repeat(100_000));
    hub.send_json(&hub.assign_frame("big", big, json!({})))
        .unwrap();
    assert_fails(
        &hub,
        &worker,
        "big",
        "INTERNAL_ERROR",
        &["PERRY_MAX_ASSIGN_FRAME"],
    )
    .await;

    let tarball = example_tarball(&dir.path().join("bomb"), icon_bomb);
    hub.assign("bomb", "t6", tarball, manifest("portable"), json!({}))
        .unwrap();
    assert_fails(
        &hub,
        &worker,
        "bomb",
        "PACKAGE_FAILED",
        &["generating assets exceeded its 128 MiB memory limit"],
    )
    .await;

    let tarball = example_project::tarball_of(&example_project::example_dir());
    hub.assign("good", "t7", tarball, manifest("installer"), json!({}))
        .unwrap();
    let complete = hub
        .wait_for_complete("good", Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(complete.json["success"], true, "{}", worker.log());
    assert!(hub
        .upload_path("good", "Hello Perry-1.2.0-Setup.exe")
        .is_file());

    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker still runs"
    );
    let peak = worker.peak_rss();
    assert!(peak < 200 << 20, "worker peak RSS {peak} bytes");
    assert!(worker.job_processes().is_empty(), "no job process is left");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(worker.work_dir()).unwrap().count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::read_dir(worker.work_dir()).unwrap().count(),
        0,
        "no job folder is left"
    );
    assert_eq!(std::fs::read(&outside).unwrap(), b"another job's file");
}
