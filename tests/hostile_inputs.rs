//! Hostile project inputs through the real binary (`perry-ship-windows build`, host
//! processes): each build fails cleanly with a message naming the problem, and what the
//! project controls never reaches the terminal raw.

#![cfg(unix)]

use perry_test_support::example_project;
use perry_test_support::gate;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perry-ship-windows"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn mingw_present() -> bool {
    let ok = Command::new("x86_64-w64-mingw32-gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    gate::require(ok, "mingw is missing")
}

/// `build <project> --no-docker -v` with `perry` as the compiler and a private work dir.
fn build(project: &Path, perry: &Path, work: &Path, extra: &[&str]) -> Output {
    bin()
        .args(["build", "--no-docker", "--verbose", "--out"])
        .arg(work.join("out"))
        .args(extra)
        .arg(project)
        .env("PERRY_BUILD_PERRY_BINARY", perry)
        .env("PERRY_WORK_DIR", work.join("work"))
        .env("PERRY_MIN_FREE_DISK", "1m")
        .output()
        .unwrap()
}

fn control_chars(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c.is_control() && c != '\t' && c != '\n')
        .collect()
}

/// A compiler whose output tries to set the terminal title, clear the screen and overwrite
/// a line with CR to fake a signing message.
fn hostile_compiler(dir: &Path) -> PathBuf {
    let path = dir.join("perry");
    std::fs::write(
        &path,
        "#!/bin/sh\n\
         if [ \"$1\" = --version ]; then echo 0.0.1; exit 0; fi\n\
         printf 'warming up\\033]0;owned title\\007\\033[2J\\033[H\\n'\n\
         printf 'error: broken\\r[signing] Signed with PFX (verified)\\n' >&2\n\
         exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn compiler_output_reaches_the_terminal_without_control_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("p");
    example_project::copy_dir(&example_project::example_dir(), &project);
    let out = build(&project, &hostile_compiler(tmp.path()), tmp.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("COMPILE_FAILED"), "{stderr}");
    assert!(
        stderr.contains("error: broken[signing] Signed with PFX (verified)"),
        "the CR is gone, so the fake message cannot hide the real one: {stderr}"
    );
    assert!(stderr.contains("owned title"), "{stderr}");
    assert_eq!(control_chars(&stderr), Vec::<char>::new(), "{stderr:?}");
    assert_eq!(
        control_chars(&String::from_utf8_lossy(&out.stdout)),
        Vec::<char>::new()
    );
}

#[test]
fn windows_device_names_in_assets_fail_the_build_naming_the_file() {
    if !mingw_present() {
        return;
    }
    let standin = repo().join("images/linux/standin/perry");
    for (name, mode) in [
        ("CON", "portable"),
        ("nul.txt", "installer"),
        ("COM1.png", "msix"),
        ("aux", "portable"),
        ("trailing.", "portable"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("p");
        example_project::copy_dir(&example_project::example_dir(), &project);
        std::fs::write(project.join("assets").join(name), "x").unwrap();
        let out = build(&project, &standin, tmp.path(), &["--distribute", mode]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {stderr}");
        assert!(stderr.contains("PACKAGE_FAILED"), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("assets/{name}")),
            "the error names the file: {stderr}"
        );
        assert!(
            std::fs::read_dir(tmp.path().join("out")).map_or(true, |mut d| d.next().is_none()),
            "no artifact for {name}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn the_worker_process_runs_with_core_dumps_off() {
    let work = tempfile::tempdir().unwrap();
    let mut child = bin()
        .arg("run")
        .env("PERRY_HUB_URL", "ws://127.0.0.1:9/ws")
        .env("PERRY_WORK_DIR", work.path())
        .env("PERRY_MIN_FREE_DISK", "1m")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let limits_path = format!("/proc/{}/limits", child.id());
    let mut core_line = String::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let limits = std::fs::read_to_string(&limits_path).unwrap_or_default();
        core_line = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap_or_default()
            .to_string();
        if core_line.split_whitespace().nth(4) == Some("0") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let fields: Vec<&str> = core_line.split_whitespace().collect();
    assert_eq!(
        fields.get(4..6),
        Some(&["0", "0"][..]),
        "soft and hard core limits: {core_line:?}"
    );
}

/// A tarball of the example project whose `assets/` fan out.
fn fan_out_tarball(path: &Path) {
    let staging = path.parent().unwrap().join("fan-out-project");
    example_project::copy_dir(&example_project::example_dir(), &staging);
    perry_test_support::hostile_projects::fan_out_assets(&staging);
    std::fs::write(path, example_project::tarball_of(&staging)).unwrap();
}

#[test]
fn asset_links_that_fan_out_fail_the_build_within_seconds() {
    if !mingw_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tarball = tmp.path().join("project.tar.gz");
    fan_out_tarball(&tarball);
    let started = std::time::Instant::now();
    let out = build(
        &tarball,
        &repo().join("images/linux/standin/perry"),
        tmp.path(),
        &["--distribute", "portable"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("PACKAGE_FAILED (bundling)"), "{stderr}");
    assert!(stderr.contains("already copied"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("work")).unwrap().count(),
        0,
        "the job folder is gone"
    );
}

#[test]
fn an_asset_link_out_of_the_project_fails_the_build_naming_it() {
    if !mingw_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("p");
    example_project::copy_dir(&example_project::example_dir(), &project);
    std::fs::write(tmp.path().join("secret.txt"), "other job's file").unwrap();
    std::os::unix::fs::symlink(
        tmp.path().join("secret.txt"),
        project.join("assets/leak.txt"),
    )
    .unwrap();
    let out = build(
        &project,
        &repo().join("images/linux/standin/perry"),
        tmp.path(),
        &["--distribute", "portable"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("leak.txt") && stderr.contains("outside the project"),
        "{stderr}"
    );
}
