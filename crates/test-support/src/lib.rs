//! perry-test-support: everything the worker's integration tests and benchmarks share, kept
//! out of the product (a dev-only crate of the workspace, never published).
//!
//! - [`gate`]: the one skip-or-fail gate for missing prerequisites (`CI=true` fails, elsewhere
//!   a loud SKIP), and [`gate::require_tools`] for host tools.
//! - [`docker`]: the engine and toolchain image as prerequisites, a small `DockerRunner`,
//!   steps, and polling for containers and log lines.
//! - [`testhub`]: an in-process Perry Hub (WebSocket + HTTP) that records what a worker sends.
//! - [`worker`]: the one worker starter ([`worker::WorkerBuilder`]): a worker in this process,
//!   connected to a test hub, with the pipeline and runner a test picks.
//! - [`hub_support`]: the stand-in pipeline and runners of the hub tests, project tarballs and
//!   frame assertions; [`fleet_support`]: the worker binary as a child process.
//! - [`e2e`]: a Docker-backed worker running the real pipeline, and protocol assertions.
//! - [`example_project`]: `examples/hello` as a manifest and a tarball;
//!   [`hostile_projects`]: hostile changes to a copy of it (link fan-out, an icon bomb).
//! - [`sign_fixtures`], [`sign_servers`]: a throwaway PKI, PE inputs, and local TSA / cloud
//!   signing stand-ins.
//! - [`sandbox_support`], [`job_support`], [`package_support`]: fixtures of those test groups.
//! - [`wine`], [`wine_setup`]: the Windows build of the worker under wine.
//! - [`verify_support`]: the binary's `build` and `verify` as the reproducibility tests run them.
//! - [`measure`], [`bench_report`]: hashes and memory figures, and the benchmarks' JSON report.

pub mod bench_report;
pub mod docker;
pub mod e2e;
pub mod example_project;
#[cfg(unix)]
pub mod fleet_support;
pub mod gate;
pub mod hostile_projects;
pub mod hub_support;
pub mod job_support;
pub mod measure;
pub mod package_support;
pub mod sandbox_support;
pub mod sign_fixtures;
pub mod sign_servers;
pub mod testhub;
pub mod verify_support;
pub mod wine;
pub mod wine_setup;
pub mod worker;

use std::path::{Path, PathBuf};

/// The repository's root folder (this crate lives in `crates/test-support`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-support sits two levels below the repository root")
        .to_path_buf()
}

/// The cargo target folder: `CARGO_TARGET_DIR`, or `target/` at the repository root.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The worker binary cargo built for this test binary: `target/<profile>/perry-ship-windows`,
/// next to the `deps/` folder the test runs from (what `CARGO_BIN_EXE_…` names, which only
/// the main crate's own test targets can read).
pub fn worker_binary() -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test binary's path");
    let bin = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries run from target/<profile>/deps")
        .join(format!(
            "perry-ship-windows{}",
            std::env::consts::EXE_SUFFIX
        ));
    assert!(
        bin.is_file(),
        "{} is missing (cargo builds it for the tests)",
        bin.display()
    );
    bin
}
