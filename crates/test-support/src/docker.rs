//! Docker-side test helpers: the engine and the toolchain image as prerequisites (through
//! the [`crate::gate`]), a DockerRunner with a unique worker name and small limits, a step
//! builder, and polling for containers by label and for log lines.

use crate::gate::skip_or_fail;
use crate::sandbox_support::unique_job_id;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use perry_ship_windows::config::Config;
use perry_ship_windows::events::CollectingSink;
use perry_ship_windows::sandbox::docker::DockerRunner;
use perry_ship_windows::sandbox::Step;
use std::collections::HashMap;
use std::time::Duration;

/// The engine (`DOCKER_HOST` or the default socket) if it answers a ping within 5 s.
pub async fn require_docker() -> Option<Docker> {
    let docker = match Docker::connect_with_defaults() {
        Ok(d) => d,
        Err(e) => return skip_or_fail(&format!("cannot connect to the Docker engine: {e}")),
    };
    match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
        Ok(Ok(_)) => Some(docker),
        Ok(Err(e)) => skip_or_fail(&format!("the Docker engine does not answer: {e}")),
        Err(_) => skip_or_fail("the Docker engine did not answer a ping within 5 s"),
    }
}

/// The engine, if it answers and has image `name` locally.
pub async fn require_image(name: &str) -> Option<Docker> {
    let docker = require_docker().await?;
    match docker.inspect_image(name).await {
        Ok(_) => Some(docker),
        Err(e) => skip_or_fail(&format!(
            "image {name} is missing ({e}); build it with scripts/build-images.sh"
        )),
    }
}

/// The toolchain image under test: `PERRY_DOCKER_IMAGE` or the configured default.
pub fn toolchain_image() -> String {
    std::env::var("PERRY_DOCKER_IMAGE")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| perry_ship_windows::config::default_image().to_string())
}

/// The engine plus the toolchain image, or `None` after SKIP (panics under CI).
pub async fn require_toolchain() -> Option<(Docker, String)> {
    let image = toolchain_image();
    let docker = require_image(&image).await?;
    Some((docker, image))
}

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
