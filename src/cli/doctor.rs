//! `perry-ship-windows doctor`: one line per check with ✓ / ✗ and a hint (worded for the
//! host's OS), and a non-zero exit when the configured mode cannot build.

use crate::config::Config;
use crate::sandbox::{docker::DockerRunner, Runner};
use crate::sign::signtool::SignTool;
use std::process::ExitCode;
use std::sync::Arc;

struct Report {
    failures: usize,
}

impl Report {
    fn ok(&self, what: &str, detail: &str) {
        println!("✓ {what}: {detail}");
    }
    fn fail(&mut self, what: &str, detail: &str, hint: &str) {
        self.failures += 1;
        println!("✗ {what}: {detail}\n    hint: {hint}");
    }
    fn note(&self, what: &str, detail: &str) {
        println!("- {what}: {detail}");
    }
}

/// Options of `doctor`.
#[derive(clap::Args, Debug, Default)]
pub struct DoctorArgs {
    /// Check only this credentials JSON file (the hub's `credentials` object): certificate
    /// dates, usage and chain, and the timestamp servers.
    #[arg(long, value_name = "FILE")]
    pub(crate) credentials: Option<std::path::PathBuf>,
}

/// Runs `doctor`: checks configuration, engine, images and tools; exits non-zero when this
/// host cannot build.
pub async fn doctor(args: DoctorArgs) -> ExitCode {
    let mut report = Report { failures: 0 };
    let config = match Config::from_env() {
        Ok(c) => {
            report.ok("configuration", "all PERRY_* variables are valid");
            c
        }
        Err(e) => {
            report.fail(
                "configuration",
                &e.to_string(),
                "fix the variable named above",
            );
            return ExitCode::FAILURE;
        }
    };
    if let Some(file) = &args.credentials {
        return if super::doctor_credentials::check_credentials(&config, file).await {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    report.ok("hub URL", &config.hub_url);
    report.note(
        "mode",
        if config.docker.enabled {
            "Docker containers (PERRY_DOCKER_ENABLED=true)"
        } else {
            "host processes"
        },
    );

    if config.docker.enabled {
        check_docker(&config, &mut report).await;
    } else {
        check_host_tool(
            &mut report,
            "makensis",
            &nsis_binary(&config),
            &["-VERSION"],
            hints::INSTALL_NSIS,
        )
        .await;
    }
    check_perry(&config, &mut report).await;
    check_signing_tools(&config, &mut report).await;
    check_job_processes(&config, &mut report).await;
    check_work_dir(&config, &mut report);

    if report.failures == 0 {
        println!("this host can build");
        ExitCode::SUCCESS
    } else {
        println!(
            "{} check(s) failed: this host cannot build in the configured mode",
            report.failures
        );
        ExitCode::FAILURE
    }
}

fn nsis_binary(config: &Config) -> String {
    config
        .nsis_path
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "makensis".into())
}

async fn check_docker(config: &Config, report: &mut Report) {
    match DockerRunner::new(config) {
        Err(e) => report.fail("docker engine", &format!("{e:#}"), hints::START_DOCKER),
        Ok(runner) => match runner.check(&config.docker.image).await {
            Ok(info) => {
                report.ok(
                    "docker engine",
                    &format!(
                        "{} (engine {}, API {}, {} containers)",
                        info.endpoint, info.engine_version, info.api_version, info.os
                    ),
                );
                report.ok("toolchain image", &config.docker.image);
            }
            Err(e) => report.fail(
                "docker engine / toolchain image",
                &format!("{e:#}"),
                hints::BUILD_IMAGE,
            ),
        },
    }
}

/// Runs `perry --version` through the configured runner (inside the image with Docker),
/// the same way the worker does for its hello.
async fn check_perry(config: &Config, report: &mut Report) {
    let runner: Arc<dyn Runner> = match super::make_runner(config).await {
        Ok(r) => r,
        Err(e) => {
            report.fail(
                "perry",
                &format!("no runner: {e:#}"),
                "see the docker check above",
            );
            return;
        }
    };
    match crate::hub::update::perry_version(config, runner.as_ref()).await {
        Some(version) => report.ok("perry", &version),
        None => report.fail(
            "perry",
            &format!(
                "`{} --version` did not run: the worker will not advertise `windows` \
                 (compile jobs), only `windows-sign`",
                config.perry_binary
            ),
            "set PERRY_BUILD_PERRY_BINARY to the compiler (inside the image when Docker is on)",
        ),
    }
}

async fn check_host_tool(
    report: &mut Report,
    what: &str,
    program: &str,
    args: &[&str],
    hint: &str,
) {
    match tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            report.ok(what, text.lines().next().unwrap_or("").trim());
        }
        Ok(out) => report.fail(what, &format!("{program} exited with {}", out.status), hint),
        Err(e) => report.fail(what, &format!("{program}: {e}"), hint),
    }
}

async fn check_signing_tools(config: &Config, report: &mut Report) {
    report.ok(
        "signing",
        "built-in Authenticode signer (PFX, Azure Trusted Signing, Cloud KMS)",
    );
    if cfg!(windows) {
        check_signtool(config, report);
    } else {
        match tokio::process::Command::new("osslsigncode")
            .arg("--version")
            .output()
            .await
        {
            Ok(out) => report.note(
                "osslsigncode",
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("present")
                    .trim(),
            ),
            Err(_) => report.note("osslsigncode", "not installed (only the tests use it)"),
        }
    }
}

/// Windows hosts: the SDK's signtool verifies every signature a second time when found; a
/// configured PERRY_BUILD_WINDOWS_SDK_PATH without one is a failure.
fn check_signtool(config: &Config, report: &mut Report) {
    match SignTool::for_host(config.windows_sdk_path.as_deref()) {
        Some(tool) => report.ok(
            "signtool",
            &format!(
                "{} (version {}): every signature is checked again with `signtool verify /pa`",
                tool.path().display(),
                tool.version().as_deref().unwrap_or("unknown")
            ),
        ),
        None => match &config.windows_sdk_path {
            Some(path) => report.fail(
                "signtool",
                &format!("not found under {}", path.display()),
                "point PERRY_BUILD_WINDOWS_SDK_PATH at the SDK folder (Windows Kits\\10) or signtool.exe",
            ),
            None => report.note(
                "signtool",
                &format!(
                    "not found under {} (optional; install the Windows SDK or set PERRY_BUILD_WINDOWS_SDK_PATH for a second check of every signature)",
                    crate::sign::signtool::DEFAULT_SDK_ROOT
                ),
            ),
        },
    }
}

/// Each job runs in a child process under `PERRY_JOB_*` limits: one must start here.
async fn check_job_processes(config: &Config, report: &mut Report) {
    let l = config.job_limits;
    let limits = format!(
        "memory {} MiB, CPU {} s, largest file {} MiB, {} open files",
        l.memory_bytes >> 20,
        l.cpu_time.as_secs(),
        l.max_file_bytes >> 20,
        l.open_files
    );
    match crate::isolation::self_check(config).await {
        Ok(()) => report.ok("job processes", &format!("start under their limits ({limits})")),
        Err(e) => report.fail(
            "job processes",
            &format!("a job process did not run under its limits ({limits}): {e}"),
            "raise PERRY_JOB_MEMORY / PERRY_JOB_OPEN_FILES, or check that this program can start itself",
        ),
    }
}

fn check_work_dir(config: &Config, report: &mut Report) {
    let dir = &config.work_dir;
    if let Err(e) =
        std::fs::create_dir_all(dir).and_then(|_| tempfile::tempfile_in(dir).map(|_| ()))
    {
        report.fail(
            "work dir",
            &format!("{} is not writable: {e}", dir.display()),
            "set PERRY_WORK_DIR",
        );
        return;
    }
    match crate::job::workdir::free_disk_bytes(dir) {
        Ok(free) if free >= config.min_free_disk => report.ok(
            "work dir",
            &format!("{} writable, {} GiB free", dir.display(), free >> 30),
        ),
        Ok(free) => report.fail(
            "work dir",
            &format!(
                "{} has {} MiB free, {} MiB required",
                dir.display(),
                free >> 20,
                config.min_free_disk >> 20
            ),
            "free disk space or lower PERRY_MIN_FREE_DISK",
        ),
        Err(e) => report.fail(
            "work dir",
            &format!("cannot read free space: {e}"),
            "set PERRY_WORK_DIR",
        ),
    }
}

/// Hints that differ per host OS.
mod hints {
    #[cfg(windows)]
    pub(crate) const INSTALL_NSIS: &str =
        "install NSIS 3 (https://nsis.sourceforge.io, e.g. `winget install NSIS.NSIS`) or set PERRY_BUILD_NSIS_PATH to makensis.exe";
    #[cfg(target_os = "macos")]
    pub(crate) const INSTALL_NSIS: &str = "brew install makensis (or set PERRY_BUILD_NSIS_PATH)";
    #[cfg(not(any(windows, target_os = "macos")))]
    pub(crate) const INSTALL_NSIS: &str = "apt-get install nsis (or set PERRY_BUILD_NSIS_PATH)";

    #[cfg(windows)]
    pub(crate) const START_DOCKER: &str =
        "start Docker (the `docker` Windows service or Docker Desktop, Windows containers) or set DOCKER_HOST";
    #[cfg(not(windows))]
    pub(crate) const START_DOCKER: &str =
        "start dockerd (scripts/start-docker.sh) or set DOCKER_HOST";

    #[cfg(windows)]
    pub(crate) const BUILD_IMAGE: &str =
        "build images/windows (docker build -t perry-ship-windows/toolchain-windows images/windows) or set PERRY_DOCKER_IMAGE";
    #[cfg(not(windows))]
    pub(crate) const BUILD_IMAGE: &str =
        "run scripts/setup-host.sh (builds images/linux) or set PERRY_DOCKER_IMAGE";
}
