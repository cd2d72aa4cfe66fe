//! The hub link against the in-process test hub: hello, secret and AUTH_FAILED, pings,
//! hostile frames, outages mid-job (the job is over; only its re-queued copy reports),
//! capabilities that follow `perry --version`.
// Linux-host suite (shell-script stand-ins, Unix permissions and symlinks).
#![cfg(unix)]

use perry_test_support::hub_support;

use hub_support::*;
use perry_test_support::testhub::{JobState, Outbound, TestHub, TestHubOptions};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_has_the_protocol_fields_and_the_secret() {
    let hub = TestHub::start_with(TestHubOptions {
        secret: Some("s3cret-worker".into()),
    })
    .await
    .unwrap();
    let worker = start_worker(
        &hub,
        &[
            ("PERRY_HUB_WORKER_SECRET", "s3cret-worker"),
            ("PERRY_MAX_CONCURRENT_BUILDS", "3"),
            ("PERRY_WORKER_CAPABILITIES", "windows-sign"),
            ("PERRY_WORKER_NAME", "win-07"),
        ],
        |_| {},
    );
    let hello = hub.wait_for_hello(1, WAIT).await.unwrap().json;
    assert_eq!(
        hello,
        json!({"type":"worker_hello","name":"win-07","capabilities":["windows-sign"],
               "secret":"s3cret-worker","max_concurrent":3}),
        "no perry_version: the perry binary does not exist"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_omits_an_unset_secret_and_reports_the_perry_version() {
    let dir = tempfile::tempdir().unwrap();
    let perry = dir.path().join("perry");
    std::fs::write(&perry, "#!/bin/sh\necho 'perry 0.5.3'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&perry, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hub = TestHub::start().await.unwrap();
    let worker = start_worker_with_runner(
        &hub,
        &[],
        |c| c.perry_binary = perry.display().to_string(),
        std::sync::Arc::new(perry_ship_windows::sandbox::host::HostRunner::new()),
    );
    let hello = hub.wait_for_hello(1, WAIT).await.unwrap().json;
    assert!(hello.get("secret").is_none(), "{hello}");
    assert_eq!(hello["perry_version"], "0.5.3");
    assert_eq!(hello["capabilities"], json!(["windows", "windows-sign"]));
    assert_eq!(hello["max_concurrent"], 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failed_backs_off_for_minutes() {
    let hub = TestHub::start_with(TestHubOptions {
        secret: Some("right".into()),
    })
    .await
    .unwrap();
    let worker = start_worker(&hub, &[("PERRY_HUB_WORKER_SECRET", "wrong")], |_| {});
    hub.wait_for(WAIT, |f| f.kind() == "worker_hello")
        .await
        .unwrap();
    // Ordinary backoff in tests is ≤ 400 ms; after AUTH_FAILED the worker must stay away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        hub.connections(),
        1,
        "the worker retried right after AUTH_FAILED"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_flow_while_idle_and_while_busy() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let idle = hub.pings();
    assert!(idle >= 2, "idle pings: {idle}");
    assign(&hub, "busy", json!({"sleep_ms": 1_600}));
    hub.wait_for(WAIT, |f| {
        f.kind() == "stage" && f.json["stage"] == "compiling"
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(
        hub.pings() >= idle + 2,
        "busy pings: {} after {idle}",
        hub.pings()
    );
    hub.wait_for_complete("busy", WAIT).await.unwrap();
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_are_ignored_and_a_valid_job_still_runs() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    let junk = [
        Outbound::Text("this is not json".into()),
        Outbound::Text("[1,2,3]".into()),
        Outbound::Text("{\"no_type\":1}".into()),
        Outbound::Text("{\"type\":\"launch_missiles\"}".into()),
        Outbound::Text("{\"type\":\"job_assign\",\"job_id\":\"half\"}".into()),
        Outbound::Text("{\"type\":\"job_assign\",\"job_id\":42,\"auth_token\":\"t\"}".into()),
        Outbound::Text("{\"type\":\"cancel\",\"job_id\":\"nobody\"}".into()),
        Outbound::Text("{\"type\":\"cancel\"}".into()),
        Outbound::Text("{\"type\":\"proceed_distribute\",\"job_id\":\"x\"}".into()),
        Outbound::Text("{\"type\":\"error\",\"code\":\"QUEUE_FULL\",\"message\":\"busy\"}".into()),
        Outbound::Binary(vec![0, 159, 146, 150]),
        Outbound::Text(format!(
            "{{\"type\":\"log\",\"pad\":\"{}\"}}",
            "x".repeat(16 << 20)
        )),
    ];
    for message in junk {
        hub.send(message).unwrap();
    }
    assign(&hub, "after-junk", json!({}));
    let complete = hub.wait_for_complete("after-junk", WAIT).await.unwrap();
    assert_eq!(complete.json["success"], true);
    assert_eq!(
        hub.connections(),
        1,
        "the link survived every hostile frame"
    );
    settle().await;
    let job_ids: Vec<_> = hub
        .frames()
        .iter()
        .filter_map(|f| f.job_id().map(str::to_string))
        .collect();
    assert!(
        job_ids.iter().all(|j| j == "after-junk"),
        "no frames for junk jobs: {job_ids:?}"
    );
    worker.stop().await;
}

/// hub-protocol.md §6: an outage ends the job for the hub (token revoked, job re-queued).
/// The worker stops it silently; after reconnecting it sends nothing stale, and the
/// re-queued assignment (new token) succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_build_ends_the_job_and_the_requeued_one_succeeds() {
    use PipelineEvent::*;
    let mut hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    assign(&hub, "survivor", json!({"sleep_ms": 1_500}));
    hub.wait_for(WAIT, |f| {
        f.kind() == "stage" && f.json["stage"] == "compiling"
    })
    .await
    .unwrap();
    hub.stop().await;
    let at_hub = hub.job_status("survivor").unwrap();
    assert_eq!(at_hub.state, JobState::Requeued);
    assert_eq!(at_hub.requeues, 1);
    // Longer than the build: an orphan left running would have finished by now.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        worker.pipeline.events(),
        [Started("survivor".into()), Ended("survivor".into())],
        "the orphan was stopped"
    );
    assert_work_dir_clean(worker.work_dir.path());
    let before_restart = hub.frames().len();

    hub.restart().await.unwrap();
    let second = hub.wait_for_hello(2, WAIT).await.unwrap();
    assert_eq!(second.connection, 2);
    let complete = hub.wait_for_complete("survivor", WAIT).await.unwrap();
    settle().await;
    let after: Vec<_> = hub.frames()[before_restart..].to_vec();
    let k = kinds(&after);
    assert_eq!(complete.json["success"], true, "{k:?}");
    assert_eq!(complete.connection, 2);
    assert!(!k.contains(&"error".to_string()), "no stale error: {k:?}");
    assert_eq!(
        k.iter().filter(|k| *k == "complete").count(),
        1,
        "one complete, the new run's: {k:?}"
    );
    assert_eq!(
        (k[0].as_str(), k[1].as_str()),
        ("worker_hello", "stage"),
        "the new run's first stage follows the hello: {k:?}"
    );
    let at_hub = hub.job_status("survivor").unwrap();
    assert_eq!(at_hub.state, JobState::Succeeded, "{at_hub:?}");
    assert_eq!(hub.uploads().len(), 1);
    assert_eq!(
        worker.pipeline.events(),
        [
            Started("survivor".into()),
            Ended("survivor".into()),
            Started("survivor".into()),
            Ended("survivor".into())
        ]
    );
    let dir = worker.stop().await;
    assert_work_dir_clean(dir.path());
}

/// Queued jobs are over too: after an outage only the hub's re-queued job runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_drops_queued_jobs_and_sends_nothing_for_them() {
    let mut hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    assign(&hub, "running", json!({"sleep_ms": 3_000}));
    hub.wait_for(WAIT, |f| {
        f.kind() == "stage" && f.json["stage"] == "compiling"
    })
    .await
    .unwrap();
    assign(&hub, "waiting", json!({}));
    settle().await;
    hub.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    hub.restart().await.unwrap();
    hub.wait_for_hello(2, WAIT).await.unwrap();
    // The hub tracks only the last assigned job: "waiting" comes back, "running" not.
    let complete = hub.wait_for_complete("waiting", WAIT).await.unwrap();
    assert_eq!(complete.json["success"], true);
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let stale: Vec<_> = hub
        .job_frames("running")
        .into_iter()
        .filter(|f| f.connection == 2)
        .collect();
    assert!(stale.is_empty(), "{:?}", kinds(&stale));
    let waiting_runs = worker
        .pipeline
        .events()
        .iter()
        .filter(|e| **e == PipelineEvent::Started("waiting".into()))
        .count();
    assert_eq!(waiting_runs, 1, "the dropped queued copy never ran");
    let dir = worker.stop().await;
    assert_work_dir_clean(dir.path());
}

/// A worker whose `perry --version` does not run advertises only `windows-sign`, and
/// announces `windows` again once an update makes perry run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_is_advertised_only_while_perry_runs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("installed");
    let perry = dir.path().join("perry");
    let script = format!(
        "#!/bin/sh
if [ \"$1\" = update ]; then touch '{m}'; exit 0; fi
[ -f '{m}' ] || exit 127
echo 'perry 0.6.0'
",
        m = installed.display()
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
    let first = hub.wait_for_hello(1, WAIT).await.unwrap().json;
    assert_eq!(first["capabilities"], json!(["windows-sign"]), "{first}");
    assert!(first.get("perry_version").is_none(), "{first}");

    hub.send_json(&json!({"type": "update_perry"})).unwrap();
    let result = hub
        .wait_for(WAIT, |f| f.kind() == "update_result")
        .await
        .unwrap();
    assert_eq!(
        result.json,
        json!({"type":"update_result","success":true,"old_version":null,"new_version":"0.6.0"})
    );
    let second = hub.wait_for_hello(2, WAIT).await.unwrap().json;
    assert_eq!(second["capabilities"], json!(["windows", "windows-sign"]));
    assert_eq!(second["perry_version"], "0.6.0");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_keeps_retrying_until_the_hub_appears() {
    let mut hub = TestHub::start().await.unwrap();
    hub.stop().await;
    let worker = start_worker(&hub, &[], |_| {});
    tokio::time::sleep(Duration::from_millis(800)).await;
    hub.restart().await.unwrap();
    hub.wait_for_hello(1, WAIT).await.unwrap();
    assign(&hub, "late", json!({}));
    assert_eq!(
        hub.wait_for_complete("late", WAIT).await.unwrap().json["success"],
        true
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_hub_is_declared_dead_and_reconnected() {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    // A hub that accepts the WebSocket, reads the hello, then never reads again (so it
    // never answers a Ping): the worker must give up on it after `silence_timeout`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hellos = Arc::new(AtomicU32::new(0));
    let counter = hellos.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            if let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await {
                if let Some(Ok(_hello)) = ws.next().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                held.push(ws);
            }
        }
    });
    let unused = TestHub::start().await.unwrap();
    let started = std::time::Instant::now();
    let worker = start_worker(&unused, &[], |c| {
        c.hub_url = format!("ws://{addr}/ws");
        c.link.ping_interval = Duration::from_millis(200);
        c.link.silence_timeout = Duration::from_millis(800);
    });
    while hellos.load(Ordering::SeqCst) < 2 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        hellos.load(Ordering::SeqCst),
        2,
        "the worker reconnected after the silence"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "not before the silence timeout"
    );
    worker.shutdown.cancel();
}
