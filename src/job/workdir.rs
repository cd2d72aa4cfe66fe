//! A job's private work folder and the free-disk check done before a job starts.
//!
//! [`JobWorkDir`] is `<root>/<sanitised job_id>-a<attempt>`, created with mode 0700 (the
//! project, temporary key files and artifacts live there). It is removed by
//! [`JobWorkDir::remove`] or, best effort, when dropped.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// Longest job-id part of a work folder name.
const MAX_ID_LEN: usize = 64;

#[derive(Debug)]
pub struct JobWorkDir {
    path: PathBuf,
    removed: bool,
}

impl JobWorkDir {
    /// Creates a fresh work folder. A leftover folder of the same job and attempt (from a
    /// crash) is removed first, so a job never sees another run's files.
    pub fn create(root: &Path, job_id: &str, attempt: u32) -> anyhow::Result<JobWorkDir> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating work root {}", root.display()))?;
        let path = root.join(format!("{}-a{attempt}", sanitise_id(job_id)));
        if std::fs::symlink_metadata(&path).is_ok() {
            remove_any(&path)
                .with_context(|| format!("removing stale work folder {}", path.display()))?;
        }
        create_private_dir(&path)
            .with_context(|| format!("creating work folder {}", path.display()))?;
        Ok(JobWorkDir {
            path,
            removed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<work>/project`, where the tarball is extracted (not created here).
    pub fn project_dir(&self) -> PathBuf {
        self.path.join("project")
    }

    /// Removes the folder and everything in it.
    pub fn remove(mut self) -> anyhow::Result<()> {
        self.removed = true;
        remove_any(&self.path)
            .with_context(|| format!("removing work folder {}", self.path.display()))
    }
}

impl Drop for JobWorkDir {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if let Err(e) = remove_any(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove job work folder");
            }
        }
    }
}

/// ASCII letters, digits, `-` and `_` of the job id (others become `_`), at most 64 of them;
/// `job` when nothing is left. Keeps path components like `..` out of the work root.
fn sanitise_id(job_id: &str) -> String {
    let cleaned: String = job_id
        .chars()
        .take(MAX_ID_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.chars().all(|c| c == '_') {
        "job".to_string()
    } else {
        cleaned
    }
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    #[cfg_attr(not(unix), allow(unused_mut))] // only Unix sets a mode
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Removes a file, symlink or directory tree; never follows a symlink.
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            make_writable(path);
            std::fs::remove_dir_all(path)
        }
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

/// Read-only folders inside the tree (a hostile tarball may carry them) would make
/// `remove_dir_all` fail on unix; give the owner write permission back first.
fn make_writable(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    make_writable(&entry.path());
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Bytes available to this (unprivileged) user on the volume holding `path`: `statvfs` on
/// Unix, `GetDiskFreeSpaceExW` on Windows (through `fs4`).
pub fn free_disk_bytes(path: &Path) -> std::io::Result<u64> {
    fs4::available_space(path)
}

/// Fails with a message naming the path, the free and the required space when the file
/// system holding `path` (or its nearest existing parent) has less than `min` bytes free.
pub fn ensure_free_disk(path: &Path, min: u64) -> anyhow::Result<()> {
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(path);
    let free = free_disk_bytes(existing)
        .with_context(|| format!("checking free disk space under {}", existing.display()))?;
    if free < min {
        bail!(
            "not enough free disk space under {}: {} free, {} required (PERRY_MIN_FREE_DISK)",
            path.display(),
            human_bytes(free),
            human_bytes(min)
        );
    }
    Ok(())
}

/// `1.5 GiB`, `512 MiB`, `300 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
