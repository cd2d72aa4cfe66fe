//! End to end with Docker and the stand-in compiler: a hub outage during a compile ends
//! the job for good (its container and work folder go, nothing stale is sent) and the
//! hub's re-queued copy succeeds; a compiler that exits 0 without writing the exe is
//! `COMPILE_FAILED`, not an internal error.

use perry_test_support::e2e;
use perry_test_support::example_project;

use e2e::*;
use example_project::*;
use perry_test_support::testhub::JobState;
use serde_json::json;
use std::time::{Duration, Instant};

async fn wait_until(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_during_compile_removes_the_orphan_and_the_requeued_job_succeeds() {
    let Some(mut worker) = start_worker(&[]).await else {
        return;
    };
    let job = "e2e-outage";
    let _project = assign_long_compile(&worker, job).await;
    // The hub's re-queued copy builds the unchanged example (a 300 s compile otherwise).
    worker.hub.set_tarball(job, tarball_of(&example_dir()));
    worker.hub.stop().await;
    assert_eq!(
        worker.hub.job_status(job).unwrap().state,
        JobState::Requeued
    );

    let lost = Instant::now();
    while !containers_of_job(job).await.is_empty() {
        assert!(
            lost.elapsed() < Duration::from_secs(10),
            "the orphan's compile container is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let work = worker.work_dir.path().to_path_buf();
    wait_until(
        "the orphan's work folder is removed",
        Duration::from_secs(15),
        || std::fs::read_dir(&work).map_or(0, |d| d.count()) == 0,
    )
    .await;
    let frames_before = worker.hub.frames().len();

    worker.hub.restart().await.unwrap();
    worker
        .hub
        .wait_for_hello(2, Duration::from_secs(20))
        .await
        .unwrap();
    let complete = worker
        .hub
        .wait_for_complete(job, JOB_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(complete.json["success"], json!(true), "{}", complete.raw);
    assert_eq!(complete.connection, 2);
    let after = &worker.hub.frames()[frames_before..];
    assert!(
        after.iter().all(|f| f.kind() != "error"),
        "no stale error after the new hello"
    );
    assert_eq!(
        after.iter().filter(|f| f.kind() == "complete").count(),
        1,
        "only the re-queued run completes"
    );
    assert_eq!(
        worker.hub.job_status(job).unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(worker.hub.uploads().len(), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compiler_that_writes_no_exe_is_compile_failed() {
    // `true` stands for a compiler that exits 0 and writes nothing.
    let Some(worker) = start_worker(&[("PERRY_BUILD_PERRY_BINARY", "true")]).await else {
        return;
    };
    let job = "e2e-no-exe";
    let complete = run_example_job(&worker, job, "portable", json!({})).await;
    assert_eq!(complete.json["success"], json!(false));
    let frames = worker.hub.job_frames(job);
    let error = frames.iter().find(|f| f.kind() == "error").unwrap();
    assert_eq!(error.json["code"], json!("COMPILE_FAILED"), "{}", error.raw);
    let message = error.json["message"].as_str().unwrap();
    assert!(
        message.contains("the compiler succeeded but wrote no"),
        "{message}"
    );
    assert_eq!(complete.json["error"], error.json["message"]);
    assert!(containers_of_job(job).await.is_empty());
    worker.stop().await;
}
