//! Helpers of the sandbox (runner) tests: a step context that collects events, unique job
//! ids, and small test PE files built with the host's mingw.

use perry_ship_windows::events::{CollectingSink, Stage};
use perry_ship_windows::sandbox::StepContext;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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
