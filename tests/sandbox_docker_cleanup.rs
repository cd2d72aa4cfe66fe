//! DockerRunner cleanup on every path against the real engine: exit 1, missing output or
//! input, timeout, cancel (killed within 2 s), a dropped step future, and the start-up
//! reaper for a crashed worker's containers. Afterwards no container with the job's label
//! may exist.

use bollard::query_parameters::RemoveContainerOptionsBuilder;
use perry_ship_windows::sandbox::{Runner, StepError, StepInput};
use perry_test_support::docker::require_toolchain;
use perry_test_support::docker::{
    containers_with, runner, step, wait_for_container, wait_for_line,
};
use perry_test_support::sandbox_support::{step_context, unique_job_id};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[tokio::test]
async fn exit_code_one_is_an_outcome_and_leaves_nothing() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let job = unique_job_id("exit1");
    let (ctx, _sink) = step_context(&job, &root.path().join("out"));
    let mut s = step(&image, &["sh", "-c", "exit 1"]);
    s.outputs = vec!["never-made".into()];
    assert_eq!(runner(&image).run(&s, &ctx).await.unwrap().exit_code, 1);
    assert!(containers_with(&docker, "perry-ship.job", &job)
        .await
        .is_empty());
}

#[tokio::test]
async fn missing_output_after_success_is_an_infrastructure_error() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let job = unique_job_id("noout");
    let (ctx, _sink) = step_context(&job, &root.path().join("out"));
    let mut s = step(&image, &["true"]);
    s.outputs = vec!["dist/app.exe".into()];
    let err = runner(&image).run(&s, &ctx).await.unwrap_err();
    assert!(matches!(err, StepError::Infrastructure(_)), "{err}");
    assert!(err.to_string().contains("dist/app.exe"), "{err}");
    assert!(containers_with(&docker, "perry-ship.job", &job)
        .await
        .is_empty());
}

#[tokio::test]
async fn timeout_kills_and_removes_the_container() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let job = unique_job_id("timeout");
    let (ctx, _sink) = step_context(&job, &root.path().join("out"));
    let mut s = step(&image, &["sleep", "300"]);
    s.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = runner(&image).run(&s, &ctx).await.unwrap_err();
    assert!(matches!(err, StepError::TimedOut { secs: 2, .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(containers_with(&docker, "perry-ship.job", &job)
        .await
        .is_empty());
}

#[tokio::test]
async fn cancel_kills_within_two_seconds_and_removes_the_container() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let job = unique_job_id("cancel");
    let (ctx, sink) = step_context(&job, &root.path().join("out"));
    let s = step(&image, &["sh", "-c", "echo started; exec sleep 300"]);
    let cancel = ctx.cancel.clone();
    let r = runner(&image);
    let run = tokio::spawn(async move { r.run(&s, &ctx).await });
    wait_for_line(&sink, "started").await;
    let id = wait_for_container(&docker, &job).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let err = run.await.unwrap().unwrap_err();
    let took = cancelled_at.elapsed();
    assert!(matches!(err, StepError::Cancelled { .. }), "{err}");
    assert!(took < Duration::from_secs(2), "cancel took {took:?}");
    assert!(
        docker.inspect_container(&id, None).await.is_err(),
        "container {id} still exists"
    );
    assert!(containers_with(&docker, "perry-ship.job", &job)
        .await
        .is_empty());
}

#[tokio::test]
async fn a_dropped_step_future_still_removes_its_container() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let job = unique_job_id("dropped");
    let (ctx, sink) = step_context(&job, &root.path().join("out"));
    let s = step(&image, &["sh", "-c", "echo started; exec sleep 300"]);
    let r = runner(&image);
    let run = tokio::spawn(async move { r.run(&s, &ctx).await });
    wait_for_line(&sink, "started").await;
    run.abort(); // like a panic or a cancelled job task: the guard's Drop must clean up
    let _ = run.await;
    for _ in 0..100 {
        if containers_with(&docker, "perry-ship.job", &job)
            .await
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("container of the dropped step was not removed within 5 s");
}

#[tokio::test]
async fn leftovers_of_a_crashed_worker_are_reaped_at_start() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let r = runner(&image);
    // A crash leaves a labelled container behind (created, and one running).
    let mut leftovers = Vec::new();
    for cmd in [vec!["true"], vec!["sleep", "300"]] {
        let labels = HashMap::from([
            ("perry-ship.worker".to_string(), r.worker_name().to_string()),
            ("perry-ship.job".to_string(), "crashed-job".to_string()),
        ]);
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.clone()),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            labels: Some(labels),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = docker.create_container(None, body).await.unwrap().id;
        leftovers.push(id);
    }
    docker.start_container(&leftovers[1], None).await.unwrap();
    // Another worker's container must survive.
    let other = runner(&image);
    let other_body = bollard::models::ContainerCreateBody {
        image: Some(image.clone()),
        cmd: Some(vec!["true".into()]),
        labels: Some(HashMap::from([(
            "perry-ship.worker".to_string(),
            other.worker_name().to_string(),
        )])),
        ..Default::default()
    };
    let other_id = docker.create_container(None, other_body).await.unwrap().id;

    assert_eq!(r.reap_orphans(r.worker_name()).await.unwrap(), 2);
    for id in &leftovers {
        assert!(
            docker.inspect_container(id, None).await.is_err(),
            "leftover {id} survived"
        );
    }
    assert!(
        docker.inspect_container(&other_id, None).await.is_ok(),
        "another worker's container was removed"
    );
    let rm = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    docker.remove_container(&other_id, Some(rm)).await.unwrap();
    assert_eq!(r.reap_orphans(r.worker_name()).await.unwrap(), 0);
}

#[tokio::test]
async fn a_missing_input_is_a_clear_error_and_leaves_nothing() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let job = unique_job_id("noinput");
    let (ctx, _sink) = step_context(&job, &root.path().join("out"));
    let mut s = step(&image, &["true"]);
    s.inputs = vec![StepInput {
        host_path: root.path().join("not-there"),
        dest: "x".into(),
    }];
    let err = runner(&image).run(&s, &ctx).await.unwrap_err();
    assert!(matches!(err, StepError::Infrastructure(_)), "{err}");
    assert!(err.to_string().contains("not-there"), "{err}");
    assert!(containers_with(&docker, "perry-ship.job", &job)
        .await
        .is_empty());
}
