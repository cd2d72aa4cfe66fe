//! A worker that fleets can drive: idle exit, the `command` idle action, the job limit, and
//! pause / resume over HTTP and with SIGUSR1 / SIGUSR2 (`azure-deallocate` is in
//! `hub_fleet_azure.rs`). The lifecycle tests run the real
//! binary against the in-process test hub; its jobs use a stand-in `perry` script (no
//! Docker, no toolchain).
// Linux-host suite (shell-script stand-ins, Unix signals and permissions).
#![cfg(unix)]

use perry_test_support::fleet_support;
use perry_test_support::hub_support;

use fleet_support::*;
use hub_support::*;
use perry_test_support::testhub::TestHub;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_the_link_cleanly_and_exits_0() {
    let hub = TestHub::start().await.unwrap();
    let mut worker = BinWorker::start(&hub, &[], &[("PERRY_IDLE_TIMEOUT", "2")], 0.0);
    hub.wait_for_hello(1, WAIT).await.unwrap();
    let connected = Instant::now();
    let status = worker.exit_within(Duration::from_secs(2 + 5)).await;
    let took = connected.elapsed();
    assert!(status.success(), "{status:?}; log:\n{}", worker.log());
    assert!(
        took >= Duration::from_millis(1500),
        "exited too early: {took:?}"
    );
    wait_disconnected(&hub, WAIT).await;
    assert_eq!(hub.close_frames(), 1, "the link closed with a Close frame");
    assert!(!hub.is_connected());
    assert_eq!(hub.connections(), 1, "no reconnect after the idle exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_command_runs_then_the_worker_exits_0() {
    let hub = TestHub::start().await.unwrap();
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("idle ran");
    let command = format!("touch '{}'", marker.display());
    let mut worker = BinWorker::start(
        &hub,
        &[],
        &[
            ("PERRY_IDLE_TIMEOUT", "1"),
            ("PERRY_IDLE_ACTION", "command"),
            ("PERRY_IDLE_COMMAND", &command),
        ],
        0.0,
    );
    hub.wait_for_hello(1, WAIT).await.unwrap();
    let status = worker.exit_within(Duration::from_secs(1 + 5)).await;
    assert!(status.success(), "{status:?}; log:\n{}", worker.log());
    assert!(
        marker.exists(),
        "PERRY_IDLE_COMMAND ran; log:\n{}",
        worker.log()
    );
    wait_disconnected(&hub, WAIT).await;
    assert_eq!(hub.close_frames(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_command_gets_the_environment_without_the_hub_secret() {
    let hub = TestHub::start().await.unwrap();
    let mut worker = BinWorker::start(
        &hub,
        &[],
        &[
            ("PERRY_IDLE_TIMEOUT", "1"),
            ("PERRY_IDLE_ACTION", "command"),
            // `env` prints its environment into the worker's output (the log file).
            ("PERRY_IDLE_COMMAND", "env"),
        ],
        0.0,
    );
    hub.wait_for_hello(1, WAIT).await.unwrap();
    assert!(worker.exit_within(Duration::from_secs(6)).await.success());
    let log = worker.log();
    assert!(log.contains("PERRY_WORKER_NAME=fleet-worker"), "{log}");
    assert!(!log.contains("fleet-hub-secret"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timer_waits_for_a_job_longer_than_the_timeout() {
    let hub = TestHub::start().await.unwrap();
    let worker = start_worker(&hub, &[("PERRY_IDLE_TIMEOUT", "2")], |_| {});
    hub.wait_for_hello(1, WAIT).await.unwrap();
    assign(&hub, "longer-than-idle", json!({"sleep_ms": 3_000}));
    let complete = hub
        .wait_for_complete("longer-than-idle", WAIT)
        .await
        .unwrap();
    assert_eq!(
        complete.json["success"], true,
        "not cut short by the idle timer"
    );
    assert_eq!(hub.close_frames(), 0, "still connected when the job ended");
    tokio::time::timeout(WAIT, worker.handle)
        .await
        .expect("the worker idles out after the job")
        .unwrap()
        .unwrap();
    let idle_for = complete.at.elapsed();
    assert!(
        idle_for >= Duration::from_millis(1500),
        "the idle timer started when the job ended: {idle_for:?}"
    );
    wait_disconnected(&hub, WAIT).await;
    assert_eq!(hub.close_frames(), 1);
    assert_eq!(hub.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_idle_command_reconnects_and_starts_the_idle_timer_again() {
    let hub = TestHub::start().await.unwrap();
    let mut worker = BinWorker::start(
        &hub,
        &[],
        &[
            ("PERRY_IDLE_TIMEOUT", "1"),
            ("PERRY_IDLE_ACTION", "command"),
            ("PERRY_IDLE_COMMAND", "false"),
        ],
        0.0,
    );
    hub.wait_for_hello(1, WAIT).await.unwrap();
    hub.wait_for_hello(3, WAIT).await.unwrap();
    assert!(
        hub.close_frames() >= 2,
        "each idle action closed the link first"
    );
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "a failed idle action does not exit"
    );
    assert!(
        worker.log().contains("idle action failed"),
        "{}",
        worker.log()
    );
    worker.signal(libc::SIGTERM);
    assert!(worker.exit_within(WAIT).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_jobs_1_takes_one_job_and_exits_0_after_it() {
    let hub = TestHub::start().await.unwrap();
    let mut worker = BinWorker::start(&hub, &["--max-jobs", "1"], &[], 1.0);
    hub.wait_for_hello(1, WAIT).await.unwrap();
    assign(&hub, "only", json!({}));
    hub.wait_for(WAIT, |f| f.job_id() == Some("only") && f.kind() == "stage")
        .await
        .unwrap();
    assign(&hub, "one-too-many", json!({}));
    let status = worker.exit_within(WAIT).await;
    assert!(status.success(), "{status:?}; log:\n{}", worker.log());
    let complete = hub
        .wait_for_complete("only", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        complete.json["success"], false,
        "the stand-in compiler fails"
    );
    assert!(hub.job_frames("one-too-many").is_empty());
    assert!(!hub.tarball_requests().contains(&"one-too-many".to_string()));
    wait_disconnected(&hub, WAIT).await;
    assert_eq!(hub.close_frames(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_max_jobs_ends_the_worker_after_a_successful_job() {
    let hub = TestHub::start().await.unwrap();
    let worker = start_worker(&hub, &[("PERRY_MAX_JOBS", "1")], |_| {});
    hub.wait_for_hello(1, WAIT).await.unwrap();
    assign(&hub, "single", json!({"sleep_ms": 300}));
    let result = tokio::time::timeout(WAIT, worker.handle)
        .await
        .expect("the worker ends by itself");
    result.unwrap().unwrap();
    let complete = hub
        .wait_for_complete("single", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(complete.json["success"], true);
    assert!(
        worker.shutdown.is_cancelled(),
        "the worker fired its own drain"
    );
    assert_eq!(hub.uploads().len(), 1);
    wait_disconnected(&hub, WAIT).await;
    assert_eq!(hub.close_frames(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_over_http_finishes_the_job_takes_nothing_new_and_resume_reconnects() {
    let addr = free_local_addr();
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[("PERRY_METRICS_ADDR", &addr)]).await;
    let http = reqwest::Client::new();
    let (code, ready) = get_json(&http, format!("http://{addr}/readyz")).await;
    assert_eq!((code, ready["state"].as_str()), (200, Some("serving")));

    assign(&hub, "long", json!({"sleep_ms": 1_500}));
    hub.wait_for(WAIT, |f| f.job_id() == Some("long") && f.kind() == "stage")
        .await
        .unwrap();
    let resp = http
        .post(format!("http://{addr}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let (code, ready) = get_json(&http, format!("http://{addr}/readyz")).await;
    assert_eq!((code, ready["state"].as_str()), (503, Some("pausing")));
    assign(&hub, "while-pausing", json!({}));

    let complete = hub.wait_for_complete("long", WAIT).await.unwrap();
    assert_eq!(complete.json["success"], true, "the running job finished");
    wait_disconnected(&hub, WAIT).await;
    assert_eq!(
        hub.close_frames(),
        1,
        "the link closed cleanly after the job"
    );
    assert!(hub.job_frames("while-pausing").is_empty());
    assert!(!hub
        .tarball_requests()
        .contains(&"while-pausing".to_string()));

    let (code, health) = get_json(&http, format!("http://{addr}/healthz")).await;
    assert_eq!(code, 200, "paused is alive");
    assert_eq!(health["live"], true);
    assert_eq!(health["ready"], false);
    assert_eq!(health["state"], "paused");
    assert_eq!(health["link"], "closed");
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "perry_paused 1",
        "perry_ready 0",
        "perry_jobs_running 0",
        "perry_slots_free 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(metrics.contains("perry_idle_seconds "), "{metrics}");
    settle().await;
    assert_eq!(hub.connections(), 1, "stays disconnected while paused");

    let resp = http
        .post(format!("http://{addr}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    hub.wait_for_hello(2, WAIT).await.unwrap();
    assign(&hub, "after-resume", json!({}));
    let complete = hub.wait_for_complete("after-resume", WAIT).await.unwrap();
    assert_eq!(complete.json["success"], true);
    let (code, _) = get_json(&http, format!("http://{addr}/readyz")).await;
    assert_eq!(code, 200);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_pauses_after_the_running_job_and_sigusr2_reconnects() {
    let hub = TestHub::start().await.unwrap();
    let mut worker = BinWorker::start(&hub, &[], &[], 1.5);
    hub.wait_for_hello(1, WAIT).await.unwrap();
    assign(&hub, "sig-job", json!({}));
    hub.wait_for(WAIT, |f| {
        f.job_id() == Some("sig-job") && f.kind() == "stage"
    })
    .await
    .unwrap();
    worker.signal(libc::SIGUSR1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assign(&hub, "sig-late", json!({}));
    let complete = hub.wait_for_complete("sig-job", WAIT).await.unwrap();
    assert_eq!(
        complete.json["job_id"], "sig-job",
        "the running job completed"
    );
    wait_disconnected(&hub, WAIT).await;
    assert_eq!(hub.close_frames(), 1);
    assert!(
        hub.job_frames("sig-late").is_empty(),
        "no job taken while paused"
    );
    assert!(!hub.tarball_requests().contains(&"sig-late".to_string()));
    settle().await;
    assert_eq!(hub.connections(), 1);
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "paused, not exited"
    );

    worker.signal(libc::SIGUSR2);
    hub.wait_for_hello(2, WAIT).await.unwrap();
    worker.signal(libc::SIGTERM);
    let status = worker.exit_within(WAIT).await;
    assert!(status.success(), "{status:?}; log:\n{}", worker.log());
}

#[test]
fn bad_fleet_settings_stop_the_worker_with_one_line_naming_them() {
    let bin = env!("CARGO_BIN_EXE_perry-ship-windows");
    for (var, value) in [
        ("PERRY_IDLE_TIMEOUT", "soon"),
        ("PERRY_MAX_JOBS", "0"),
        ("PERRY_IDLE_COMMAND", "true"),
    ] {
        let out = std::process::Command::new(bin)
            .arg("run")
            .env("PERRY_IDLE_ACTION", "exit")
            .env("PERRY_IDLE_TIMEOUT", "60")
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(var), "{err}");
    }
    let out = std::process::Command::new(bin)
        .args(["run", "--max-jobs", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses --max-jobs 0");
}
