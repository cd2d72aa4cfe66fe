//! A worker that fleets can drive: idle exit, the idle actions (`command`,
//! `azure-deallocate` against local IMDS / Entra ID / ARM stand-ins), the job limit, and
//! pause / resume over HTTP and with SIGUSR1 / SIGUSR2. The lifecycle tests run the real
//! binary against the in-process test hub; its jobs use a stand-in `perry` script (no
//! Docker, no toolchain).

mod fleet_support;
mod hub_support;

use fleet_support::*;
use hub_support::*;
use perry_ship_windows::testhub::TestHub;
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

const DEALLOCATE_URI: &str = "/subscriptions/sub-123/resourceGroups/rg-fleet/providers/Microsoft.Compute/virtualMachines/win-07/deallocate?api-version=2024-07-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_deallocate_with_the_managed_identity_retries_renews_and_exits_0() {
    let hub = TestHub::start().await.unwrap();
    // First attempt: ARM refuses (403, not retried) → reconnect and wait again. Second
    // attempt: 503 (retried by the HTTP rules) then 202.
    let (azure, url) = AzureStandIn::start(&[403, 503, 202]).await;
    let mut worker = BinWorker::start(
        &hub,
        &[],
        &[
            ("PERRY_IDLE_TIMEOUT", "1"),
            ("PERRY_IDLE_ACTION", "azure-deallocate"),
            ("PERRY_AZURE_IMDS_URL", &url),
            ("PERRY_AZURE_ARM_URL", &url),
        ],
        0.0,
    );
    hub.wait_for_hello(1, WAIT).await.unwrap();
    let status = worker.exit_within(Duration::from_secs(30)).await;
    let log = worker.log();
    assert!(status.success(), "{status:?}; log:\n{log}");
    assert_eq!(
        hub.frames()
            .iter()
            .filter(|f| f.kind() == "worker_hello")
            .count(),
        2,
        "reconnected once after the refused deallocation"
    );
    wait_disconnected(&hub, WAIT).await;
    assert_eq!(
        hub.close_frames(),
        2,
        "the link was closed before each attempt"
    );
    assert!(log.contains("HTTP 403"), "the failure is logged: {log}");

    let compute = azure.seen(|s| s.uri.starts_with("/metadata/instance/compute"));
    assert_eq!(
        compute.len(),
        1,
        "the VM identity is asked once: {compute:?}"
    );
    assert_eq!(compute[0].method, "GET");
    assert_eq!(
        compute[0].uri,
        "/metadata/instance/compute?api-version=2021-02-01"
    );
    let tokens = azure.seen(|s| s.uri.starts_with("/metadata/identity/oauth2/token"));
    assert_eq!(tokens.len(), 2, "the 2 s token was renewed: {tokens:?}");
    for t in &tokens {
        assert_eq!(t.method, "GET");
        assert_eq!(t.metadata.as_deref(), Some("true"));
        assert_eq!(
            t.uri,
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
        );
    }
    let arm = azure.seen(|s| s.uri.contains("/deallocate"));
    let bearers: Vec<_> = arm
        .iter()
        .map(|s| s.authorization.clone().unwrap())
        .collect();
    assert_eq!(
        bearers,
        [
            "Bearer mi-token-1",
            "Bearer mi-token-2",
            "Bearer mi-token-2"
        ],
        "{arm:?}"
    );
    for call in &arm {
        assert_eq!(call.method, "POST");
        assert_eq!(call.uri, DEALLOCATE_URI);
        assert!(call.body.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_deallocate_with_a_service_principal_sends_its_form_and_never_logs_the_secret() {
    let hub = TestHub::start().await.unwrap();
    let (azure, url) = AzureStandIn::start(&[]).await;
    let secret = "sp-secret-Zq9!x";
    let mut worker = BinWorker::start(
        &hub,
        &[],
        &[
            ("PERRY_IDLE_TIMEOUT", "1"),
            ("PERRY_IDLE_ACTION", "azure-deallocate"),
            ("PERRY_AZURE_IMDS_URL", &url),
            ("PERRY_AZURE_ARM_URL", &url),
            ("PERRY_AZURE_AUTHORITY_URL", &url),
            ("AZURE_TENANT_ID", "tenant-1"),
            ("AZURE_CLIENT_ID", "client-1"),
            ("AZURE_CLIENT_SECRET", secret),
        ],
        0.0,
    );
    hub.wait_for_hello(1, WAIT).await.unwrap();
    let status = worker.exit_within(Duration::from_secs(15)).await;
    let log = worker.log();
    assert!(status.success(), "{status:?}; log:\n{log}");
    assert!(!log.contains(secret) && !log.contains("sp-token"), "{log}");

    let login = azure.seen(|s| s.uri.ends_with("/oauth2/v2.0/token"));
    assert_eq!(login.len(), 1, "{login:?}");
    assert_eq!(login[0].method, "POST");
    assert_eq!(login[0].uri, "/tenant-1/oauth2/v2.0/token");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(login[0].body.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("grant_type"), Some("client_credentials"));
    assert_eq!(field("client_id"), Some("client-1"));
    assert_eq!(field("client_secret"), Some(secret));
    assert_eq!(
        field("scope"),
        Some("https://management.azure.com/.default")
    );
    assert!(
        azure
            .seen(|s| s.uri.starts_with("/metadata/identity"))
            .is_empty(),
        "no managed identity token with a service principal"
    );
    let arm = azure.seen(|s| s.uri.contains("/deallocate"));
    assert_eq!(arm.len(), 1);
    assert_eq!(arm[0].uri, DEALLOCATE_URI);
    assert_eq!(arm[0].authorization.as_deref(), Some("Bearer sp-token-1"));
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
