//! A job's private work folder and the free-disk check done before a job starts.
//!
//! [`JobWorkDir`] is `<root>/<sanitised job_id>-<hash>-a<attempt>`, created with mode 0700
//! (the project, temporary key files and artifacts live there). `<hash>` is a short hash of
//! the raw job id, so ids that sanitise alike (`p/1`, `p_1`) never share a folder. The
//! folder holds an [`OWNER_FILE`] naming the worker that made it, so a restarted worker
//! removes what it left when it crashed ([`remove_leftovers`]) and nothing of another
//! worker's. It is removed by [`JobWorkDir::remove`] or, best effort, when dropped.

use anyhow::{bail, Context};
use sha2::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Longest job-id part of a work folder name.
const MAX_ID_LEN: usize = 64;
/// Hex digits of the job-id hash in a work folder name.
const HASH_LEN: usize = 10;
/// File inside each work folder naming the worker that owns it.
pub const OWNER_FILE: &str = ".perry-owner";
/// An owner name is at most this long (a worker name is at most 100 characters).
const MAX_OWNER_LEN: u64 = 512;

/// One job's private work folder, removed when the job ends (or when dropped).
#[derive(Debug)]
pub struct JobWorkDir {
    path: PathBuf,
    removed: bool,
}

impl JobWorkDir {
    /// Creates a fresh work folder owned by `owner` (the worker name). A leftover folder of
    /// the same job and attempt (from a crash) is removed first, so a job never sees
    /// another run's files.
    pub fn create(
        root: &Path,
        owner: &str,
        job_id: &str,
        attempt: u32,
    ) -> anyhow::Result<JobWorkDir> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating work root {}", root.display()))?;
        let path = root.join(folder_name(job_id, attempt));
        if std::fs::symlink_metadata(&path).is_ok() {
            remove_any(&path)
                .with_context(|| format!("removing stale work folder {}", path.display()))?;
        }
        create_private_dir(&path)
            .with_context(|| format!("creating work folder {}", path.display()))?;
        let dir = JobWorkDir {
            path,
            removed: false,
        };
        std::fs::write(dir.path.join(OWNER_FILE), owner)
            .with_context(|| format!("marking work folder {}", dir.path.display()))?;
        Ok(dir)
    }

    /// The folder's path.
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

/// `<sanitised id>-<hash of the raw id>-a<attempt>`.
fn folder_name(job_id: &str, attempt: u32) -> String {
    let hash = hex::encode(sha2::Sha256::digest(job_id.as_bytes()));
    format!("{}-{}-a{attempt}", sanitise_id(job_id), &hash[..HASH_LEN])
}

/// Removes every folder directly under `root` whose [`OWNER_FILE`] names `owner`: the work
/// folders a crashed run of this worker left behind. Call at start, before any job runs.
/// Returns how many were removed; a folder that cannot be removed is an error naming it.
pub fn remove_leftovers(root: &Path, owner: &str) -> anyhow::Result<usize> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", root.display()))?;
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir())
            || read_owner(&path).as_deref() != Some(owner)
        {
            continue;
        }
        remove_any(&path)
            .with_context(|| format!("removing leftover work folder {}", path.display()))?;
        removed += 1;
    }
    Ok(removed)
}

/// The owner recorded in a work folder, if it has a (regular, small) owner file.
fn read_owner(dir: &Path) -> Option<String> {
    let file = dir.join(OWNER_FILE);
    if !std::fs::symlink_metadata(&file).ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(&file)
        .ok()?
        .take(MAX_OWNER_LEN)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
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
pub(crate) fn human_bytes(n: u64) -> String {
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
