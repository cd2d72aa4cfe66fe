//! Fault injection: the Docker Engine restarts while a compile step runs in a container.
//! The job fails with an error that names the engine, the worker stays connected, the next
//! job succeeds, and the interrupted job's container is gone once the engine is back.
//!
//! The engine is restarted with `scripts/restart-docker.sh` (systemd, or the dockerd that
//! `scripts/start-docker.sh` started). This test is alone in its binary, and cargo runs test
//! binaries one after another, so no other test talks to the engine meanwhile. Whatever
//! happens, a guard makes sure the engine answers again before the test ends.
//!
//! Restarting the engine needs root. Outside CI a machine where that is not possible skips
//! the test; under `CI=true` it fails instead. `PERRY_TEST_NO_ENGINE_RESTART=1` skips it on
//! purpose (a shared host whose engine other work uses).

use perry_test_support::e2e;
use perry_test_support::gate;

use e2e::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Restarts the engine on drop if the test left it down (a failed assertion mid-restart).
struct EngineBackOnDrop;

impl Drop for EngineBackOnDrop {
    fn drop(&mut self) {
        if !engine_answers() {
            let _ = Command::new(script("start-docker.sh")).status();
        }
    }
}

fn can_restart_engine() -> bool {
    if std::env::var("PERRY_TEST_NO_ENGINE_RESTART").as_deref() == Ok("1") {
        eprintln!("SKIP: PERRY_TEST_NO_ENGINE_RESTART=1");
        return false;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        gate::skip_or_fail::<()>("restarting the Docker engine needs root");
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_restart_mid_step_fails_the_job_clearly_and_the_next_job_succeeds() {
    if !can_restart_engine() {
        return;
    }
    let Some(worker) = start_worker(&[]).await else {
        return;
    };
    let _engine_guard = EngineBackOnDrop;
    let job = "fault-engine-restart";
    let _project = assign_long_compile(&worker, job).await;

    let restarted = Instant::now();
    let status = tokio::task::spawn_blocking(|| Command::new(script("restart-docker.sh")).status())
        .await
        .unwrap()
        .expect("running scripts/restart-docker.sh");
    assert!(
        status.success(),
        "scripts/restart-docker.sh failed (its output is above; PERRY_TEST_NO_ENGINE_RESTART=1 skips this test)"
    );
    eprintln!("engine restarted in {:?}", restarted.elapsed());

    let complete = worker
        .hub
        .wait_for_complete(job, Duration::from_secs(120))
        .await
        .expect("the interrupted job is reported");
    assert_eq!(complete.json["success"], json!(false), "{}", complete.raw);
    let frames = worker.hub.job_frames(job);
    assert_protocol_sequence(&frames, job, false);
    let error = frames
        .iter()
        .find(|f| f.kind() == "error")
        .expect("an error frame");
    let message = error.json["message"].as_str().unwrap_or_default();
    eprintln!("error sent to the hub: {message}");
    assert!(
        message.to_lowercase().contains("docker engine"),
        "the error names the engine: {}",
        error.raw
    );
    assert!(worker.hub.uploads().is_empty(), "nothing uploaded");

    // The worker never dropped the hub link for this.
    assert_eq!(worker.hub.connections(), 1, "the worker stayed connected");

    let next = run_example_job(&worker, "fault-after-engine-restart", "portable", json!({})).await;
    assert_eq!(next.json["success"], json!(true), "{}", next.raw);
    assert_eq!(worker.hub.uploads().len(), 1);

    assert!(
        containers_of_job(job).await.is_empty(),
        "the interrupted job's container is removed once the engine is back"
    );
    worker.stop().await;
}
