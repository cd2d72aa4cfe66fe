//! Job lifecycle against the in-process test hub: success path, failures and their codes,
//! HTTP failures on tarball and upload, cancel, re-assignment, queueing.

use perry_test_support::hub_support;

use hub_support::*;
use perry_test_support::testhub::{TarballFailure, TestHub, UploadFailure};
use serde_json::json;
use sha2::Digest;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_runs_download_stages_upload_complete() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    assign(
        &hub,
        "job-ok",
        json!({"log_lines": 3, "artifact_repeat": 1000}),
    );
    let complete = hub.wait_for_complete("job-ok", WAIT).await.unwrap();
    settle().await;

    assert_eq!(
        complete.json["success"],
        true,
        "{:?}",
        kinds(&hub.job_frames("job-ok"))
    );
    let uploads = hub.uploads();
    assert_eq!(uploads.len(), 1);
    let up = &uploads[0];
    assert_eq!(
        (up.job_id.as_str(), up.name.as_str(), up.target.as_str()),
        ("job-ok", "TestApp-1.0.0-Setup.exe", "windows")
    );
    let stored = std::fs::read(hub.upload_path("job-ok", &up.name)).unwrap();
    let expected = b"MZ pretend this is an installer\n".repeat(1000);
    assert_eq!(
        stored, expected,
        "the hub decoded exactly the artifact bytes"
    );
    let sha = hex::encode(sha2::Sha256::digest(&expected));
    assert_eq!(up.sha256, sha);
    assert_eq!(
        complete.json["artifacts"],
        json!([{"name": "TestApp-1.0.0-Setup.exe", "size": expected.len(), "sha256": sha}])
    );
    assert!(complete.json["duration_secs"].as_f64().unwrap() > 0.0);
    assert!(
        up.at <= complete.at,
        "upload finished before complete was sent"
    );

    // Every frame after the hello carries the job id; stages in order; complete is last.
    let frames = hub.frames();
    for f in frames.iter().filter(|f| f.kind() != "worker_hello") {
        assert_eq!(
            f.job_id(),
            Some("job-ok"),
            "frame without job id: {}",
            f.raw
        );
    }
    let stages: Vec<String> = frames
        .iter()
        .filter(|f| f.kind() == "stage")
        .map(|f| f.json["stage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        stages,
        ["extracting", "compiling", "packaging", "uploading"]
    );
    assert_eq!(frames.last().unwrap().kind(), "complete");
    let logs: Vec<&str> = frames
        .iter()
        .filter(|f| f.kind() == "log")
        .map(|f| f.json["line"].as_str().unwrap())
        .collect();
    assert!(logs.contains(&"compiler output line 2"), "{logs:?}");
    for f in frames.iter().filter(|f| f.kind() == "progress") {
        let p = f.json["percent"].as_u64().unwrap();
        assert!(p <= 100 && f.json.get("message").is_some(), "{}", f.raw);
    }
    assert!(frames.iter().any(|f| f.kind() == "progress"
        && f.json["stage"] == "uploading"
        && f.json["percent"] == 100));
    let dir = worker.stop().await;
    assert_work_dir_clean(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_failure_reports_its_code_and_uploads_nothing() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    for (job, code) in [
        ("j-compile", "COMPILE_FAILED"),
        ("j-sign", "SIGNING_FAILED"),
        ("j-pkg", "PACKAGE_FAILED"),
    ] {
        assign(&hub, job, json!({"fail": code}));
        hub.wait_for_complete(job, WAIT).await.unwrap();
        settle().await;
        let err = assert_failed(&hub, job);
        assert_eq!(err["code"], code);
        assert_eq!(err["stage"], "compiling");
    }
    assert!(hub.uploads().is_empty());
    let dir = worker.stop().await;
    assert_work_dir_clean(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifest_fails_cleanly_and_next_job_works() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    hub.add_job("bad", "t-bad", project_tarball(json!({})));
    let frame = hub.assign_frame(
        "bad",
        json!({"app_name": "X", "bundle_id": "a.b", "entry": "main.ts"}),
        json!({}),
    );
    hub.send_json(&frame).unwrap();
    hub.wait_for_complete("bad", WAIT).await.unwrap();
    settle().await;
    let err = assert_failed(&hub, "bad");
    assert_eq!(err["code"], "INTERNAL_ERROR");
    assert!(
        err["message"].as_str().unwrap().contains("version"),
        "{err}"
    );
    assert!(
        hub.tarball_requests().is_empty(),
        "nothing downloaded for an invalid manifest"
    );

    assign(&hub, "good", json!({}));
    assert_eq!(
        hub.wait_for_complete("good", WAIT).await.unwrap().json["success"],
        true
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarball_403_and_cut_download_fail_cleanly() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    hub.set_tarball_failure("forbidden", TarballFailure::Status(403));
    assign(&hub, "forbidden", json!({}));
    hub.wait_for_complete("forbidden", WAIT).await.unwrap();
    settle().await;
    let err = assert_failed(&hub, "forbidden");
    assert_eq!(err["code"], "INTERNAL_ERROR");
    assert_eq!(err["stage"], "extracting");
    assert!(err["message"].as_str().unwrap().contains("403"), "{err}");

    hub.set_tarball_failure("cut", TarballFailure::CutHalfway);
    assign(&hub, "cut", json!({}));
    hub.wait_for_complete("cut", WAIT).await.unwrap();
    settle().await;
    assert_eq!(assert_failed(&hub, "cut")["stage"], "extracting");
    assert!(
        worker.pipeline.events().is_empty(),
        "the pipeline never ran"
    );
    assert!(hub.uploads().is_empty());
    let dir = worker.stop().await;
    assert_work_dir_clean(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_retries_503_then_succeeds_but_409_fails() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    hub.set_upload_failure("busy", UploadFailure::Unavailable { times: 2 });
    assign(&hub, "busy", json!({}));
    let complete = hub.wait_for_complete("busy", WAIT).await.unwrap();
    assert_eq!(
        complete.json["success"],
        true,
        "{:?}",
        kinds(&hub.job_frames("busy"))
    );
    assert_eq!(hub.uploads().len(), 1);

    hub.set_upload_failure("conflict", UploadFailure::Status(409));
    assign(&hub, "conflict", json!({}));
    hub.wait_for_complete("conflict", WAIT).await.unwrap();
    settle().await;
    let err = assert_failed(&hub, "conflict");
    assert_eq!(err["stage"], "uploading");
    assert_eq!(err["code"], "INTERNAL_ERROR");
    assert!(err["message"].as_str().unwrap().contains("409"), "{err}");
    assert_eq!(hub.uploads().len(), 1, "the refused upload is not recorded");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_artifact_is_refused_before_sending() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[("PERRY_MAX_ARTIFACT_SIZE", "1k")]).await;
    assign(&hub, "huge", json!({"artifact_repeat": 100}));
    hub.wait_for_complete("huge", WAIT).await.unwrap();
    settle().await;
    let err = assert_failed(&hub, "huge");
    assert_eq!(err["code"], "UPLOAD_TOO_LARGE");
    assert_eq!(err["stage"], "uploading");
    assert!(hub.uploads().is_empty());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_job_promptly() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    assign(&hub, "long", json!({"sleep_ms": 30_000}));
    hub.wait_for(WAIT, |f| {
        f.kind() == "stage" && f.json["stage"] == "compiling"
    })
    .await
    .unwrap();
    let sent = Instant::now();
    hub.send_json(&json!({"type": "cancel", "job_id": "long"}))
        .unwrap();
    hub.wait_for_complete("long", WAIT).await.unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "cancel took {:?}",
        sent.elapsed()
    );
    settle().await;
    let err = assert_failed(&hub, "long");
    assert!(
        err["message"].as_str().unwrap().contains("cancelled"),
        "{err}"
    );
    assert!(hub.uploads().is_empty());

    // A cancel for a queued job removes it before it starts, and is reported too.
    assign(&hub, "first", json!({"sleep_ms": 1_000}));
    assign(&hub, "queued", json!({}));
    hub.send_json(&json!({"type": "cancel", "job_id": "queued"}))
        .unwrap();
    hub.wait_for_complete("queued", WAIT).await.unwrap();
    hub.wait_for_complete("first", WAIT).await.unwrap();
    settle().await;
    assert_failed(&hub, "queued");
    assert!(!hub.tarball_requests().contains(&"queued".to_string()));
    let dir = worker.stop().await;
    assert_work_dir_clean(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_assigns_with_one_slot_run_in_order() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[("PERRY_MAX_CONCURRENT_BUILDS", "1")]).await;
    assign(&hub, "a", json!({"sleep_ms": 500}));
    assign(&hub, "b", json!({"sleep_ms": 100}));
    let ca = hub.wait_for_complete("a", WAIT).await.unwrap();
    let cb = hub.wait_for_complete("b", WAIT).await.unwrap();
    assert_eq!(
        (ca.json["success"].clone(), cb.json["success"].clone()),
        (json!(true), json!(true))
    );
    assert!(ca.at < cb.at);
    use PipelineEvent::*;
    assert_eq!(
        worker.pipeline.events(),
        [
            Started("a".into()),
            Ended("a".into()),
            Started("b".into()),
            Ended("b".into())
        ]
    );
    assert_eq!(worker.pipeline.max_parallel.load(Ordering::SeqCst), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_slots_run_two_jobs_at_once() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[("PERRY_MAX_CONCURRENT_BUILDS", "2")]).await;
    assign(&hub, "p1", json!({"sleep_ms": 800}));
    assign(&hub, "p2", json!({"sleep_ms": 800}));
    hub.wait_for_complete("p1", WAIT).await.unwrap();
    hub.wait_for_complete("p2", WAIT).await.unwrap();
    assert_eq!(worker.pipeline.max_parallel.load(Ordering::SeqCst), 2);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassigned_job_stops_the_orphan_first_and_uploads_once() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[("PERRY_MAX_CONCURRENT_BUILDS", "2")]).await;
    assign(&hub, "dup", json!({"sleep_ms": 2_000}));
    hub.wait_for(WAIT, |f| {
        f.kind() == "stage" && f.json["stage"] == "compiling"
    })
    .await
    .unwrap();
    // The hub re-queued the job (new token) and assigns it again.
    hub.assign(
        "dup",
        "token-dup-2",
        project_tarball(json!({"sleep_ms": 200})),
        manifest(),
        json!({}),
    )
    .unwrap();
    hub.wait_for_complete("dup", WAIT).await.unwrap();
    settle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let completes: Vec<_> = hub
        .job_frames("dup")
        .into_iter()
        .filter(|f| f.kind() == "complete")
        .collect();
    assert_eq!(completes.len(), 1, "{:?}", kinds(&hub.job_frames("dup")));
    assert_eq!(completes[0].json["success"], true);
    assert!(
        hub.job_frames("dup").iter().all(|f| f.kind() != "error"),
        "the orphan reported nothing"
    );
    assert_eq!(hub.uploads().len(), 1, "no duplicate upload");
    assert_eq!(
        worker.pipeline.max_same_job_overlap.load(Ordering::SeqCst),
        1,
        "two runs of one job overlapped"
    );
    use PipelineEvent::*;
    assert_eq!(
        worker.pipeline.events(),
        [
            Started("dup".into()),
            Ended("dup".into()),
            Started("dup".into()),
            Ended("dup".into())
        ]
    );
    let dir = worker.stop().await;
    assert_work_dir_clean(dir.path());
}
