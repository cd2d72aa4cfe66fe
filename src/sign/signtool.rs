//! A second, independent check of our signatures on Windows hosts: the Windows SDK's
//! `signtool.exe verify /pa /v`, run on every file we signed after our own verifier passed.
//!
//! [`SignTool::for_host`] finds `signtool.exe` from `PERRY_BUILD_WINDOWS_SDK_PATH` (or the
//! SDK's default install folder) on Windows and is `None` elsewhere: Linux hosts have no
//! signtool, and their second check is `osslsigncode` in the tests. A file signtool does not
//! accept (bad signature, or a chain to a root this host does not trust) fails the job.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the Windows 10/11 SDK installs by default.
pub(crate) const DEFAULT_SDK_ROOT: &str = r"C:\Program Files (x86)\Windows Kits\10";
/// Longest a single `signtool verify` may take.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of signtool's output kept in an error message.
const ERROR_TAIL_LINES: usize = 6;

/// A located `signtool.exe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SignTool {
    exe: PathBuf,
}

impl SignTool {
    /// The signtool this host uses for the second check: on Windows, found under `sdk_path`
    /// (or [`DEFAULT_SDK_ROOT`] when unset); never on other hosts.
    pub(crate) fn for_host(sdk_path: Option<&Path>) -> Option<SignTool> {
        if cfg!(windows) {
            SignTool::locate(sdk_path.unwrap_or(Path::new(DEFAULT_SDK_ROOT)))
        } else {
            None
        }
    }

    /// Finds `signtool.exe` given the exe itself, a folder holding it, a folder with an
    /// `x64` sub-folder holding it, or an SDK root (`bin\<version>\x64\signtool.exe`, the
    /// highest version wins).
    pub(crate) fn locate(sdk: &Path) -> Option<SignTool> {
        if sdk.is_file() {
            return Some(SignTool {
                exe: sdk.to_path_buf(),
            });
        }
        let direct = [
            sdk.join("signtool.exe"),
            sdk.join("x64").join("signtool.exe"),
        ];
        if let Some(exe) = direct.into_iter().find(|p| p.is_file()) {
            return Some(SignTool { exe });
        }
        let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(sdk.join("bin"))
            .ok()?
            .flatten()
            .filter_map(|entry| {
                let version = parse_version(&entry.file_name().to_string_lossy())?;
                let exe = entry.path().join("x64").join("signtool.exe");
                exe.is_file().then_some((version, exe))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, exe)| SignTool { exe })
    }

    /// Path of `signtool.exe`.
    pub(crate) fn path(&self) -> &Path {
        &self.exe
    }

    /// The tool's version: its VERSIONINFO file version, else the SDK `bin\<version>`
    /// folder it sits in.
    pub(crate) fn version(&self) -> Option<String> {
        if let Ok(report) = crate::package::resources::read_resources(&self.exe) {
            if let Some([a, b, c, d]) = report.file_version {
                return Some(format!("{a}.{b}.{c}.{d}"));
            }
        }
        self.exe
            .ancestors()
            .filter_map(|dir| dir.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .find(|name| parse_version(name).is_some())
    }

    /// Runs `signtool verify /pa /v <file>`; an error when it does not accept the file
    /// (with the end of its output), cannot run, or takes longer than two minutes.
    pub(crate) async fn verify(&self, file: &Path) -> Result<(), SignToolError> {
        let run = tokio::process::Command::new(&self.exe)
            .args(["verify", "/pa", "/v"])
            .arg(file)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(VERIFY_TIMEOUT, run).await {
            Err(_) => return Err(SignToolError::TimedOut),
            Ok(Err(source)) => {
                return Err(SignToolError::CannotRun {
                    exe: self.exe.display().to_string(),
                    source,
                })
            }
            Ok(Ok(output)) => output,
        };
        if output.status.success() {
            return Ok(());
        }
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(ERROR_TAIL_LINES)..].join(" | ");
        Err(SignToolError::Rejected {
            status: output.status.to_string(),
            output_tail: tail,
        })
    }
}

/// Why `signtool verify /pa` did not accept a file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignToolError {
    /// The tool did not finish in time and was stopped.
    #[error("signtool verify took longer than {VERIFY_TIMEOUT:?}")]
    TimedOut,
    /// The tool could not be started.
    #[error("cannot run {exe}: {source}")]
    CannotRun {
        /// Path of `signtool.exe`.
        exe: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The tool ran and refused the file; the last lines of its output say why.
    #[error("signtool verify /pa rejected the file ({status}): {output_tail}")]
    Rejected {
        /// Its exit status.
        status: String,
        /// The last lines of its output.
        output_tail: String,
    },
}

/// `10.0.22621.0` → `[10, 0, 22621, 0]`; `None` for anything but dotted numbers.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| p.len() >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"MZ").unwrap();
    }

    #[test]
    fn locates_the_highest_sdk_version_and_reads_it_from_the_folder() {
        let root = tempfile::tempdir().unwrap();
        for v in ["10.0.19041.0", "10.0.22621.0", "10.0.9999.0"] {
            touch(&root.path().join("bin").join(v).join("x64/signtool.exe"));
        }
        std::fs::create_dir_all(root.path().join("bin/not-a-version/x64")).unwrap();
        let tool = SignTool::locate(root.path()).expect("found");
        assert!(tool.path().ends_with("bin/10.0.22621.0/x64/signtool.exe"));
        assert_eq!(tool.version().as_deref(), Some("10.0.22621.0"));
    }

    #[test]
    fn locates_the_exe_itself_a_folder_or_its_x64_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SignTool::locate(dir.path()), None);
        let in_x64 = dir.path().join("x64/signtool.exe");
        touch(&in_x64);
        assert_eq!(SignTool::locate(dir.path()).unwrap().path(), in_x64);
        let direct = dir.path().join("signtool.exe");
        touch(&direct);
        assert_eq!(SignTool::locate(dir.path()).unwrap().path(), direct);
        assert_eq!(SignTool::locate(&in_x64).unwrap().path(), in_x64);
        assert_eq!(SignTool::locate(&in_x64).unwrap().version(), None);
    }

    #[test]
    fn only_windows_hosts_use_signtool() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("signtool.exe"));
        assert_eq!(
            SignTool::for_host(Some(dir.path())).is_some(),
            cfg!(windows)
        );
    }

    /// A stand-in signtool (a shell script) that records its arguments and rejects the file.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_rejection_carries_the_end_of_the_output_and_the_arguments_are_verify_pa_v() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("signtool.exe");
        let args_log = dir.path().join("args.txt");
        std::fs::write(
            &exe,
            format!(
                "#!/bin/sh\necho \"$@\" > '{}'\necho 'Verifying: app.exe'\necho 'SignTool Error: root not trusted'\nexit 1\n",
                args_log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tool = SignTool::locate(dir.path()).unwrap();
        let err = tool.verify(Path::new("app.exe")).await.unwrap_err();
        let err = err.to_string();
        assert!(err.contains("SignTool Error: root not trusted"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&args_log).unwrap().trim(),
            "verify /pa /v app.exe"
        );
    }

    #[tokio::test]
    async fn a_tool_that_cannot_run_is_an_error_naming_it() {
        let tool = SignTool {
            exe: PathBuf::from("/nonexistent/signtool.exe"),
        };
        let err = tool.verify(Path::new("app.exe")).await.unwrap_err();
        let err = err.to_string();
        assert!(err.contains("/nonexistent/signtool.exe"), "{err}");
    }
}
