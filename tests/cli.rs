//! The binary as a user runs it: `--version`, a bad variable, a local `build` of the example
//! project with host processes (the stand-in compiler and makensis on the host), and
//! `doctor` in host mode.

use perry_test_support::gate;

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perry-ship-windows"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn host_tools_present() -> bool {
    let ok = ["makensis", "x86_64-w64-mingw32-gcc"].iter().all(|t| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .output()
            .is_ok_and(|o| o.status.success())
    });
    gate::require(ok, "makensis or mingw is missing")
}

#[test]
fn version_and_help_work() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("perry-ship-windows "));
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "build", "doctor"] {
        assert!(help.contains(cmd), "--help lacks {cmd}: {help}");
    }
}

#[test]
fn a_bad_variable_stops_the_worker_with_one_line_naming_it() {
    for (var, value) in [
        ("PERRY_DOCKER_TIMEOUT", "abc"),
        ("PERRY_HUB_URL", "http://x"),
        ("PERRY_MAX_CONCURRENT_BUILDS", "0"),
    ] {
        let out = bin().arg("run").env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(var), "{err}");
    }
}

#[test]
fn local_build_without_docker_writes_each_package_kind() {
    if !host_tools_present() {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let standin = repo().join("images/linux/standin/perry");
    for (mode, name) in [
        ("portable", "Hello Perry-1.2.0-portable.zip"),
        ("installer", "Hello Perry-1.2.0-Setup.exe"),
        ("msix", "Hello Perry-1.2.0.msix"),
    ] {
        let out = bin()
            .args([
                "build",
                "examples/hello",
                "--no-docker",
                "--distribute",
                mode,
                "--out",
            ])
            .arg(out_dir.path())
            .current_dir(repo())
            .env("PERRY_BUILD_PERRY_BINARY", &standin)
            .env("PERRY_WORK_DIR", work.path())
            .env("PERRY_MIN_FREE_DISK", "1m")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode}: {stderr}");
        let printed = String::from_utf8_lossy(&out.stdout);
        let artifact = out_dir.path().join(name);
        assert_eq!(
            printed.trim(),
            artifact.display().to_string(),
            "the artifact path is printed last"
        );
        assert!(
            std::fs::metadata(&artifact).unwrap().len() > 10_000,
            "{name} is too small"
        );
        assert!(
            stderr.contains("UNSIGNED"),
            "an unsigned build says so: {stderr}"
        );
    }
    // Work folders are removed after each build.
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "work dir left behind"
    );
}

#[test]
fn local_build_of_a_failing_project_exits_non_zero_with_the_code() {
    if !host_tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("perry.toml"),
        "[project]\nname = \"Broken\"\nversion = \"1.0\"\nentry = \"src/main.ts\"\n",
    )
    .unwrap();
    std::fs::write(project.join("src/main.ts"), "// perry-standin: fail\n").unwrap();
    let out = bin()
        .args(["build", "--no-docker", "--out"])
        .arg(dir.path().join("out"))
        .arg(&project)
        .env(
            "PERRY_BUILD_PERRY_BINARY",
            repo().join("images/linux/standin/perry"),
        )
        .env("PERRY_WORK_DIR", dir.path().join("work"))
        .env("PERRY_MIN_FREE_DISK", "1m")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("COMPILE_FAILED"), "{err}");
    assert!(out.stdout.is_empty(), "no artifact path on failure");
}

#[test]
fn a_compiler_that_exits_zero_without_an_exe_is_compile_failed() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("perry.toml"),
        "[project]\nname = \"Silent\"\nversion = \"1.0\"\nentry = \"src/main.ts\"\n",
    )
    .unwrap();
    std::fs::write(project.join("src/main.ts"), "console.log(1)\n").unwrap();
    let out = bin()
        .args(["build", "--no-docker", "--out"])
        .arg(dir.path().join("out"))
        .arg(&project)
        .env("PERRY_BUILD_PERRY_BINARY", "true")
        .env("PERRY_WORK_DIR", dir.path().join("work"))
        .env("PERRY_MIN_FREE_DISK", "1m")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("COMPILE_FAILED"), "{err}");
    assert!(
        err.contains("the compiler succeeded but wrote no Silent.exe"),
        "{err}"
    );
    assert!(!err.contains("INTERNAL_ERROR"), "{err}");
}

#[test]
fn doctor_reports_each_check_and_fails_when_perry_is_missing() {
    let out = bin()
        .arg("doctor")
        .env("PERRY_BUILD_PERRY_BINARY", "/nonexistent/perry")
        .env("PERRY_DOCKER_ENABLED", "false")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "doctor must fail without a compiler: {text}"
    );
    assert!(text.contains("✗ perry"), "{text}");
    assert!(
        text.contains("will not advertise `windows`"),
        "doctor says what a missing compiler costs: {text}"
    );
    assert!(text.contains("✓ configuration"), "{text}");
    assert!(text.contains("work dir"), "{text}");
    assert!(
        text.contains("✓ job processes: start under their limits (memory 2048 MiB, CPU 3600 s"),
        "{text}"
    );
}
