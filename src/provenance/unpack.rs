//! Unpacking an NSIS installer with 7-Zip (no Rust crate reads NSIS archives), for the
//! signature checks of its payload and the comparison with a rebuild. The installer is
//! untrusted input: 7z runs as a host process with a cleared environment, in a fresh
//! scratch folder, killed after [`UNPACK_TIMEOUT`]; what it wrote is walked without
//! following links, and a link or a file outside the folder is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long 7z may take for one installer.
pub(crate) const UNPACK_TIMEOUT: Duration = Duration::from_secs(300);

/// The files of `setup`'s payload, unpacked into `into` (an empty folder): paths relative
/// to it, sorted. Fails when 7z is missing or cannot unpack the installer.
pub(crate) fn unpack_installer(setup: &Path, into: &Path) -> Result<Vec<PathBuf>, String> {
    let mut child = Command::new("7z")
        .arg("x")
        .arg("-y")
        .arg("-bd")
        .arg(format!("-o{}", into.display()))
        .arg("--")
        .arg(setup)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run 7z to unpack the installer ({e}); install p7zip-full"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if started.elapsed() > UNPACK_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "7z did not unpack the installer within {} s",
                    UNPACK_TIMEOUT.as_secs()
                ));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        return Err(format!("7z cannot unpack the installer: {}", stderr.trim()));
    }
    let mut files = Vec::new();
    collect_files(into, into, &mut files).map_err(|e| e.to_string())?;
    files.sort();
    Ok(files)
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        let path = entry.path();
        let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() {
            out.push(rel.to_path_buf());
        } else {
            return Err(format!(
                "the installer unpacked a link or device: {}",
                rel.display()
            ));
        }
    }
    Ok(())
}
