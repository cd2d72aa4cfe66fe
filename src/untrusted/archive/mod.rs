//! The unpacker for untrusted tar streams: project tarballs (`.tar.gz` from the hub or the
//! command line) and step outputs copied out of containers. One loop, one set of checks; what
//! differs between uses is spelled out in an [`UnpackPolicy`].
//!
//! [`unpack`] reads any [`std::io::Read`] carrying a plain tar stream (wrap gzip input in
//! `gunzip`), so it can run on a blocking thread or in a child process reading its stdin.
//! Nothing is ever written outside the destination. Refused, each with an error naming the
//! entry and the reason: names the `PathRule` refuses
//! (absolute, `..`, `:`, control characters, non-UTF-8, over 4096 bytes or 256 levels),
//! entries outside the policy's top folder, symlinks whose target leaves the destination,
//! anything that would be written through a symlink, hard links to anything but an earlier
//! regular file of the same archive (those are unpacked as copies), device files, FIFOs,
//! GNU sparse files, more than `max_entries` entries and more than `max_unpacked_bytes` of
//! file data (counted as it is written, so a gzip bomb stops early).
//!
//! Files get mode 0644, or 0755 when the tar mode has an execute bit (never setuid/setgid),
//! folders 0755; file mtimes are kept (folder mtimes are not). GNU long names and PAX
//! headers are read with size caps (`headers.rs`).

mod error;
mod headers;
mod links;
mod policy;
mod write;

pub use error::UnpackError;
pub use policy::{Existing, HardLinks, Symlinks, UnpackPolicy};

use crate::untrusted::path::preview;
use headers::Extensions;
use links::{entry_components, symlink_target};
use std::io::Read;
use std::path::Path;
use tar::EntryType;
use write::{ByteBudget, FileMeta, Writer};

/// What an unpacking produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries unpacked (files, folders, links).
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// A gzip (or concatenated gzip) stream read as the plain tar it holds.
pub(crate) fn gunzip<R: Read>(reader: R) -> impl Read {
    flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(64 * 1024, reader))
}

/// Unpacks the gzip-compressed tar file `archive` into `dest` (created if missing).
pub fn unpack_tar_gz_file(
    archive: &Path,
    dest: &Path,
    policy: &UnpackPolicy,
) -> Result<UnpackStats, UnpackError> {
    let file = std::fs::File::open(archive).map_err(|source| UnpackError::Open {
        path: archive.display().to_string(),
        source,
    })?;
    unpack(gunzip(file), dest, policy)
}

/// Unpacks the plain tar stream `reader` into `dest` (created if missing) under `policy`.
pub fn unpack<R: Read>(
    reader: R,
    dest: &Path,
    policy: &UnpackPolicy,
) -> Result<UnpackStats, UnpackError> {
    let prepare = |source| UnpackError::Destination {
        path: dest.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dest).map_err(prepare)?;
    let root = dest.canonicalize().map_err(prepare)?;
    let writer = Writer {
        root,
        existing: policy.existing,
    };
    let mut budget = ByteBudget {
        used: 0,
        limit: policy.limits.max_unpacked_bytes,
        cancel: policy.cancel.clone(),
    };
    let mut stats = UnpackStats::default();
    let mut pending = Extensions::default();

    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(corrupt)?.raw(true);
    for entry in entries {
        if policy.cancel.is_cancelled() {
            return Err(UnpackError::Cancelled);
        }
        let mut entry = entry.map_err(corrupt)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        if pending.absorb(kind, &mut entry)? {
            continue;
        }
        stats.entries += 1;
        if stats.entries > policy.limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: policy.limits.max_entries,
            });
        }
        let ext = std::mem::take(&mut pending);
        if let Some(size) = ext.size {
            if size != header.entry_size().unwrap_or(u64::MAX) {
                return Err(UnpackError::Unsupported {
                    entry: preview(&header.path_bytes()),
                    kind: "PAX size override".into(),
                });
            }
        }
        let name = ext
            .path
            .clone()
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let components = entry_components(&name, policy.names)?;
        check_top(&name, &components, policy)?;
        let link_target = || {
            ext.link
                .clone()
                .or_else(|| header.link_name_bytes().map(|b| b.into_owned()))
                .unwrap_or_default()
        };
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let meta = FileMeta {
                    declared_size: header.entry_size().map_err(corrupt)?,
                    mode: header.mode().unwrap_or(0o644),
                    mtime: header.mtime().unwrap_or(0),
                };
                stats.bytes += writer.file(&name, &components, &mut entry, meta, &mut budget)?;
            }
            EntryType::Directory => writer.dir(&name, &components)?,
            EntryType::Symlink => {
                let raw_target = link_target();
                if policy.symlinks == Symlinks::Refuse {
                    return Err(UnpackError::LinkEscapes {
                        entry: preview(&name),
                        target: preview(&raw_target),
                        reason: "symbolic links are not allowed here",
                    });
                }
                let parent = components.split_last().map(|(_, p)| p).unwrap_or_default();
                let target = symlink_target(&name, parent, &raw_target, policy.names)?;
                writer.symlink(&name, &components, &target)?;
            }
            EntryType::Link => {
                let raw_target = link_target();
                let refuse = |reason| UnpackError::HardLink {
                    entry: preview(&name),
                    target: preview(&raw_target),
                    reason,
                };
                if policy.hard_links == HardLinks::Refuse {
                    return Err(refuse("hard links are not allowed here"));
                }
                let target = entry_components(&raw_target, policy.names)
                    .ok()
                    .filter(|t| check_top(&raw_target, t, policy).is_ok())
                    .ok_or_else(|| refuse("the link target leaves the destination"))?;
                stats.bytes +=
                    writer.hardlink_copy(&name, &components, &target, &raw_target, &mut budget)?;
            }
            EntryType::Char => return Err(special(&name, "character device")),
            EntryType::Block => return Err(special(&name, "block device")),
            EntryType::Fifo => return Err(special(&name, "FIFO (named pipe)")),
            other => {
                return Err(UnpackError::Unsupported {
                    entry: preview(&name),
                    kind: format!("{other:?}"),
                })
            }
        }
    }
    if pending.any() {
        return Err(UnpackError::Corrupt(
            "the archive ends after an extended header".into(),
        ));
    }
    Ok(stats)
}

/// Under a policy with a top folder, the entry's first component must be that folder.
fn check_top(name: &[u8], components: &[String], policy: &UnpackPolicy) -> Result<(), UnpackError> {
    match &policy.top_folder {
        Some(top) if components.first() != Some(top) => Err(UnpackError::OutsideTop {
            entry: preview(name),
            top: top.clone(),
        }),
        _ => Ok(()),
    }
}

fn corrupt(e: std::io::Error) -> UnpackError {
    UnpackError::Corrupt(e.to_string())
}

fn special(name: &[u8], kind: &'static str) -> UnpackError {
    UnpackError::SpecialFile {
        entry: preview(name),
        kind,
    }
}

#[cfg(test)]
mod tests;
