//! DockerRunner against the real engine and the toolchain image: network isolation,
//! hardening as the engine reports it (and removal of the container and its volume),
//! environment, line streaming, the stand-in compiler, and clear errors for a missing
//! image. Cleanup on the failure paths is in sandbox_docker_cleanup.rs.
//!
//! Needs scripts/setup-host.sh; fails under CI=true without the engine or image.

use perry_ship_windows::events::{JobEvent, LogStream};
use perry_ship_windows::sandbox::{Runner, Step, StepError, StepInput};
use perry_test_support::docker::require_toolchain;
use perry_test_support::docker::{
    containers_with, runner, step, wait_for_container, wait_for_line,
};
use perry_test_support::sandbox_support::{step_context, unique_job_id};
use std::time::Instant;

#[tokio::test]
async fn only_loopback_and_no_route_to_a_host_port() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    // A port on the docker bridge gateway: reachable from the host, and from any container
    // that had a network.
    let bridge = docker.inspect_network("bridge", None).await.unwrap();
    let ipam = bridge
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().next())
        .expect("bridge IPAM");
    // Older engines report only the subnet; the gateway is its first address then.
    let gateway = ipam.gateway.unwrap_or_else(|| {
        let subnet = ipam.subnet.expect("bridge subnet");
        let base: std::net::Ipv4Addr = subnet.split('/').next().unwrap().parse().unwrap();
        std::net::Ipv4Addr::from(u32::from(base) + 1).to_string()
    });
    let listener = std::net::TcpListener::bind((gateway.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::net::TcpStream::connect((gateway.as_str(), port)).expect("the port answers on the host");

    let root = tempfile::tempdir().unwrap();
    let (ctx, sink) = step_context(&unique_job_id("net"), &root.path().join("out"));
    let script = format!(
        "echo ifaces: $(ls /sys/class/net); \
         if timeout 5 bash -c 'exec 3<>/dev/tcp/{gateway}/{port}' 2>/dev/null; then echo CONNECTED; else echo NO-CONNECT; fi"
    );
    let s = step(&image, &["bash", "-c", &script]);
    let outcome = runner(&image).run(&s, &ctx).await.unwrap();
    assert_eq!(outcome.exit_code, 0);
    let lines = sink.lines();
    assert!(lines.contains(&"ifaces: lo".to_string()), "{lines:?}");
    assert!(lines.contains(&"NO-CONNECT".to_string()), "{lines:?}");
}

#[tokio::test]
async fn hardening_is_visible_in_inspect_and_the_volume_is_removed() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let job = unique_job_id("harden");
    let (ctx, sink) = step_context(&job, &root.path().join("out"));
    let s = step(
        &image,
        &[
            "sh",
            "-c",
            "id -u; touch /should-fail 2>/dev/null || echo rootfs-read-only; echo ready; sleep 3",
        ],
    );
    let r = runner(&image);
    let run = tokio::spawn({
        let r = r.clone();
        async move { r.run(&s, &ctx).await }
    });
    let id = wait_for_container(&docker, &job).await;
    wait_for_line(&sink, "ready").await;
    let inspected = docker.inspect_container(&id, None).await.unwrap();
    let hc = inspected.host_config.clone().unwrap();
    assert_eq!(hc.network_mode.as_deref(), Some("none"));
    assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
    assert_eq!(hc.security_opt, Some(vec!["no-new-privileges".to_string()]));
    assert_eq!(hc.pids_limit, Some(256));
    assert_eq!(hc.memory, Some(768 << 20));
    assert_eq!(hc.nano_cpus, Some(1_500_000_000));
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_ne!(hc.auto_remove, Some(true));
    let labels = inspected.config.clone().unwrap().labels.unwrap();
    assert_eq!(labels["perry-ship.job"], job);
    assert_eq!(labels["perry-ship.worker"], r.worker_name());
    assert_eq!(labels["perry-ship.step"], "test");
    let name = inspected.name.clone().unwrap();
    assert!(
        name.starts_with(&format!("/perry-{job}-a1-test-")),
        "{name}"
    );
    let volume = inspected
        .mounts
        .unwrap()
        .into_iter()
        .find(|m| m.destination.as_deref() == Some("/work"))
        .and_then(|m| m.name)
        .expect("anonymous volume at /work");

    assert_eq!(run.await.unwrap().unwrap().exit_code, 0);
    let lines = sink.lines();
    assert_eq!(lines[0], "1000", "runs as the image's non-root user");
    assert!(lines.contains(&"rootfs-read-only".to_string()));
    assert!(containers_with(&docker, "perry-ship.job", &job)
        .await
        .is_empty());
    assert!(
        docker.inspect_volume(&volume).await.is_err(),
        "volume {volume} left behind"
    );
    assert_eq!(r.created_containers(), vec![id]);
    assert_eq!(
        r.audit()[0]
            .inspect
            .host_config
            .as_ref()
            .unwrap()
            .readonly_rootfs,
        Some(true)
    );
}

#[tokio::test]
async fn step_env_shows_up_and_nothing_unexpected() {
    let Some((_docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (ctx, sink) = step_context(&unique_job_id("env"), &root.path().join("out"));
    let mut s = step(&image, &["env"]);
    s.env = vec![("PERRY_STEP_VAR".into(), "visible value".into())];
    assert_eq!(runner(&image).run(&s, &ctx).await.unwrap().exit_code, 0);
    let lines = sink.lines();
    assert!(
        lines.contains(&"PERRY_STEP_VAR=visible value".to_string()),
        "{lines:?}"
    );
    for line in &lines {
        let key = line.split('=').next().unwrap();
        assert!(
            ["PATH", "HOSTNAME", "HOME", "LANG", "PERRY_STEP_VAR"].contains(&key),
            "unexpected: {line}"
        );
    }
}

#[tokio::test]
async fn a_hundred_thousand_lines_all_arrive_in_order_on_their_stream() {
    let Some((_docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (ctx, sink) = step_context(&unique_job_id("flood"), &root.path().join("out"));
    let s = step(&image, &["sh", "-c", "seq 1 100000; echo to-stderr >&2"]);
    let started = Instant::now();
    assert_eq!(runner(&image).run(&s, &ctx).await.unwrap().exit_code, 0);
    let stdout: Vec<String> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e {
            JobEvent::Log {
                stream: LogStream::Stdout,
                line,
                ..
            } => Some(line),
            _ => None,
        })
        .collect();
    assert_eq!(stdout.len(), 100_000);
    assert!(stdout
        .iter()
        .enumerate()
        .all(|(i, l)| *l == (i + 1).to_string()));
    assert!(sink.events().contains(&JobEvent::Log {
        stage: ctx.stage,
        stream: LogStream::Stderr,
        line: "to-stderr".into()
    }));
    eprintln!("100 000 lines streamed in {:?}", started.elapsed());
}

fn compile_step(image: &str, entry_source: &str, root: &std::path::Path) -> Step {
    let project = root.join("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("src/main.ts"), entry_source).unwrap();
    let mut s = step(
        image,
        &[
            "perry",
            "compile",
            "src/main.ts",
            "-o",
            "dist/app.exe",
            "--target",
            "windows",
            "--features",
            "a,b",
        ],
    );
    s.name = "compile".into();
    s.inputs = vec![StepInput {
        host_path: project,
        dest: "project".into(),
    }];
    s.cwd = "project".into();
    s.outputs = vec!["project/dist/".into()];
    s
}

#[tokio::test]
async fn standin_compiler_builds_a_pe_with_its_dll() {
    let Some((docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let job = unique_job_id("standin");
    let out = root.path().join("out");
    let (ctx, sink) = step_context(&job, &out);
    let s = compile_step(
        &image,
        "console.log('hello')\n// perry-standin: flood 5\n",
        root.path(),
    );
    let outcome = runner(&image).run(&s, &ctx).await.unwrap();
    assert_eq!(outcome.exit_code, 0, "{:?}", sink.lines());
    let exe = std::fs::read(out.join("project/dist/app.exe")).unwrap();
    assert_eq!(&exe[..2], b"MZ");
    let pe_offset = u32::from_le_bytes(exe[0x3c..0x40].try_into().unwrap()) as usize;
    assert_eq!(&exe[pe_offset..pe_offset + 4], b"PE\0\0");
    assert!(
        exe.windows(17).any(|w| w == b"perry_runtime.dll"),
        "exe does not import perry_runtime.dll"
    );
    let dll = std::fs::read(out.join("project/dist/perry_runtime.dll")).unwrap();
    assert_eq!(&dll[..2], b"MZ");
    let lines = sink.lines();
    assert!(lines.iter().any(|l| l.contains("stand-in")), "{lines:?}");
    assert!(lines.contains(&"flood line 5".to_string()));
    assert!(lines.contains(&"features: a,b".to_string()));
    assert!(containers_with(&docker, "perry-ship.job", &job)
        .await
        .is_empty());
}

#[tokio::test]
async fn standin_fail_marker_exits_one_with_an_error_on_stderr() {
    let Some((_docker, image)) = require_toolchain().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let (ctx, sink) = step_context(&unique_job_id("standin-fail"), &out);
    let s = compile_step(&image, "// perry-standin: fail\n", root.path());
    assert_eq!(runner(&image).run(&s, &ctx).await.unwrap().exit_code, 1);
    let stderr: Vec<String> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e {
            JobEvent::Log {
                stream: LogStream::Stderr,
                line,
                ..
            } => Some(line),
            _ => None,
        })
        .collect();
    assert!(stderr.iter().any(|l| l.starts_with("error:")), "{stderr:?}");
    assert!(!out.join("project/dist").exists());
}

#[tokio::test]
async fn a_missing_image_is_a_clear_error_and_check_reports_the_engine() {
    let Some((_docker, image)) = require_toolchain().await else {
        return;
    };
    let r = runner(&image);
    let info = r.check(&image).await.unwrap();
    assert!(!info.api_version.is_empty());
    assert_eq!(info.os, "linux");
    assert_eq!(info.image_user, "builder");

    let missing = "perry-ship-windows/no-such-image:never";
    let err = r.check(missing).await.unwrap_err().to_string();
    assert!(
        err.contains(missing) && err.contains("build-images.sh"),
        "{err}"
    );

    let root = tempfile::tempdir().unwrap();
    let (ctx, _sink) = step_context(&unique_job_id("noimage"), &root.path().join("out"));
    let err = r.run(&step(missing, &["true"]), &ctx).await.unwrap_err();
    assert!(matches!(err, StepError::Infrastructure(_)));
    let text = err.to_string();
    assert!(
        text.contains(missing) && text.contains("docker.sock"),
        "{text}"
    );
}
