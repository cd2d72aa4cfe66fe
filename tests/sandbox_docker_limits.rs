//! What a container leaves behind is bounded against the real engine: copy-out stops while
//! streaming at the byte and entry limits (a 3 GiB sparse file is refused at its header,
//! nothing is spooled), and `PERRY_DOCKER_DISK` caps every file a step writes.

use perry_ship_windows::config::Config;
use perry_ship_windows::sandbox::docker::DockerRunner;
use perry_ship_windows::sandbox::{Runner, StepInput};
use perry_test_support::docker::require_toolchain;
use perry_test_support::docker::{containers_with, step};
use perry_test_support::sandbox_support::{step_context, unique_job_id};
use std::time::{Duration, Instant};

fn limited_runner(image: &str, extra: &[(&str, &str)]) -> DockerRunner {
    let worker = unique_job_id("limits-worker");
    let mut pairs = vec![
        ("PERRY_WORKER_NAME", worker.as_str()),
        ("PERRY_DOCKER_IMAGE", image),
        ("PERRY_DOCKER_MEMORY", "512m"),
    ];
    pairs.extend_from_slice(extra);
    DockerRunner::new(&Config::for_tests(&pairs)).unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

#[tokio::test]
async fn copy_out_stops_at_the_limits_while_streaming() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let runner = limited_runner(
        &image,
        &[
            ("PERRY_MAX_UNPACKED_SIZE", "16m"),
            ("PERRY_MAX_TARBALL_ENTRIES", "500"),
        ],
    );
    for (script, expect) in [
        ("mkdir out && truncate -s 3G out/sparse.bin", "larger than"),
        (
            "mkdir out && i=0; while [ $i -lt 2000 ]; do : > out/f$i; i=$((i+1)); done",
            "more than 500 entries",
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let out_dir = root.path().join("job/out");
        std::fs::create_dir_all(&out_dir).unwrap();
        let job = unique_job_id("copyout-limit");
        let (ctx, _sink) = step_context(&job, &out_dir);
        let mut s = step(&image, &["sh", "-c", script]);
        s.outputs = vec!["out".into()];
        let started = Instant::now();
        let err = runner.run(&s, &ctx).await.unwrap_err().to_string();
        assert!(err.contains(expect), "{script}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "refused while streaming, not after reading 3 GiB: {:?}",
            started.elapsed()
        );
        let written: u64 = files_under(root.path())
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(written <= 16 << 20, "{written} bytes written on the host");
        assert!(containers_with(&docker, "perry-ship.job", &job)
            .await
            .is_empty());
    }
}

#[tokio::test]
async fn docker_disk_caps_every_file_a_step_writes_and_normal_steps_still_work() {
    let Some((_docker, image)) = require_toolchain().await else {
        return;
    };
    let runner = limited_runner(&image, &[("PERRY_DOCKER_DISK", "16m")]);
    let root = tempfile::tempdir().unwrap();
    let out_dir = root.path().join("out");
    let (ctx, sink) = step_context(&unique_job_id("disk-limit"), &out_dir);
    for script in [
        "dd if=/dev/zero of=/work/fill bs=1M count=64 2>&1",
        "truncate -s 3G /work/sparse 2>&1",
    ] {
        let outcome = runner
            .run(&step(&image, &["sh", "-c", script]), &ctx)
            .await
            .unwrap();
        assert_ne!(outcome.exit_code, 0, "{script}: {:?}", sink.lines());
    }
    assert!(
        sink.lines()
            .iter()
            .any(|l| l.contains("File size limit exceeded") || l.contains("File too large")),
        "{:?}",
        sink.lines()
    );

    let input = root.path().join("in.txt");
    std::fs::write(&input, "hello through a limited work dir\n").unwrap();
    let mut copy = step(
        &image,
        &["sh", "-c", "mkdir -p res && cp in.txt res/out.txt"],
    );
    copy.inputs = vec![StepInput {
        host_path: input,
        dest: "in.txt".into(),
    }];
    copy.outputs = vec!["res".into()];
    let outcome = runner.run(&copy, &ctx).await.unwrap();
    assert_eq!(outcome.exit_code, 0, "{:?}", sink.lines());
    assert_eq!(
        std::fs::read_to_string(out_dir.join("res/out.txt")).unwrap(),
        "hello through a limited work dir\n"
    );
}
