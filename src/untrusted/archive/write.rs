//! Filesystem side of unpacking: folders, files, links, created only below the destination
//! and never through a symbolic link.
//!
//! Every parent component is checked with `symlink_metadata` before use, files are created
//! with `create_new` (never following a link at the final component; an existing entry is
//! refused or, under [`Existing::Replace`], unlinked first), and modes are forced to 0755
//! for folders and 0644/0755 for files.

use super::policy::Existing;
use super::UnpackError;
use crate::untrusted::path::preview;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// The byte budget shared by all files of one unpacking, and the job's cancel.
pub(crate) struct ByteBudget {
    pub(crate) used: u64,
    pub(crate) limit: u64,
    pub(crate) cancel: CancellationToken,
}

impl ByteBudget {
    fn take(&mut self, n: u64, entry: &[u8]) -> Result<(), UnpackError> {
        if self.cancel.is_cancelled() {
            return Err(UnpackError::Cancelled);
        }
        self.used = self.used.saturating_add(n);
        if self.used > self.limit {
            return Err(UnpackError::TooLarge {
                entry: preview(entry),
                limit: self.limit,
            });
        }
        Ok(())
    }
}

/// Header facts of a regular file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileMeta {
    pub(crate) declared_size: u64,
    /// Tar mode; only its execute bits matter.
    pub(crate) mode: u32,
    /// Seconds since the Unix epoch.
    pub(crate) mtime: u64,
}

/// Writes entries below `root` (an existing, canonical folder).
pub(crate) struct Writer {
    pub(crate) root: PathBuf,
    /// What happens to an existing file or link where a new entry goes.
    pub(crate) existing: Existing,
}

impl Writer {
    /// Makes sure every folder of `components[..len]` exists as a real folder (creating
    /// missing ones), and returns the joined path.
    pub(crate) fn ensure_dirs(
        &self,
        entry: &[u8],
        components: &[String],
    ) -> Result<PathBuf, UnpackError> {
        let mut path = self.root.clone();
        for component in components {
            path.push(component);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(UnpackError::ThroughSymlink {
                        entry: preview(entry),
                        component: component.clone(),
                    })
                }
                Ok(_) => {
                    return Err(UnpackError::Duplicate {
                        entry: preview(entry),
                        reason: "a file of that name already exists where a folder is needed",
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    create_dir(&path).map_err(|e| io_error(entry, "creating a folder", e))?
                }
                Err(e) => return Err(io_error(entry, "inspecting a folder", e)),
            }
        }
        Ok(path)
    }

    /// The path for a new non-folder entry: parents ensured, nothing there yet.
    fn new_leaf(&self, entry: &[u8], components: &[String]) -> Result<PathBuf, UnpackError> {
        let (name, parents) = components.split_last().ok_or(UnpackError::UnsafePath {
            entry: preview(entry),
            reason: "the entry has an empty name",
        })?;
        let path = self.ensure_dirs(entry, parents)?.join(name);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path),
            Ok(meta) if self.existing == Existing::Replace && !meta.is_dir() => {
                // Unlinked, never followed: a planted link cannot redirect the write.
                std::fs::remove_file(&path)
                    .map_err(|e| io_error(entry, "replacing an existing entry", e))?;
                Ok(path)
            }
            Ok(_) => Err(duplicate(entry)),
            Err(e) => Err(io_error(entry, "inspecting the path", e)),
        }
    }

    /// A regular file with the data of `reader`, counted against `budget` as it is written.
    pub(crate) fn file(
        &self,
        entry: &[u8],
        components: &[String],
        reader: &mut dyn Read,
        meta: FileMeta,
        budget: &mut ByteBudget,
    ) -> Result<u64, UnpackError> {
        if budget.used.saturating_add(meta.declared_size) > budget.limit {
            return Err(UnpackError::TooLarge {
                entry: preview(entry),
                limit: budget.limit,
            });
        }
        let path = self.new_leaf(entry, components)?;
        let mut file = create_file(&path).map_err(|e| create_error(entry, e))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(UnpackError::Corrupt(format!(
                        "reading entry {}: {e}",
                        preview(entry)
                    )))
                }
            };
            budget.take(n as u64, entry)?;
            file.write_all(&buf[..n])
                .map_err(|e| io_error(entry, "writing the file", e))?;
            written += n as u64;
        }
        finish_file(&file, &path, meta.mode, meta.mtime)
            .map_err(|e| io_error(entry, "setting file attributes", e))?;
        Ok(written)
    }

    /// A folder entry; an existing real folder is fine.
    pub(crate) fn dir(&self, entry: &[u8], components: &[String]) -> Result<(), UnpackError> {
        self.ensure_dirs(entry, components).map(|_| ())
    }

    /// A symbolic link whose target was already checked and rewritten by
    /// [`super::links::symlink_target`].
    pub(crate) fn symlink(
        &self,
        entry: &[u8],
        components: &[String],
        target: &str,
    ) -> Result<(), UnpackError> {
        let path = self.new_leaf(entry, components)?;
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(target, &path).map_err(|e| create_error(entry, e))
        }
        #[cfg(not(unix))]
        {
            let _ = (path, target);
            Err(UnpackError::Unsupported {
                entry: preview(entry),
                kind: "symbolic link (not extracted on Windows hosts)".into(),
            })
        }
    }

    /// A hard link to an earlier regular file of the same tarball, extracted as a copy.
    pub(crate) fn hardlink_copy(
        &self,
        entry: &[u8],
        components: &[String],
        target: &[String],
        raw_target: &[u8],
        budget: &mut ByteBudget,
    ) -> Result<u64, UnpackError> {
        let refuse = |reason: &'static str| UnpackError::HardLink {
            entry: preview(entry),
            target: preview(raw_target),
            reason,
        };
        let (name, parents) = target
            .split_last()
            .ok_or(refuse("the link target is empty"))?;
        let mut source = self.root.clone();
        for component in parents {
            source.push(component);
            match std::fs::symlink_metadata(&source) {
                Ok(meta) if meta.is_dir() => {}
                _ => {
                    return Err(refuse(
                        "the link target is not an earlier file of the tarball",
                    ))
                }
            }
        }
        source.push(name);
        let meta = std::fs::symlink_metadata(&source);
        let meta = meta.ok().filter(|m| m.is_file()).ok_or(refuse(
            "the link target is not an earlier file of the tarball",
        ))?;
        let mut reader =
            File::open(&source).map_err(|e| io_error(entry, "opening the link target", e))?;
        let file_meta = FileMeta {
            declared_size: meta.len(),
            mode: if is_executable(&meta) { 0o755 } else { 0o644 },
            mtime: meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        };
        self.file(entry, components, &mut reader, file_meta, budget)
    }
}

fn duplicate(entry: &[u8]) -> UnpackError {
    UnpackError::Duplicate {
        entry: preview(entry),
        reason: "an entry of that name was already extracted",
    }
}

fn create_error(entry: &[u8], e: std::io::Error) -> UnpackError {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        duplicate(entry)
    } else {
        io_error(entry, "creating the entry", e)
    }
}

fn io_error(entry: &[u8], action: &'static str, source: std::io::Error) -> UnpackError {
    UnpackError::Io {
        entry: preview(entry),
        action,
        source,
    }
}

fn create_dir(path: &Path) -> std::io::Result<()> {
    #[cfg_attr(not(unix), allow(unused_mut))] // only Unix sets a mode
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    builder.create(path)
}

fn create_file(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Mode 0755 when the tar mode has any execute bit, 0644 otherwise; mtime from the header.
fn finish_file(file: &File, path: &Path, tar_mode: u32, mtime: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if tar_mode & 0o111 != 0 { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, tar_mode);
    // Cosmetic: a file system that refuses the time does not fail the job.
    let _ = file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime));
    Ok(())
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}
