//! A hostile or buggy hub (or project) through the test hub: transfer URLs outside the
//! hub's origin, oversized `job_assign` frames, a flood of assignments, and a crashed
//! run's work folders. Each refused job gets `error` + `complete{success:false}`, and the
//! worker keeps serving the next job.

use perry_test_support::hub_support;

use hub_support::*;
use perry_test_support::testhub::TestHub;
use serde_json::json;

/// A job assigned with `tarball_url` / `artifact_upload_url` rewritten by `edit`.
fn assign_with_urls(hub: &TestHub, job_id: &str, edit: impl Fn(&mut serde_json::Value)) {
    hub.add_job(
        job_id,
        &format!("token-{job_id}"),
        project_tarball(json!({})),
    );
    let mut frame = hub.assign_frame(job_id, manifest(), json!({}));
    edit(&mut frame);
    hub.send_json(&frame).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_urls_outside_the_hub_origin_are_refused() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    let port = hub.base_url().rsplit(':').next().unwrap().to_string();
    // `localhost` is the same machine but another origin; so is plain http on another port.
    let foreign_host = format!("http://localhost:{port}");
    assign_with_urls(&hub, "other-host", |f| {
        f["tarball_url"] = json!(format!("{foreign_host}/tarball/other-host"));
    });
    assign_with_urls(&hub, "other-upload", |f| {
        f["artifact_upload_url"] = json!("https://attacker.example/upload/x?secret=1");
    });
    for (job, field) in [
        ("other-host", "tarball_url"),
        ("other-upload", "artifact_upload_url"),
    ] {
        hub.wait_for_complete(job, WAIT).await.unwrap();
        let error = assert_failed(&hub, job);
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(field), "names the field: {message}");
        assert!(message.contains("PERRY_TRANSFER_ORIGINS"), "{message}");
        assert!(!message.contains("secret=1"), "{message}");
    }
    assert!(
        hub.tarball_requests().is_empty(),
        "nothing was fetched: {:?}",
        hub.tarball_requests()
    );
    // The worker goes on with a normal job.
    assign(&hub, "after", json!({}));
    let done = hub.wait_for_complete("after", WAIT).await.unwrap();
    assert_eq!(done.json["success"], true);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_transfer_origins_are_accepted() {
    let hub = TestHub::start().await.unwrap();
    let port = hub.base_url().rsplit(':').next().unwrap().to_string();
    let allowed = format!("http://localhost:{port}");
    let worker = connected_worker(&hub, &[("PERRY_TRANSFER_ORIGINS", &allowed)]).await;
    assign_with_urls(&hub, "listed", |f| {
        f["tarball_url"] = json!(format!("{allowed}/tarball/listed"));
    });
    let done = hub.wait_for_complete("listed", WAIT).await.unwrap();
    assert_eq!(
        done.json["success"],
        true,
        "{:?}",
        kinds(&hub.job_frames("listed"))
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_folders_left_by_a_crash_are_removed_at_start() {
    let hub = TestHub::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = test_config(&hub, work.path(), &[]);
    let leftover = perry_ship_windows::job::workdir::JobWorkDir::create(
        &config.work_dir,
        &config.worker_name,
        "crashed-job",
        1,
    )
    .unwrap();
    std::fs::write(leftover.path().join("project.tar.gz"), "old").unwrap();
    let leftover_path = leftover.path().to_path_buf();
    std::mem::forget(leftover); // the crash: nothing removed it
    let foreign = perry_ship_windows::job::workdir::JobWorkDir::create(
        &config.work_dir,
        "another-worker",
        "their-job",
        1,
    )
    .unwrap();
    let work_path = work.path().display().to_string();
    let worker = connected_worker(&hub, &[("PERRY_WORK_DIR", &work_path)]).await;
    assert!(!leftover_path.exists(), "this worker's leftover is gone");
    assert!(foreign.path().exists(), "another worker's folder is kept");
    drop(foreign);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_job_assign_is_refused_unparsed_and_the_worker_goes_on() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[("PERRY_MAX_ASSIGN_FRAME", "64k")]).await;
    hub.add_job("huge", "token-huge", project_tarball(json!({})));
    let mut frame = hub.assign_frame("huge", manifest(), json!({}));
    frame["manifest"]["padding"] = json!("p".repeat(1 << 20));
    hub.send_json(&frame).unwrap();
    hub.wait_for_complete("huge", WAIT).await.unwrap();
    let error = assert_failed(&hub, "huge");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("PERRY_MAX_ASSIGN_FRAME") && message.contains("1.0 MiB"),
        "{message}"
    );
    assert!(hub.tarball_requests().is_empty(), "the job never started");
    assign(&hub, "small", json!({}));
    let done = hub.wait_for_complete("small", WAIT).await.unwrap();
    assert_eq!(done.json["success"], true);
    assert_eq!(hub.connections(), 1, "the link stayed up");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignments_beyond_the_queue_bound_are_refused_not_dropped() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[("PERRY_MAX_QUEUED_JOBS", "2")]).await;
    assign(&hub, "running", json!({"sleep_ms": 1500}));
    hub.wait_for(WAIT, |f| {
        f.job_id() == Some("running") && f.kind() == "stage"
    })
    .await
    .unwrap();
    for job in ["queued-1", "queued-2", "over-1", "over-2"] {
        assign(&hub, job, json!({}));
    }
    for job in ["over-1", "over-2"] {
        hub.wait_for_complete(job, WAIT).await.unwrap();
        let error = assert_failed(&hub, job);
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("PERRY_MAX_QUEUED_JOBS"), "{message}");
    }
    for job in ["running", "queued-1", "queued-2"] {
        let done = hub.wait_for_complete(job, WAIT).await.unwrap();
        assert_eq!(done.json["success"], true, "{job}");
    }
    worker.stop().await;
}

/// Serves `router` on an ephemeral port; returns its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_another_origin_are_refused() {
    use axum::response::Redirect;
    use axum::routing::get;
    use perry_ship_windows::hub::transfer::{download_tarball, http_client, RetryPolicy};
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = hits.clone();
    let elsewhere = serve(axum::Router::new().route(
        "/t",
        get(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "aGVsbG8=" }
        }),
    ))
    .await;
    let target = format!("{elsewhere}/t");
    let same_target = target.clone();
    let hub = serve(
        axum::Router::new()
            .route(
                "/away",
                get(move || async move { Redirect::temporary(&target) }),
            )
            .route("/here", get(|| async { Redirect::temporary("/t") }))
            .route("/t", get(|| async { "aGVsbG8=" })),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let policy = RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    };
    let dest = dir.path().join("p.tar.gz");
    let err = download_tarball(
        &http_client(),
        &format!("{hub}/away"),
        "tok",
        &dest,
        &cancel,
        &|_| {},
        &policy,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("redirect"), "{err}");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "{same_target} never reached"
    );
    assert!(!dest.exists());
    // A redirect within the origin is still followed.
    let size = download_tarball(
        &http_client(),
        &format!("{hub}/here"),
        "tok",
        &dest,
        &cancel,
        &|_| {},
        &policy,
    )
    .await
    .unwrap();
    assert_eq!(size, 5);
}
