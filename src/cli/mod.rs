//! The commands of the binary and what they share (runner choice, config loading).

pub mod build;
pub(crate) mod console;
pub mod core_dumps;
pub mod doctor;
mod doctor_credentials;
pub mod project;
pub mod run;
pub mod service;
pub mod verify;

use crate::config::Config;
use crate::sandbox::{docker::DockerRunner, host::HostRunner, Runner};
use std::sync::Arc;

/// Reads the configuration or prints the one line that says which variable is wrong.
pub(crate) fn load_config() -> Result<Config, std::process::ExitCode> {
    Config::from_env().map_err(|e| {
        eprintln!("error: invalid configuration: {e}");
        std::process::ExitCode::from(2)
    })
}

/// The runner the configuration asks for: Docker containers or host processes.
pub(crate) async fn make_runner(config: &Config) -> anyhow::Result<Arc<dyn Runner>> {
    if config.docker.enabled {
        Ok(Arc::new(DockerRunner::new(config)?))
    } else {
        Ok(Arc::new(
            HostRunner::new().with_copy_limits(config.extract_limits),
        ))
    }
}

/// Like [`make_runner`], for the long-running worker: with Docker, first checks the engine
/// and image (a clear error instead of failing every job) and removes containers that a
/// previous run of this worker left behind when it crashed.
pub(crate) async fn make_worker_runner(config: &Config) -> anyhow::Result<Arc<dyn Runner>> {
    if !config.docker.enabled {
        return Ok(Arc::new(
            HostRunner::new().with_copy_limits(config.extract_limits),
        ));
    }
    let runner = DockerRunner::new(config)?;
    let info = runner.check(&config.docker.image).await?;
    tracing::info!(
        "docker engine {} (API {}) at {}, image {}",
        info.engine_version,
        info.api_version,
        info.endpoint,
        info.image
    );
    let reaped = runner.reap_orphans(&config.worker_name).await?;
    tracing::info!(
        "removed {reaped} leftover container(s) of worker {}",
        config.worker_name
    );
    Ok(Arc::new(runner))
}
