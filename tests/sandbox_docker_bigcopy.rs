//! A 100 MiB file through a container and back: byte-exact (sha256) and without the
//! worker's memory growing with the file size. Its own test binary, so no other test's
//! allocations disturb the peak-RSS reading.

use measure::{sha256_file, status_kib};
use perry_ship_windows::config::Config;
use perry_ship_windows::sandbox::docker::DockerRunner;
use perry_ship_windows::sandbox::{Runner, Step, StepInput};
use perry_test_support::docker::require_toolchain;
use perry_test_support::measure;
use perry_test_support::sandbox_support::{step_context, unique_job_id};
use std::io::Write;
use std::time::{Duration, Instant};

const SIZE: usize = 100 << 20;
/// Allowed growth of peak RSS while the file goes in and out (a buffered copy would need
/// at least the file size).
const MAX_RSS_GROWTH_KIB: u64 = 40 << 10;

#[tokio::test]
async fn hundred_mib_round_trip_is_byte_exact_with_flat_memory() {
    let Some((_docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("big.bin");
    {
        // Pseudo-random, incompressible-looking content written in 64 KiB pieces.
        let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut block = vec![0u8; 1 << 16];
        for _ in 0..SIZE / block.len() {
            for byte in block.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            file.write_all(&block).unwrap();
        }
        file.flush().unwrap();
    }
    let expected = sha256_file(&input);

    let worker = unique_job_id("bigcopy-worker");
    let config = Config::for_tests(&[
        ("PERRY_WORKER_NAME", worker.as_str()),
        ("PERRY_DOCKER_MEMORY", "512m"),
    ]);
    let runner = DockerRunner::new(&config).unwrap();
    let out_dir = root.path().join("out");
    let (ctx, sink) = step_context(&unique_job_id("bigcopy"), &out_dir);
    let step = Step {
        name: "copy".into(),
        image,
        argv: vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p result && cp in/big.bin result/big.bin && sha256sum result/big.bin".into(),
        ],
        env: vec![],
        inputs: vec![StepInput {
            host_path: input.clone(),
            dest: "in/big.bin".into(),
        }],
        outputs: vec!["result".into()],
        cwd: String::new(),
        timeout: Duration::from_secs(300),
    };

    let rss_before = status_kib("VmRSS");
    let peak_before = status_kib("VmHWM");
    let started = Instant::now();
    let outcome = runner.run(&step, &ctx).await.unwrap();
    let took = started.elapsed();
    let peak_after = status_kib("VmHWM");
    let rss_after = status_kib("VmRSS");
    assert_eq!(outcome.exit_code, 0, "{:?}", sink.lines());

    let inside = sink
        .lines()
        .into_iter()
        .find(|l| l.ends_with("result/big.bin"))
        .expect("sha256sum line");
    assert!(
        inside.starts_with(&expected),
        "copy-in changed the bytes: {inside} vs {expected}"
    );
    let copied = out_dir.join("result/big.bin");
    assert_eq!(std::fs::metadata(&copied).unwrap().len(), SIZE as u64);
    assert_eq!(sha256_file(&copied), expected, "copy-out changed the bytes");

    let growth = peak_after.saturating_sub(peak_before);
    eprintln!(
        "100 MiB in+out in {took:?}; VmRSS {rss_before} -> {rss_after} KiB, VmHWM {peak_before} -> {peak_after} KiB (+{growth} KiB)"
    );
    assert!(
        growth < MAX_RSS_GROWTH_KIB,
        "peak RSS grew by {growth} KiB while copying 100 MiB"
    );
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "big.bin" && n != "out")
        .collect();
    assert!(
        leftovers.is_empty(),
        "spool files left behind: {leftovers:?}"
    );
}
