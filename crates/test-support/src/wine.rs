//! Running the Windows build of the worker under wine: the cross-built
//! `perry-ship-windows.exe` (scripts/test.sh builds it before `cargo test`; this builds it
//! when missing or stale), a wine prefix of our own under the target folder with the
//! `bcryptprimitives.dll` stand-in (tests/wine/bcryptprimitives.c) in its system32, and
//! helpers to run the exe with a timeout. A missing wine, mingw or Windows target is a SKIP,
//! or a failure under `CI=true`.

use crate::target_dir;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";

pub struct Wine {
    pub prefix: PathBuf,
    /// The cross-built worker.
    pub exe: PathBuf,
}

/// `/tmp/x y` → `Z:\tmp\x y` (wine maps Z: to the Unix root).
pub fn win_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// Wine, the prefix and the worker exe, set up once per test binary. `None` after a SKIP.
pub fn require_wine() -> Option<&'static Wine> {
    static WINE: OnceLock<Result<Wine, String>> = OnceLock::new();
    match WINE.get_or_init(set_up) {
        Ok(wine) => Some(wine),
        Err(why) => crate::gate::skip_or_fail(why),
    }
}

fn set_up() -> Result<Wine, String> {
    let version = std::process::Command::new("wine")
        .arg("--version")
        .output()
        .map_err(|e| format!("wine is not installed ({e})"))?;
    if !version.status.success() {
        return Err("`wine --version` fails".into());
    }
    if !crate::sandbox_support::have_mingw() {
        return Err("x86_64-w64-mingw32-gcc is not installed".into());
    }
    let exe = build_worker_exe()?;
    let prefix = target_dir().join("wine-prefix");
    init_prefix(&prefix)?;
    Ok(Wine { prefix, exe })
}

/// `cargo build --target x86_64-pc-windows-gnu --bin perry-ship-windows` (a no-op when
/// scripts/test.sh built it already).
fn build_worker_exe() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "build",
            "--target",
            WINDOWS_TARGET,
            "--bin",
            "perry-ship-windows",
        ])
        .current_dir(crate::repo_root())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cross-building the worker for {WINDOWS_TARGET} failed (rustup target add {WINDOWS_TARGET}?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let exe = target_dir()
        .join(WINDOWS_TARGET)
        .join("debug/perry-ship-windows.exe");
    if exe.is_file() {
        Ok(exe)
    } else {
        Err(format!("{} is missing after the build", exe.display()))
    }
}

/// Creates the prefix when missing and puts the bcryptprimitives stand-in into system32.
fn init_prefix(prefix: &Path) -> Result<(), String> {
    if !prefix.join("system.reg").is_file() {
        let out = wine_command(prefix, "wineboot")
            .arg("-i")
            .output()
            .map_err(|e| format!("cannot run wineboot: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "wineboot -i failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let system32 = prefix.join("drive_c/windows/system32");
    let dll = system32.join("bcryptprimitives.dll");
    let source = crate::repo_root().join("tests/wine/bcryptprimitives.c");
    let out = std::process::Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(&dll)
        .arg(&source)
        .arg("-ladvapi32")
        .output()
        .map_err(|e| format!("cannot run mingw: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the bcryptprimitives stand-in failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// `program` with this prefix, no wine debug output and no Mono/Gecko install prompts.
fn wine_command(prefix: &Path, program: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env_remove("DISPLAY")
        .stdin(Stdio::null());
    cmd
}

/// Like [`require_wine`], with a prefix of its own (`target/wine-prefix-<name>`) for a test
/// whose Windows services must not meet the other tests' wine processes.
pub fn require_own_prefix(name: &str) -> Option<Wine> {
    let shared = require_wine()?;
    let prefix = target_dir().join(format!("wine-prefix-{name}"));
    match init_prefix(&prefix) {
        Ok(()) => Some(Wine {
            prefix,
            exe: shared.exe.clone(),
        }),
        Err(why) => crate::gate::skip_or_fail(&why),
    }
}

impl Wine {
    /// `wineserver <args>` for this prefix: `-p 120` keeps the session (and its services)
    /// alive between commands, `-k` ends every process of the prefix.
    pub fn wineserver(&self, args: &[&str]) {
        // The server outlives this call: it must not hold the test's output pipes open.
        let _ = wine_command(&self.prefix, "wineserver")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// `wine <args>` in this prefix (e.g. `sc query …`).
    pub fn wine(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = wine_command(&self.prefix, "wine");
        cmd.args(args);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        cmd
    }

    /// The worker under wine with `args` and `env` (the test's own PERRY_* variables are
    /// removed first), ready to spawn.
    pub fn worker(&self, args: &[&str], env: &[(&str, String)]) -> tokio::process::Command {
        let exe = self.exe.to_string_lossy();
        let mut all_args = vec![exe.as_ref()];
        all_args.extend_from_slice(args);
        let mut cmd = self.wine(&all_args);
        for (key, _) in std::env::vars() {
            if key.starts_with("PERRY_") {
                cmd.env_remove(key);
            }
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs the worker to its end (at most `limit`) and returns its output.
    pub async fn run(&self, args: &[&str], env: &[(&str, String)], limit: Duration) -> Output {
        let run = self.worker(args, env).output();
        tokio::time::timeout(limit, run)
            .await
            .unwrap_or_else(|_| {
                panic!("perry-ship-windows.exe {args:?} under wine took longer than {limit:?}")
            })
            .expect("running wine")
    }

    /// Compiles `tests/wine/<name>.c` with mingw into `dir/<exe_name>`.
    pub fn mingw_tool(&self, name: &str, dir: &Path, exe_name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let source = crate::repo_root()
            .join("tests/wine")
            .join(format!("{name}.c"));
        let exe = dir.join(exe_name);
        let out = std::process::Command::new("x86_64-w64-mingw32-gcc")
            .args(["-O2", "-o"])
            .arg(&exe)
            .arg(&source)
            .output()
            .expect("running mingw");
        assert!(
            out.status.success(),
            "mingw failed for {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        exe
    }
}

/// stdout + stderr as text.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
