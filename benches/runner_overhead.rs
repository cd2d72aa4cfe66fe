//! Per-step overhead of the DockerRunner against a bare `docker run`.
//!
//! Measures, in the same run and interleaved, the median wall time over ITERATIONS of
//!   - our DockerRunner running `true` (create + inspect/verify + copy-in of a small file +
//!     attach + start + wait + copy-out + remove with volume),
//!   - `docker run --rm --network=none IMAGE true` (the CLI, as the reference),
//!   - the same CLI run with our hardening flags (for information).
//!
//! It prints the ratio and the absolute overhead, and writes the numbers as JSON to
//! `$CARGO_TARGET_DIR/bench/runner_overhead.json` (or `target/bench/…`).
//!
//! Run: `cargo bench --bench runner_overhead` (needs scripts/setup-host.sh).

use perry_ship_windows::config::Config;
use perry_ship_windows::events::{NullSink, Stage};
use perry_ship_windows::sandbox::docker::DockerRunner;
use perry_ship_windows::sandbox::{Runner, Step, StepContext, StepInput};
use perry_test_support::gate;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const ITERATIONS: usize = 25;
const WARMUP: usize = 3;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn docker_cli(args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "docker {args:?} failed"
    );
    started.elapsed()
}

fn main() {
    let image = std::env::var("PERRY_DOCKER_IMAGE")
        .unwrap_or_else(|_| perry_ship_windows::config::default_image().to_string());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = Config::for_tests(&[
        ("PERRY_WORKER_NAME", "bench-runner-overhead"),
        ("PERRY_DOCKER_IMAGE", &image),
    ]);
    let runner = DockerRunner::new(&config).unwrap();
    if let Err(e) = runtime.block_on(runner.check(&image)) {
        let _: Option<()> = gate::skip_or_fail(&format!("runner_overhead: {e:#}"));
        return;
    }
    runtime
        .block_on(runner.reap_orphans("bench-runner-overhead"))
        .unwrap();

    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("in.txt"), b"hello\n").unwrap();
    let step = Step {
        name: "bench".into(),
        image: image.clone(),
        argv: vec!["true".into()],
        env: vec![],
        inputs: vec![StepInput {
            host_path: root.path().join("in.txt"),
            dest: "in.txt".into(),
        }],
        outputs: vec!["in.txt".into()],
        cwd: String::new(),
        timeout: Duration::from_secs(60),
    };
    let run_ours = |i: usize| -> Duration {
        let ctx = StepContext {
            job_id: format!("bench-{i}"),
            attempt: 1,
            stage: Stage::Compiling,
            events: Arc::new(NullSink),
            cancel: CancellationToken::new(),
            output_dir: root.path().join(format!("out-{i}")),
        };
        let started = Instant::now();
        let outcome = runtime
            .block_on(runner.run(&step, &ctx))
            .expect("runner step");
        let took = started.elapsed();
        assert_eq!(outcome.exit_code, 0);
        took
    };
    let bare = ["run", "--rm", "--network=none", image.as_str(), "true"];
    let hardened = [
        "run",
        "--rm",
        "--network=none",
        "--cap-drop=ALL",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        "1024",
        "--memory",
        "4g",
        "--cpus",
        "2",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-v",
        "/work",
        image.as_str(),
        "true",
    ];

    for i in 0..WARMUP {
        run_ours(1000 + i);
        docker_cli(&bare);
    }
    let (mut ours, mut cli, mut cli_hardened) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ITERATIONS {
        ours.push(run_ours(i));
        cli.push(docker_cli(&bare));
        cli_hardened.push(docker_cli(&hardened));
    }
    let (ours, cli, cli_hardened) = (median(ours), median(cli), median(cli_hardened));
    let ratio = ours.as_secs_f64() / cli.as_secs_f64();
    let overhead_ms = ms(ours) - ms(cli);
    println!(
        "runner_overhead: median of {ITERATIONS} (after {WARMUP} warm-up runs), image {image}"
    );
    println!(
        "  DockerRunner step `true` (copy-in + copy-out): {:>8.1} ms",
        ms(ours)
    );
    println!(
        "  docker run --rm --network=none IMAGE true:      {:>8.1} ms",
        ms(cli)
    );
    println!(
        "  docker run with the same hardening flags:       {:>8.1} ms",
        ms(cli_hardened)
    );
    println!("  ratio {ratio:.2}x, absolute overhead {overhead_ms:+.1} ms (target <= 1.10x and <= 150 ms)");

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let out = target_dir.join("bench");
    std::fs::create_dir_all(&out).unwrap();
    let json = serde_json::json!({
        "iterations": ITERATIONS,
        "image": image,
        "runner_median_ms": ms(ours),
        "docker_run_median_ms": ms(cli),
        "docker_run_hardened_median_ms": ms(cli_hardened),
        "ratio": ratio,
        "overhead_ms": overhead_ms,
    });
    std::fs::write(
        out.join("runner_overhead.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    println!(
        "  written to {}",
        out.join("runner_overhead.json").display()
    );
}
