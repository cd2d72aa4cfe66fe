//! `update_perry`: update the perry compiler on the host and say how it went.
//!
//! The compiler is updated with `<PERRY_BUILD_PERRY_BINARY> update` and its version read
//! with `--version` before and after. When Docker is on, perry lives in the toolchain image
//! and cannot be updated from here: the answer says so instead of pretending.

use super::protocol::WorkerFrame;
use crate::config::Config;
use std::time::Duration;
use tokio::process::Command;

const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(600);

/// `perry --version` with a leading `perry ` stripped; `None` when perry cannot be run.
pub async fn perry_version(binary: &str) -> Option<String> {
    let output = tokio::time::timeout(
        VERSION_TIMEOUT,
        Command::new(binary)
            .arg("--version")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next()?.trim();
    let version = line.strip_prefix("perry ").unwrap_or(line).trim();
    (!version.is_empty() && version.len() <= 64).then(|| version.to_string())
}

/// Runs the update and builds the `update_result` frame.
pub async fn update_perry(config: &Config) -> WorkerFrame {
    let old_version = perry_version(&config.perry_binary).await;
    let fail = |old: Option<String>, error: String| WorkerFrame::UpdateResult {
        success: false,
        new_version: old.clone(),
        old_version: old,
        error: Some(error),
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
        Ok(Ok(_)) => WorkerFrame::UpdateResult {
            success: true,
            old_version,
            new_version: perry_version(&config.perry_binary).await,
            error: None,
        },
    }
}
