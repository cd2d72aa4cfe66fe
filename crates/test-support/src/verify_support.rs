//! Running the binary as a user does for reproducibility and `verify` tests: local builds
//! with host processes (the stand-in compiler, makensis, mingw), `verify` with or without a
//! rebuild, and PFX credentials for signed builds.

pub use crate::example_project;
pub use crate::sign_fixtures as fixtures;

use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The three formats: `windows_distribute` value and the example's artifact name.
pub const MODES: [(&str, &str); 3] = [
    ("portable", "Hello Perry-1.2.0-portable.zip"),
    ("installer", "Hello Perry-1.2.0-Setup.exe"),
    ("msix", "Hello Perry-1.2.0.msix"),
];

pub fn bin() -> Command {
    Command::new(crate::worker_binary())
}

/// The host tools a local build of every format and its checks need (the gate decides).
pub fn tools_present() -> bool {
    fixtures::require_tools(&["makensis", "x86_64-w64-mingw32-gcc", "openssl", "7z"])
}

pub fn standin() -> PathBuf {
    crate::repo_root().join("images/linux/standin/perry")
}

/// One local build of `project`; returns the artifact path in `out`.
pub fn build(
    project: &Path,
    mode: &str,
    work: &Path,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> PathBuf {
    let mut cmd = bin();
    cmd.arg("build")
        .arg(project)
        .args(["--no-docker", "--distribute", mode, "--out"])
        .arg(out)
        .args(extra)
        .env("PERRY_BUILD_PERRY_BINARY", standin())
        .env("PERRY_WORK_DIR", work)
        .env("PERRY_MIN_FREE_DISK", "1m")
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{mode}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// `verify ARGS…` with host processes for any rebuild.
pub fn verify(args: &[&Path], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.arg("verify")
        .args(args)
        .env("PERRY_BUILD_PERRY_BINARY", standin())
        .env("PERRY_DOCKER_ENABLED", "false")
        .env("PERRY_MIN_FREE_DISK", "1m")
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

pub fn report(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `verify ARTIFACT --project PROJECT --manifest MANIFEST`: a rebuild and compare.
pub fn verify_rebuild(
    artifact: &Path,
    project: &Path,
    manifest: &Path,
    env: &[(&str, &str)],
) -> Output {
    let args = [
        artifact,
        Path::new("--project"),
        project,
        Path::new("--manifest"),
        manifest,
    ];
    verify(&args, env)
}

/// `verify` exited 0 and its report says `what`.
pub fn assert_verify_passes(out: &Output, what: &str) {
    let text = report(out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(what), "{text}");
}

/// `verify` exited 1 and its report says `why`.
pub fn assert_verify_fails(out: &Output, why: &str) {
    let text = report(out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(why), "{text}");
}

/// PFX credentials (no timestamp server) for a signed build, written to `dir`; the test PKI
/// (for osslsigncode) and the credentials file.
pub fn pfx_credentials(dir: &Path) -> (fixtures::Pki, PathBuf) {
    let pki = fixtures::Pki::create(&dir.join("pki"));
    let pfx = pki.pfx("repro", "rsa.key", "rsa.crt", "Repro-Passw0rd", &[]);
    let creds = serde_json::json!({
        "windows_pfx_base64": base64::engine::general_purpose::STANDARD.encode(pfx),
        "windows_pfx_password": "Repro-Passw0rd",
        "windows_timestamp_url": "none",
    });
    let path = dir.join("credentials.json");
    std::fs::write(&path, creds.to_string()).unwrap();
    (pki, path)
}
