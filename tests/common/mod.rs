//! Helpers shared by the integration tests: finding the Docker engine and the toolchain
//! image (a hard failure under `CI=true`, a printed SKIP otherwise), building small test
//! PE files with the host's mingw, and a step context that collects events.
#![allow(dead_code)]

pub mod docker;

use bollard::Docker;
use perry_ship_windows::events::{CollectingSink, Stage};
use perry_ship_windows::sandbox::StepContext;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[path = "../support/gate.rs"]
pub mod gate;
pub use gate::skip_or_fail;

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

/// True when the host has `x86_64-w64-mingw32-gcc` on PATH.
pub fn have_mingw() -> bool {
    std::process::Command::new("x86_64-w64-mingw32-gcc")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Compiles `c_source` with the host's mingw into `dir/<name>.exe` (a real PE32+ console
/// program) and returns its path. Panics with the compiler's output when that fails.
pub fn mingw_exe(dir: &Path, name: &str, c_source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(format!("{name}.exe"));
    std::fs::write(&src, c_source).expect("writing the C source");
    let out = std::process::Command::new("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-s", "-Wl,--no-insert-timestamp", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("x86_64-w64-mingw32-gcc is not installed (scripts/setup-host.sh installs it)");
    assert!(
        out.status.success(),
        "mingw failed for {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&src);
    exe
}

/// A step context whose events land in the returned sink; outputs go to `output_dir`.
pub fn step_context(job_id: &str, output_dir: &Path) -> (StepContext, Arc<CollectingSink>) {
    let sink = CollectingSink::new();
    let ctx = StepContext {
        job_id: job_id.to_string(),
        attempt: 1,
        stage: Stage::Compiling,
        events: sink.clone(),
        cancel: CancellationToken::new(),
        output_dir: output_dir.to_path_buf(),
    };
    (ctx, sink)
}

/// A unique job id per test run, so parallel tests never see each other's containers.
pub fn unique_job_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
