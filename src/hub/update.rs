//! `update_perry`: update the perry compiler on the host and say how it went.
//!
//! The compiler is updated with `<PERRY_BUILD_PERRY_BINARY> update` and its version read
//! with `--version` before and after, through the same runner that the hello's version
//! and every build use. When Docker is on, perry lives in the toolchain image and cannot
//! be updated from here: the answer says so instead of pretending.
//!
//! It also owns what the hello advertises: `windows` only while `perry --version` runs
//! ([`advertised_capabilities`]), probed at start and again after every update.

use super::protocol::WorkerFrame;
use crate::config::Config;
use crate::events::{CollectingSink, Stage};
use crate::sandbox::{Runner, Step, StepContext};
use std::time::Duration;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(600);

/// `perry --version` with a leading `perry ` stripped, run through `runner` so it asks the
/// compiler that builds actually use (inside the toolchain image when Docker is on);
/// `None` when perry cannot be run.
pub(crate) async fn perry_version<R: Runner + ?Sized>(
    config: &Config,
    runner: &R,
) -> Option<String> {
    let out = tempfile::tempdir().ok()?;
    let sink = CollectingSink::new();
    let step = Step {
        name: "perry-version".into(),
        image: config.docker.image.clone(),
        argv: vec![config.perry_binary.clone(), "--version".into()],
        env: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        cwd: String::new(),
        timeout: VERSION_TIMEOUT,
    };
    let ctx = StepContext {
        job_id: "perry-version".into(),
        attempt: 1,
        stage: Stage::Queued,
        events: sink.clone(),
        cancel: CancellationToken::new(),
        output_dir: out.path().to_path_buf(),
    };
    let outcome = runner.run(&step, &ctx).await.ok()?;
    if outcome.exit_code != 0 {
        return None;
    }
    let line = sink.lines().into_iter().next()?;
    let version = line.trim();
    let version = version.strip_prefix("perry ").unwrap_or(version).trim();
    (!version.is_empty() && version.len() <= 64).then(|| version.to_string())
}

/// The configured capabilities, without `windows` when perry cannot run (`version` is
/// `None`): such a worker can still sign bundles but would fail every compile job.
pub(crate) fn advertised_capabilities(config: &Config, version: Option<&str>) -> Vec<String> {
    config
        .capabilities
        .iter()
        .filter(|c| version.is_some() || c.as_str() != "windows")
        .cloned()
        .collect()
}

/// The `worker_hello` for a probed perry version; logs when `windows` is left out.
pub(crate) fn worker_hello(config: &Config, perry_version: Option<String>) -> WorkerFrame {
    let capabilities = advertised_capabilities(config, perry_version.as_deref());
    if capabilities.len() < config.capabilities.len() {
        tracing::warn!(
            "`{} --version` does not run: not advertising `windows` (compile jobs) until it \
             does; advertising {capabilities:?}",
            config.perry_binary
        );
    }
    WorkerFrame::WorkerHello {
        name: config.worker_name.clone(),
        capabilities,
        secret: config.worker_secret.clone(),
        perry_version,
        max_concurrent: config.max_concurrent,
    }
}

/// Runs the update and builds the `update_result` frame; also returns the version that
/// `perry --version` reports afterwards (for the next hello).
pub(crate) async fn update_perry(
    config: &Config,
    runner: &dyn Runner,
) -> (WorkerFrame, Option<String>) {
    let old_version = perry_version(config, runner).await;
    run_update(config, runner, old_version).await
}

async fn run_update(
    config: &Config,
    runner: &dyn Runner,
    old_version: Option<String>,
) -> (WorkerFrame, Option<String>) {
    let fail = |old: Option<String>, error: String| {
        let frame = WorkerFrame::UpdateResult {
            success: false,
            new_version: old.clone(),
            old_version: old.clone(),
            error: Some(error),
        };
        (frame, old)
    };
    if config.docker.enabled {
        return fail(
            old_version,
            "perry runs inside the toolchain image; rebuild the image to update it".into(),
        );
    }
    let run = Command::new(&config.perry_binary)
        .arg("update")
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(UPDATE_TIMEOUT, run).await {
        Err(_) => fail(
            old_version,
            format!(
                "`perry update` did not finish in {} s",
                UPDATE_TIMEOUT.as_secs()
            ),
        ),
        Ok(Err(e)) => fail(
            old_version,
            format!("cannot run {}: {e}", config.perry_binary),
        ),
        Ok(Ok(out)) if !out.status.success() => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr
                .lines()
                .last()
                .unwrap_or("")
                .chars()
                .take(300)
                .collect::<String>();
            fail(
                old_version,
                format!("`perry update` failed ({}): {last}", out.status),
            )
        }
        Ok(Ok(_)) => {
            let new_version = perry_version(config, runner).await;
            let frame = WorkerFrame::UpdateResult {
                success: true,
                old_version,
                new_version: new_version.clone(),
                error: None,
            };
            (frame, new_version)
        }
    }
}
