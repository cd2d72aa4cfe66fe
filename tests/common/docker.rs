//! Docker-side test helpers: a DockerRunner with a unique worker name and small limits,
//! a step builder, and polling for containers by label and for log lines.

use super::unique_job_id;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use perry_ship_windows::config::Config;
use perry_ship_windows::events::CollectingSink;
use perry_ship_windows::sandbox::docker::DockerRunner;
use perry_ship_windows::sandbox::Step;
use std::collections::HashMap;
use std::time::Duration;

/// A runner with its own worker name (so reaping never touches other tests), 768 MiB
/// memory, 256 pids and 1.5 CPUs.
pub fn runner(image: &str) -> DockerRunner {
    let worker = unique_job_id("test-worker");
    let config = Config::for_tests(&[
        ("PERRY_WORKER_NAME", worker.as_str()),
        ("PERRY_DOCKER_IMAGE", image),
        ("PERRY_DOCKER_MEMORY", "768m"),
        ("PERRY_DOCKER_PIDS", "256"),
        ("PERRY_DOCKER_CPUS", "1.5"),
    ]);
    DockerRunner::new(&config).unwrap()
}

/// A step in `image` with a 120 s timeout and nothing copied in or out.
pub fn step(image: &str, argv: &[&str]) -> Step {
    Step {
        name: "test".into(),
        image: image.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        inputs: vec![],
        outputs: vec![],
        cwd: String::new(),
        timeout: Duration::from_secs(120),
    }
}

/// Ids of all containers (any state) carrying `label=value`.
pub async fn containers_with(docker: &Docker, label: &str, value: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("{label}={value}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Waits until `job`'s container exists and returns its id.
pub async fn wait_for_container(docker: &Docker, job: &str) -> String {
    for _ in 0..200 {
        if let Some(id) = containers_with(docker, "perry-ship.job", job)
            .await
            .into_iter()
            .next()
        {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no container for job {job} appeared");
}

/// Waits (up to 10 s) until the sink holds `line`.
pub async fn wait_for_line(sink: &CollectingSink, line: &str) {
    for _ in 0..400 {
        if sink.lines().iter().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("line {line:?} never appeared: {:?}", sink.lines());
}
