//! The one gate for tests and benchmarks that need a prerequisite (Docker, the toolchain
//! image, host tools, wine, root): under `CI=true` (or `CI=1`) a missing prerequisite fails
//! the test; elsewhere the test prints a loud SKIP line and returns early.

use std::process::Command;

/// True when running in CI (`CI=true`/`1`): missing prerequisites are failures there.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Panics under CI, otherwise prints a SKIP note. Returns `None` for the caller to return.
pub fn skip_or_fail<T>(why: &str) -> Option<T> {
    if in_ci() {
        panic!("CI=true but {why} (run scripts/setup-host.sh)");
    }
    eprintln!("SKIP: {why} (run scripts/setup-host.sh; with CI=true this fails)");
    None
}

/// `present`, or (when it is false) the gate's verdict on `why`: a panic under CI, a SKIP
/// note and `false` elsewhere.
pub fn require(present: bool, why: &str) -> bool {
    present || skip_or_fail::<()>(why).is_some()
}

/// True when every host tool in `tools` runs (`--version` or `-version`); otherwise the
/// gate's verdict on the missing ones.
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            Command::new(t).arg("--version").output().is_err()
                && Command::new(t).arg("-version").output().is_err()
        })
        .collect();
    require(
        missing.is_empty(),
        &format!("required host tools are missing: {missing:?}"),
    )
}
