//! Talking to the engine at all: which socket we use, whether it answers, whether the
//! toolchain image is there, and error messages that name the socket or image instead of
//! a bare transport error. Shared by the runner and `doctor`.

use anyhow::{anyhow, Context, Result};
use bollard::Docker;
use std::time::Duration;

/// Deadline for the small engine calls (version, inspect).
pub(crate) const QUICK_DEADLINE: Duration = Duration::from_secs(10);

/// What `check` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    /// Where the engine was reached (`DOCKER_HOST` or the platform default).
    pub(crate) endpoint: String,
    pub(crate) engine_version: String,
    pub api_version: String,
    /// `linux` or `windows`.
    pub os: String,
    pub(crate) image: String,
    pub(crate) image_id: String,
    /// The image's `User` (empty = root).
    pub image_user: String,
}

/// The endpoint bollard's `connect_with_defaults` uses, for messages.
pub(crate) fn endpoint() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.trim().is_empty() => host,
        _ if cfg!(windows) => "npipe:////./pipe/docker_engine".into(),
        _ => "unix:///var/run/docker.sock".into(),
    }
}

/// Engine reachable (within [`QUICK_DEADLINE`]), its API version, and `image` present.
pub(crate) async fn check(docker: &Docker, image: &str) -> Result<EngineInfo> {
    let endpoint = endpoint();
    let version = tokio::time::timeout(QUICK_DEADLINE, docker.version())
        .await
        .map_err(|_| {
            anyhow!("the Docker engine at {endpoint} did not answer within {QUICK_DEADLINE:?}")
        })?
        .with_context(|| format!("the Docker engine at {endpoint} is not reachable"))?;
    let inspected = tokio::time::timeout(QUICK_DEADLINE, docker.inspect_image(image))
        .await
        .map_err(|_| anyhow!("inspecting image {image} on {endpoint} timed out"))?
        .map_err(|e| image_error(image, &endpoint, e))?;
    Ok(EngineInfo {
        endpoint,
        engine_version: version.version.unwrap_or_default(),
        api_version: version.api_version.unwrap_or_default(),
        os: version.os.unwrap_or_default(),
        image: image.to_string(),
        image_id: inspected.id.unwrap_or_default(),
        image_user: inspected.config.and_then(|c| c.user).unwrap_or_default(),
    })
}

/// A missing image is the common case: say how to build it.
pub(crate) fn image_error(
    image: &str,
    endpoint: &str,
    err: bollard::errors::Error,
) -> anyhow::Error {
    match &err {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => anyhow!(
            "toolchain image {image} is not present on the Docker engine at {endpoint} \
             (build it with scripts/build-images.sh)"
        ),
        _ => anyhow!(err).context(format!(
            "inspecting image {image} on the Docker engine at {endpoint}"
        )),
    }
}

/// Wraps any engine error with the endpoint, and the image for 404s on create.
pub(crate) fn engine_error(
    what: &str,
    image: Option<&str>,
    err: bollard::errors::Error,
) -> anyhow::Error {
    let endpoint = endpoint();
    match (image, &err) {
        (
            Some(image),
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            },
        ) => image_error(image, &endpoint, err),
        (_, bollard::errors::Error::DockerResponseServerError { .. }) => {
            anyhow!(err).context(format!("{what} (Docker engine at {endpoint})"))
        }
        _ => anyhow!(err).context(format!(
            "{what}: the Docker engine at {endpoint} is not reachable"
        )),
    }
}
