//! Safe extraction of an untrusted project tarball (`.tar.gz`) into the job's folder.
//!
//! Nothing is ever written outside the destination. Refused, each with an error naming the
//! entry and the reason: absolute paths, `..`, drive letters and `:`, control characters,
//! non-UTF-8 names, names over 4096 bytes or 256 levels, symlinks whose target leaves the
//! destination, anything that would be written through a symlink, hard links to anything but
//! an earlier regular file of the same tarball (those are extracted as copies), device files,
//! FIFOs, GNU sparse files, more than `max_entries` entries and more than
//! `max_unpacked_bytes` of file data (counted as it is written, so a gzip bomb stops early).
//!
//! **Duplicates are refused**: a second entry with the name of an existing file or link is
//! an error (last-wins would let a tarball swap a file for a link after it was checked). A
//! folder entry for an existing folder is fine.
//!
//! Files get mode 0644, or 0755 when the tar mode has an execute bit (never setuid/setgid),
//! folders 0755; file mtimes are kept (folder mtimes are not). Symlink targets are rewritten
//! to an equivalent form that only walks up through real folders (see
//! `names::symlink_target`). GNU long names and PAX headers are read with size caps, so a
//! hostile header cannot exhaust memory.

mod names;
mod write;

use crate::config::ExtractLimits;
use names::{entry_components, preview, symlink_target};
use std::io::Read;
use std::path::Path;
use tar::EntryType;
use write::{Budget, FileMeta, Writer};

/// Largest PAX extended header accepted.
const MAX_PAX_BYTES: u64 = 1 << 20;

/// What an extraction produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Entries extracted (files, folders, links).
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// Why a tarball was refused. Each message names the entry (quoted, shortened) and the rule.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("cannot open the tarball {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot prepare the destination {path}: {source}")]
    Destination {
        path: String,
        source: std::io::Error,
    },
    #[error("the tarball is damaged or not a .tar.gz: {0}")]
    Corrupt(String),
    #[error("entry {entry} refused: {reason}")]
    UnsafePath { entry: String, reason: &'static str },
    #[error("entry {entry} refused: the name is not valid UTF-8")]
    NonUtf8Name { entry: String },
    #[error("entry {entry} refused: the name is {len} bytes long (limit {limit})")]
    NameTooLong {
        entry: String,
        len: usize,
        limit: usize,
    },
    #[error("entry {entry} refused: the path is {depth} levels deep (limit {limit})")]
    TooDeep {
        entry: String,
        depth: usize,
        limit: usize,
    },
    #[error("symbolic link {entry} -> {target} refused: {reason}")]
    LinkEscapes {
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("hard link {entry} -> {target} refused: {reason}")]
    HardLink {
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("entry {entry} refused: its folder {component:?} is a symbolic link; nothing is written through links")]
    ThroughSymlink { entry: String, component: String },
    #[error("entry {entry} refused: {kind} entries are not allowed")]
    SpecialFile { entry: String, kind: &'static str },
    #[error("entry {entry} refused: unsupported entry type {kind}")]
    Unsupported { entry: String, kind: String },
    #[error("entry {entry} refused: duplicate entry ({reason})")]
    Duplicate { entry: String, reason: &'static str },
    #[error("the tarball has more than {limit} entries (PERRY_MAX_TARBALL_ENTRIES)")]
    TooManyEntries { limit: u64 },
    #[error("the tarball unpacks to more than {limit} bytes (PERRY_MAX_UNPACKED_SIZE), reached at entry {entry}")]
    TooLarge { entry: String, limit: u64 },
    #[error("entry {entry}: {action} failed: {source}")]
    Io {
        entry: String,
        action: &'static str,
        source: std::io::Error,
    },
}

/// Extracts a gzip-compressed tarball file into `dest` (created if missing).
pub fn extract_tar_gz(
    archive: &Path,
    dest: &Path,
    limits: &ExtractLimits,
) -> Result<ExtractStats, ExtractError> {
    let file = std::fs::File::open(archive).map_err(|source| ExtractError::Open {
        path: archive.display().to_string(),
        source,
    })?;
    let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(64 * 1024, file));
    extract_tar(gz, dest, limits)
}

/// Extracts an uncompressed tar stream into `dest` (created if missing).
pub fn extract_tar<R: Read>(
    reader: R,
    dest: &Path,
    limits: &ExtractLimits,
) -> Result<ExtractStats, ExtractError> {
    let prepare = |source| ExtractError::Destination {
        path: dest.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dest).map_err(prepare)?;
    let root = dest.canonicalize().map_err(prepare)?;
    let writer = Writer { root };
    let mut budget = Budget {
        used: 0,
        limit: limits.max_unpacked_bytes,
    };
    let mut stats = ExtractStats::default();
    let mut pending = Extensions::default();

    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(corrupt)?.raw(true);
    for entry in entries {
        let mut entry = entry.map_err(corrupt)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        if pending.absorb(kind, &mut entry)? {
            continue;
        }
        stats.entries += 1;
        if stats.entries > limits.max_entries {
            return Err(ExtractError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let ext = std::mem::take(&mut pending);
        if let Some(size) = ext.size {
            if size != header.entry_size().unwrap_or(u64::MAX) {
                return Err(ExtractError::Unsupported {
                    entry: preview(&header.path_bytes()),
                    kind: "PAX size override".into(),
                });
            }
        }
        let name = ext.path.unwrap_or_else(|| header.path_bytes().into_owned());
        let components = entry_components(&name)?;
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
                let raw_target = ext
                    .link
                    .or_else(|| header.link_name_bytes().map(|b| b.into_owned()))
                    .unwrap_or_default();
                let parent = components.split_last().map(|(_, p)| p).unwrap_or_default();
                let target = symlink_target(&name, parent, &raw_target)?;
                writer.symlink(&name, &components, &target)?;
            }
            EntryType::Link => {
                let raw_target = ext
                    .link
                    .or_else(|| header.link_name_bytes().map(|b| b.into_owned()))
                    .unwrap_or_default();
                let target = entry_components(&raw_target).map_err(|_| ExtractError::HardLink {
                    entry: preview(&name),
                    target: preview(&raw_target),
                    reason: "the link target leaves the project",
                })?;
                stats.bytes +=
                    writer.hardlink_copy(&name, &components, &target, &raw_target, &mut budget)?;
            }
            EntryType::Char => return Err(special(&name, "character device")),
            EntryType::Block => return Err(special(&name, "block device")),
            EntryType::Fifo => return Err(special(&name, "FIFO (named pipe)")),
            other => {
                return Err(ExtractError::Unsupported {
                    entry: preview(&name),
                    kind: format!("{other:?}"),
                })
            }
        }
    }
    if pending.any() {
        return Err(ExtractError::Corrupt(
            "the tarball ends after an extended header".into(),
        ));
    }
    Ok(stats)
}

fn corrupt(e: std::io::Error) -> ExtractError {
    ExtractError::Corrupt(e.to_string())
}

fn special(name: &[u8], kind: &'static str) -> ExtractError {
    ExtractError::SpecialFile {
        entry: preview(name),
        kind,
    }
}

/// GNU long-name/long-link and PAX headers that apply to the next real entry.
#[derive(Default)]
struct Extensions {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Extensions {
    fn any(&self) -> bool {
        self.path.is_some() || self.link.is_some() || self.size.is_some()
    }

    /// Consumes `entry` when it is an extension header; `Ok(false)` for a real entry.
    fn absorb<R: Read>(
        &mut self,
        kind: EntryType,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<bool, ExtractError> {
        match kind {
            EntryType::GNULongName => self.path = Some(read_long_name(entry, "(GNU long name)")?),
            EntryType::GNULongLink => {
                self.link = Some(read_long_name(entry, "(GNU long link target)")?)
            }
            EntryType::XHeader => {
                let data = read_capped(entry, MAX_PAX_BYTES, "PAX header")?;
                for ext in tar::PaxExtensions::new(&data) {
                    let ext = ext.map_err(corrupt)?;
                    match ext.key_bytes() {
                        b"path" => self.path = Some(ext.value_bytes().to_vec()),
                        b"linkpath" => self.link = Some(ext.value_bytes().to_vec()),
                        b"size" => {
                            let size = ext.value().ok().and_then(|v| v.parse().ok());
                            self.size = Some(
                                size.ok_or_else(|| ExtractError::Corrupt("bad PAX size".into()))?,
                            );
                        }
                        _ => {}
                    }
                }
            }
            // Global PAX headers carry defaults we do not use; their data is skipped.
            EntryType::XGlobalHeader => {}
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A GNU long name: at most [`names::MAX_NAME_BYTES`] plus its NUL terminator.
fn read_long_name<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    what: &str,
) -> Result<Vec<u8>, ExtractError> {
    let size = entry.header().entry_size().map_err(corrupt)?;
    if size > names::MAX_NAME_BYTES as u64 + 1 {
        return Err(ExtractError::NameTooLong {
            entry: what.into(),
            len: usize::try_from(size).unwrap_or(usize::MAX),
            limit: names::MAX_NAME_BYTES,
        });
    }
    let mut data = read_capped(entry, size, what)?;
    while data.last() == Some(&0) {
        data.pop();
    }
    Ok(data)
}

fn read_capped<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    cap: u64,
    what: &str,
) -> Result<Vec<u8>, ExtractError> {
    let size = entry.header().entry_size().map_err(corrupt)?;
    if size > cap {
        return Err(ExtractError::Corrupt(format!(
            "{what} of {size} bytes is larger than {cap}"
        )));
    }
    let mut data = Vec::with_capacity(size as usize);
    entry.take(cap).read_to_end(&mut data).map_err(corrupt)?;
    Ok(data)
}
