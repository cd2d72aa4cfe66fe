//! HostRunner against real processes: line streaming, exit codes, environment, inputs and
//! outputs, timeout and cancel (grandchildren included) and step-dir cleanup.

use perry_test_support::{gate, sandbox_support};

use perry_ship_windows::events::{JobEvent, LogStream};
use perry_ship_windows::sandbox::host::HostRunner;
use perry_ship_windows::sandbox::{Runner, Step, StepError, StepInput};
use perry_test_support::sandbox_support::{step_context, unique_job_id};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn sh(name: &str, script: &str) -> Step {
    Step {
        name: name.into(),
        image: String::new(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![],
        inputs: vec![],
        outputs: vec![],
        cwd: String::new(),
        timeout: Duration::from_secs(60),
    }
}

/// Leftover step dirs next to the output dir (the runner creates them there).
fn leftover_step_dirs(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".perry-step-")
        })
        .collect()
}

fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie (state Z) is dead, just not reaped yet.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

async fn wait_dead(pid: u32, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if !pid_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !pid_alive(pid)
}

fn grandchild_pid(lines: &[String]) -> Option<u32> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("grandchild=")?.trim().parse().ok())
}

#[tokio::test]
async fn streams_stdout_and_stderr_lines_and_reports_exit_code() {
    let root = tempfile::tempdir().unwrap();
    let (ctx, sink) = step_context(&unique_job_id("host-lines"), &root.path().join("out"));
    let step = sh(
        "lines",
        "echo one; echo two >&2; printf 'crlf\\r\\nno-newline'; exit 3",
    );
    let outcome = HostRunner::new().run(&step, &ctx).await.unwrap();
    assert_eq!(outcome.exit_code, 3);
    let logs: Vec<(LogStream, String)> = sink
        .events()
        .into_iter()
        .filter_map(|e| match e {
            JobEvent::Log { stream, line, .. } => Some((stream, line)),
            _ => None,
        })
        .collect();
    assert!(logs.contains(&(LogStream::Stdout, "one".into())));
    assert!(logs.contains(&(LogStream::Stderr, "two".into())));
    assert!(logs.contains(&(LogStream::Stdout, "crlf".into())));
    assert!(logs.contains(&(LogStream::Stdout, "no-newline".into())));
    assert!(leftover_step_dirs(root.path()).is_empty());
}

#[tokio::test]
async fn streams_100k_lines_in_order() {
    let root = tempfile::tempdir().unwrap();
    let (ctx, sink) = step_context(&unique_job_id("host-flood"), &root.path().join("out"));
    let step = sh("flood", "seq 1 100000");
    assert_eq!(
        HostRunner::new().run(&step, &ctx).await.unwrap().exit_code,
        0
    );
    let lines = sink.lines();
    assert_eq!(lines.len(), 100_000);
    assert!(lines
        .iter()
        .enumerate()
        .all(|(i, l)| *l == (i + 1).to_string()));
}

#[tokio::test]
async fn environment_is_cleared_except_basics_and_step_env() {
    let root = tempfile::tempdir().unwrap();
    let (ctx, sink) = step_context(&unique_job_id("host-env"), &root.path().join("out"));
    let mut step = sh("env", "");
    step.argv = vec!["env".into()];
    step.env = vec![("PERRY_STEP_VAR".into(), "visible".into())];
    assert_eq!(
        HostRunner::new().run(&step, &ctx).await.unwrap().exit_code,
        0
    );
    let lines = sink.lines();
    assert!(
        lines.contains(&"PERRY_STEP_VAR=visible".to_string()),
        "{lines:?}"
    );
    let allowed = [
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "TMP",
        "TEMP",
        "PERRY_STEP_VAR",
    ];
    for line in &lines {
        let key = line.split('=').next().unwrap();
        assert!(
            allowed.contains(&key),
            "unexpected variable in step: {line}"
        );
    }
}

#[tokio::test]
async fn inputs_are_copied_in_and_outputs_copied_back() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("src");
    std::fs::create_dir_all(src.join("nested/deeper")).unwrap();
    std::fs::write(src.join("nested/deeper/data.txt"), "payload").unwrap();
    std::fs::write(root.path().join("single.txt"), "single").unwrap();
    let out_dir = root.path().join("out");
    let (ctx, sink) = step_context(&unique_job_id("host-io"), &out_dir);
    let mut step = sh(
        "io",
        "pwd; cat nested/deeper/data.txt extra/single.txt > ../result.txt; \
         mkdir -p ../dist/sub && echo built > ../dist/sub/app.txt",
    );
    step.inputs = vec![
        StepInput {
            host_path: src,
            dest: "project".into(),
        },
        StepInput {
            host_path: root.path().join("single.txt"),
            dest: "project/extra/single.txt".into(),
        },
    ];
    step.cwd = "project".into();
    step.outputs = vec!["result.txt".into(), "dist".into()];
    assert_eq!(
        HostRunner::new().run(&step, &ctx).await.unwrap().exit_code,
        0
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("result.txt")).unwrap(),
        "payloadsingle"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("dist/sub/app.txt")).unwrap(),
        "built\n"
    );
    let step_dir = PathBuf::from(sink.lines()[0].trim_end_matches("/project"));
    assert!(
        step_dir.starts_with(root.path()),
        "step dir {step_dir:?} not next to the output dir"
    );
    assert!(!step_dir.exists(), "step dir {step_dir:?} was not removed");
}

#[tokio::test]
async fn output_folders_exist_before_the_step_starts() {
    let root = tempfile::tempdir().unwrap();
    let out_dir = root.path().join("out");
    let (ctx, sink) = step_context(&unique_job_id("host-outdirs"), &out_dir);
    // The tool creates no folder: it writes into the ones the runner made.
    let step = Step {
        outputs: vec!["bin/".into(), "dist/pkg/app.txt".into()],
        ..sh("outdirs", "test -d bin && echo built > dist/pkg/app.txt")
    };
    assert_eq!(
        HostRunner::new().run(&step, &ctx).await.unwrap().exit_code,
        0,
        "{:?}",
        sink.lines()
    );
    assert!(
        out_dir.join("bin").is_dir(),
        "an empty folder output comes back"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("dist/pkg/app.txt")).unwrap(),
        "built\n"
    );
}

#[tokio::test]
async fn missing_output_and_hostile_paths_are_errors() {
    let root = tempfile::tempdir().unwrap();
    let (ctx, _sink) = step_context(&unique_job_id("host-bad"), &root.path().join("out"));
    let mut step = sh("missing", "true");
    step.outputs = vec!["never-written.exe".into()];
    let err = HostRunner::new().run(&step, &ctx).await.unwrap_err();
    assert!(matches!(err, StepError::Infrastructure(_)), "{err}");
    assert!(err.to_string().contains("never-written.exe"), "{err}");

    for bad in ["../escape", "/etc/passwd"] {
        let mut step = sh("hostile", "true");
        step.outputs = vec![bad.into()];
        assert!(
            HostRunner::new().run(&step, &ctx).await.is_err(),
            "output {bad} accepted"
        );
        let mut step = sh("hostile", "true");
        step.inputs = vec![StepInput {
            host_path: root.path().into(),
            dest: bad.into(),
        }];
        assert!(
            HostRunner::new().run(&step, &ctx).await.is_err(),
            "input dest {bad} accepted"
        );
    }
    assert!(leftover_step_dirs(root.path()).is_empty());
}

#[tokio::test]
async fn a_failing_tool_reports_its_exit_code_without_copying_outputs() {
    let root = tempfile::tempdir().unwrap();
    let out_dir = root.path().join("out");
    let (ctx, _sink) = step_context(&unique_job_id("host-fail"), &out_dir);
    let mut step = sh("fail", "echo partial > half.txt; exit 1");
    step.outputs = vec!["half.txt".into(), "never.txt".into()];
    assert_eq!(
        HostRunner::new().run(&step, &ctx).await.unwrap().exit_code,
        1
    );
    assert!(!out_dir.join("half.txt").exists());
    assert!(leftover_step_dirs(root.path()).is_empty());
}

#[tokio::test]
async fn timeout_kills_the_process_group() {
    let root = tempfile::tempdir().unwrap();
    let (ctx, sink) = step_context(&unique_job_id("host-timeout"), &root.path().join("out"));
    let mut step = sh("slow", "sleep 300 & echo grandchild=$!; wait");
    step.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = HostRunner::new().run(&step, &ctx).await.unwrap_err();
    assert!(matches!(err, StepError::TimedOut { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let pid = grandchild_pid(&sink.lines()).expect("grandchild pid printed");
    assert!(
        wait_dead(pid, Duration::from_secs(2)).await,
        "grandchild {pid} survived the timeout"
    );
    assert!(leftover_step_dirs(root.path()).is_empty());
}

#[tokio::test]
async fn cancel_kills_grandchildren_within_two_seconds() {
    let root = tempfile::tempdir().unwrap();
    let (ctx, sink) = step_context(&unique_job_id("host-cancel"), &root.path().join("out"));
    let step = sh(
        "cancel",
        "sh -c 'sleep 300 & echo grandchild=$!; wait' & wait",
    );
    let cancel = ctx.cancel.clone();
    let watcher_sink = sink.clone();
    tokio::spawn(async move {
        while grandchild_pid(&watcher_sink.lines()).is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
    });
    let err = HostRunner::new().run(&step, &ctx).await.unwrap_err();
    let cancelled_at = Instant::now();
    assert!(matches!(err, StepError::Cancelled { .. }), "{err}");
    let pid = grandchild_pid(&sink.lines()).unwrap();
    assert!(
        wait_dead(pid, Duration::from_secs(2)).await,
        "grandchild {pid} survived cancel"
    );
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    assert!(leftover_step_dirs(root.path()).is_empty());
}

#[tokio::test]
async fn grandchildren_left_running_after_exit_are_killed() {
    let root = tempfile::tempdir().unwrap();
    let (ctx, sink) = step_context(&unique_job_id("host-daemon"), &root.path().join("out"));
    // The shell exits at once but its background child keeps stdout open.
    let step = sh("daemon", "sleep 300 & echo grandchild=$!");
    let started = Instant::now();
    assert_eq!(
        HostRunner::new().run(&step, &ctx).await.unwrap().exit_code,
        0
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = grandchild_pid(&sink.lines()).unwrap();
    assert!(
        wait_dead(pid, Duration::from_secs(2)).await,
        "background child {pid} survived"
    );
}

#[tokio::test]
async fn standin_compiler_builds_a_pe_in_host_mode() {
    if !sandbox_support::have_mingw() {
        let _: Option<()> = gate::skip_or_fail("x86_64-w64-mingw32-gcc is not installed");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("main.ts"), "console.log('hi')\n").unwrap();
    let out_dir = root.path().join("out");
    let (ctx, sink) = step_context(&unique_job_id("host-standin"), &out_dir);
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/linux/standin/perry");
    let mut step = sh("compile", "");
    step.argv = vec![
        standin.to_string_lossy().into(),
        "compile".into(),
        "main.ts".into(),
        "-o".into(),
        "dist/app.exe".into(),
        "--target".into(),
        "windows".into(),
    ];
    step.inputs = vec![StepInput {
        host_path: project,
        dest: "".into(),
    }];
    // A folder output: the runner creates it (the stand-in, like perry, does not).
    step.outputs = vec!["dist/".into()];
    assert_eq!(
        HostRunner::new().run(&step, &ctx).await.unwrap().exit_code,
        0,
        "{:?}",
        sink.lines()
    );
    let exe = std::fs::read(out_dir.join("dist/app.exe")).unwrap();
    assert_eq!(&exe[..2], b"MZ");
    assert!(out_dir.join("dist/perry_runtime.dll").is_file());
    assert!(sink.lines().iter().any(|l| l.contains("stand-in")));
}
