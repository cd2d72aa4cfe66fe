//! Operations: graceful drain on shutdown, the drain deadline, the status server and the
//! deferred `update_perry`.
// Linux-host suite (shell-script stand-ins, Unix permissions and symlinks).
#![cfg(unix)]

use perry_test_support::hub_support;

use hub_support::*;
use perry_test_support::testhub::TestHub;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_running_job_and_starts_no_new_one() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    assign(&hub, "drainee", json!({"sleep_ms": 1_200}));
    hub.wait_for(WAIT, |f| {
        f.kind() == "stage" && f.json["stage"] == "compiling"
    })
    .await
    .unwrap();
    worker.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assign(&hub, "latecomer", json!({}));
    let done = tokio::time::timeout(WAIT, worker.handle)
        .await
        .expect("worker exits after draining");
    done.unwrap().unwrap();

    let complete = hub
        .wait_for_complete("drainee", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(complete.json["success"], true);
    assert_eq!(hub.uploads().len(), 1);
    assert!(
        hub.job_frames("latecomer").is_empty(),
        "a job assigned during drain is not started"
    );
    assert!(!hub.tarball_requests().contains(&"latecomer".to_string()));
    let closed_by = Instant::now() + Duration::from_secs(2);
    while hub.is_connected() && Instant::now() < closed_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!hub.is_connected(), "the worker closed the link");
    assert_work_dir_clean(worker.work_dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_cancels_and_reports_running_jobs() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[("PERRY_DRAIN_TIMEOUT", "1")]).await;
    assign(&hub, "too-long", json!({"sleep_ms": 60_000}));
    hub.wait_for(WAIT, |f| {
        f.kind() == "stage" && f.json["stage"] == "compiling"
    })
    .await
    .unwrap();
    let started = Instant::now();
    worker.shutdown.cancel();
    tokio::time::timeout(WAIT, worker.handle)
        .await
        .expect("worker exits")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    hub.wait_for_complete("too-long", Duration::from_secs(2))
        .await
        .unwrap();
    let err = assert_failed(&hub, "too-long");
    assert!(
        err["message"].as_str().unwrap().contains("shutting down"),
        "{err}"
    );
    assert!(hub.uploads().is_empty());
    assert_work_dir_clean(worker.work_dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_server_serves_health_and_metrics() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(
        &hub,
        &[
            ("PERRY_METRICS_ADDR", &addr),
            ("PERRY_MAX_CONCURRENT_BUILDS", "2"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let health: serde_json::Value = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["link"], "connected");
    assert_eq!(health["slots"]["total"], 2);
    assert_eq!(health["slots"]["busy"], 0);

    assign(&hub, "m-ok", json!({}));
    assign(&hub, "m-fail", json!({"fail": "PACKAGE_FAILED"}));
    hub.wait_for_complete("m-ok", WAIT).await.unwrap();
    hub.wait_for_complete("m-fail", WAIT).await.unwrap();
    settle().await;
    let response = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for expected in [
        "perry_jobs_total{outcome=\"success\"} 1",
        "perry_jobs_total{outcome=\"failure\"} 1",
        "perry_job_errors_total{code=\"PACKAGE_FAILED\"} 1",
        "perry_stage_duration_seconds_count{stage=\"compiling\"} 2",
        "perry_queue_length 0",
        "perry_link_connected 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let uploaded: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("perry_upload_bytes_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(uploaded, hub.uploads()[0].size);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_perry_waits_for_running_jobs_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let version_file = dir.path().join("version");
    std::fs::write(&version_file, "0.5.3").unwrap();
    let perry = dir.path().join("perry");
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = update ]; then echo 0.6.0 > '{v}'; exit 0; fi\necho \"perry $(cat '{v}')\"\n",
        v = version_file.display()
    );
    std::fs::write(&perry, script).unwrap();
    std::fs::set_permissions(&perry, std::fs::Permissions::from_mode(0o755)).unwrap();

    let hub = TestHub::start().await.unwrap();
    let worker = start_worker_with_runner(
        &hub,
        &[],
        |c| c.perry_binary = perry.display().to_string(),
        std::sync::Arc::new(perry_ship_windows::sandbox::host::HostRunner::new()),
    );
    hub.wait_for_hello(1, WAIT).await.unwrap();
    assign(&hub, "before-update", json!({"sleep_ms": 800}));
    hub.wait_for(WAIT, |f| {
        f.kind() == "stage" && f.json["stage"] == "compiling"
    })
    .await
    .unwrap();
    hub.send_json(&json!({"type": "update_perry"})).unwrap();
    let result = hub
        .wait_for(WAIT, |f| f.kind() == "update_result")
        .await
        .unwrap();
    let complete = hub.wait_for_complete("before-update", WAIT).await.unwrap();
    assert!(
        complete.at < result.at,
        "the update waited for the running job"
    );
    assert_eq!(
        result.json,
        json!({"type":"update_result","success":true,"old_version":"0.5.3","new_version":"0.6.0"})
    );
    // The worker announces the new version (it reconnects once idle).
    let hello = hub.wait_for_hello(2, WAIT).await.unwrap().json;
    assert_eq!(hello["perry_version"], "0.6.0");
    worker.stop().await;
}

/// With Docker on, perry lives in the image: update_result reports the version the hello
/// reported (probed through the same runner) and says why it cannot update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_result_with_docker_reports_the_image_version() {
    let hub = TestHub::start().await.unwrap();
    let worker = start_worker_with_runner(
        &hub,
        &[],
        |c| c.docker.enabled = true,
        std::sync::Arc::new(VersionRunner("7.7.7")),
    );
    let hello = hub.wait_for_hello(1, WAIT).await.unwrap().json;
    assert_eq!(hello["perry_version"], "7.7.7");
    hub.send_json(&json!({"type": "update_perry"})).unwrap();
    let result = hub
        .wait_for(WAIT, |f| f.kind() == "update_result")
        .await
        .unwrap()
        .json;
    assert_eq!(result["success"], false);
    assert_eq!(result["old_version"], "7.7.7", "{result}");
    assert_eq!(result["new_version"], "7.7.7", "{result}");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("toolchain image"),
        "{result}"
    );
    // Nothing changed: no reconnect to announce anything.
    settle().await;
    assert_eq!(hub.connections(), 1);
    worker.stop().await;
}
