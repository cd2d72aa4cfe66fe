//! Worker benchmarks (issue 6, figures 2 to 5), all measured in one run on this machine:
//!
//! - `whole_job`: a full examples/hello installer job through the worker (real pipeline,
//!   Docker steps, PFX signing, upload to the test hub) against the same tool invocations run
//!   directly (`docker run` compile and makensis, `osslsigncode sign`), interleaved.
//! - `memory`: peak RSS growth for jobs whose artifact is 1 MiB, 100 MiB and 1 GiB
//!   (copy-out from a container, PFX signing, base64 upload).
//! - `concurrency`: 8 CPU-bound jobs with 1 slot vs 2 slots.
//! - `flood`: the stand-in compiler printing 1 000 000 lines.
//!
//! Each section prints readable lines; all figures go to
//! `$CARGO_TARGET_DIR/bench/worker.json` (default `target/bench/worker.json`) as
//! `{"name":"worker","results":[{"metric","value","unit","target","met"}],"notes":[…]}`.
//!
//! Run: `cargo bench --bench worker` (needs the Docker engine, the toolchain image,
//! openssl, osslsigncode and x86_64-w64-mingw32-gcc: scripts/setup-host.sh). Without them
//! it prints SKIP and exits 0, unless `CI=true`, where it fails.
//! `BENCH_WORKER_SECTIONS=whole_job,memory,…` runs a subset; `BENCH_WORKER_MAX_MIB` sets the
//! largest artifact (default 1024); `BENCH_WORKER_RUNS` the whole-job runs per side (5).
// Linux-host benchmark (Docker engine, /proc, rusage): empty on other targets, so that
// `cargo clippy --all-targets --target x86_64-pc-windows-gnu` checks the rest.
#![cfg_attr(not(unix), no_main)]
#![cfg(unix)]

mod concurrency;
mod flood;
mod memory;
mod support;
mod whole_job;

use perry_test_support::bench_report::Report;
use perry_test_support::sign_fixtures as fixtures;

const REQUIRED_TOOLS: &[&str] = &["openssl", "osslsigncode", "x86_64-w64-mingw32-gcc"];

fn section_enabled(name: &str) -> bool {
    match std::env::var("BENCH_WORKER_SECTIONS") {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|s| s.trim() == name),
        _ => true,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Prints SKIP (or panics under CI=true) when a tool is missing.
    if !fixtures::require_tools(REQUIRED_TOOLS) {
        return;
    }
    let Some(env) = support::BenchEnv::prepare().await else {
        return;
    };
    let mut report = Report::new("worker");
    report.note(
        "the test hub, the local TSA and the worker share the bench process: RSS figures include \
         the hub's share (an upper bound for the worker alone)",
    );
    report.note(format!(
        "machine: {} CPUs, load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));

    if section_enabled("whole_job") {
        whole_job::run(&env, &mut report).await;
    }
    if section_enabled("memory") {
        memory::run(&env, &mut report).await;
    }
    if section_enabled("concurrency") {
        concurrency::run(&env, &mut report).await;
    }
    if section_enabled("flood") {
        flood::run(&env, &mut report).await;
    }
    report.write();
}
