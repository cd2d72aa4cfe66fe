//! The one gate for tests that need a prerequisite (Docker, the toolchain image, host
//! tools, root): under `CI=true` (or `CI=1`) a missing prerequisite fails the test;
//! elsewhere the test prints a loud SKIP line and returns early.

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
