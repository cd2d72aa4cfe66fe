//! Unpacks a tar that came out of a container (`download_from_container`) into the job's
//! output dir, treating it as hostile.
//!
//! Refused: absolute paths, `..`, backslashes or drive colons, entries outside the expected
//! top-level name, devices/FIFOs/sockets, symlinks whose target is absolute, uses `..`
//! after a normal component or leaves the extraction root, hard links to anything but an
//! already unpacked file, and archives over the entry or byte limits. Nothing is ever
//! written through a symlink: parent folders must be real folders, and an existing entry
//! at the destination is unlinked (never followed) before a file is created. Owners and
//! modes from the archive are ignored (files 0644, or 0755 when executable; folders 0755).

use crate::config::ExtractLimits;
use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What was unpacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Unpacks `archive` under `root`; every entry must sit under `expected_top` (the basename
/// of the path that was downloaded).
pub fn unpack_checked(
    archive: impl Read,
    root: &Path,
    expected_top: &str,
    limits: ExtractLimits,
) -> Result<UnpackStats> {
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let mut archive = tar::Archive::new(archive);
    let mut stats = UnpackStats::default();
    for entry in archive.entries().context("reading the output archive")? {
        let mut entry = entry.context("reading the output archive")?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let raw_name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| anyhow!("archive entry name is not UTF-8"))?;
        let parts = checked_parts(&raw_name)?;
        if parts.first().map(String::as_str) != Some(expected_top) {
            bail!("archive entry {raw_name:?} is outside {expected_top:?}");
        }
        stats.entries += 1;
        if stats.entries > limits.max_entries {
            bail!("output has more than {} entries", limits.max_entries);
        }
        let dest = prepare_parents(root, &parts)?;
        match kind {
            tar::EntryType::Directory => make_dir(&dest)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size()?;
                if stats.bytes.saturating_add(size) > limits.max_unpacked_bytes {
                    bail!("output is larger than {} bytes", limits.max_unpacked_bytes);
                }
                let executable = entry.header().mode().unwrap_or(0) & 0o111 != 0;
                let mut file = create_file(&dest, executable)?;
                let copied = io::copy(&mut (&mut entry).take(size), &mut file)
                    .with_context(|| format!("writing {}", dest.display()))?;
                stats.bytes += copied;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .ok_or_else(|| anyhow!("symlink {raw_name:?} has no target"))?;
                check_symlink_target(&parts, &target)
                    .with_context(|| format!("symlink {raw_name:?}"))?;
                remove_non_dir(&dest)?;
                make_symlink(&target, &dest)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .ok_or_else(|| anyhow!("hard link {raw_name:?} has no target"))?;
                let target_parts = checked_parts(&target)?;
                let source = root.join(target_parts.iter().collect::<PathBuf>());
                let meta = fs::symlink_metadata(&source).map_err(|_| {
                    anyhow!("hard link {raw_name:?} points to {target:?}, which was not unpacked")
                })?;
                if !meta.is_file() || target_parts.first() != parts.first() {
                    bail!("hard link {raw_name:?} must point to a file of this output");
                }
                stats.bytes += meta.len();
                if stats.bytes > limits.max_unpacked_bytes {
                    bail!("output is larger than {} bytes", limits.max_unpacked_bytes);
                }
                let mut from = fs::File::open(&source)?;
                let mut file = create_file(&dest, false)?;
                io::copy(&mut from, &mut file)?;
            }
            other => bail!("archive entry {raw_name:?} has a refused type ({other:?})"),
        }
    }
    Ok(stats)
}

/// Components of an archive path, refusing anything that could leave the root.
fn checked_parts(name: &str) -> Result<Vec<String>> {
    if name.starts_with('/') || name.contains('\\') || name.contains(':') || name.contains('\0') {
        bail!("archive entry {name:?} has an absolute or non-portable path");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("archive entry {name:?} contains '..'"),
            p => parts.push(p.to_string()),
        }
    }
    if parts.is_empty() {
        bail!("archive entry {name:?} has an empty path");
    }
    Ok(parts)
}

/// A link target is relative, may only climb (`..`) at its start, and stays inside the
/// extraction root when resolved from the link's folder.
fn check_symlink_target(link_parts: &[String], target: &str) -> Result<()> {
    if target.is_empty() || target.starts_with('/') || target.contains('\\') || target.contains(':')
    {
        bail!("target {target:?} is absolute or non-portable");
    }
    let mut depth = link_parts.len() as i64 - 1; // folders between root and the link
    let mut seen_normal = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if seen_normal => bail!("target {target:?} climbs after descending"),
            ".." => {
                depth -= 1;
                if depth < 0 {
                    bail!("target {target:?} points outside the output");
                }
            }
            _ => seen_normal = true,
        }
    }
    Ok(())
}

/// Creates the parent folders of `parts` under `root` (refusing symlinked parents) and
/// returns the entry's destination path.
fn prepare_parents(root: &Path, parts: &[String]) -> Result<PathBuf> {
    let mut path = root.to_path_buf();
    for part in &parts[..parts.len() - 1] {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => bail!(
                "{} is not a folder (a link or file stands in the way)",
                path.display()
            ),
            Err(_) => make_dir(&path)?,
        }
    }
    path.push(&parts[parts.len() - 1]);
    Ok(path)
}

fn make_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => bail!("{} exists and is not a folder", path.display()),
        Err(_) => {}
    }
    #[cfg_attr(not(unix), allow(unused_mut))] // only Unix sets a mode
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    builder
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn remove_non_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => bail!("{} is a folder in the way of a file", path.display()),
        Ok(_) => fs::remove_file(path).with_context(|| format!("replacing {}", path.display())),
        Err(_) => Ok(()),
    }
}

fn create_file(path: &Path, executable: bool) -> Result<fs::File> {
    remove_non_dir(path)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if executable { 0o755 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = executable;
    options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn make_symlink(target: &str, dest: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(target, dest)
            .with_context(|| format!("linking {}", dest.display()))
    }
    #[cfg(not(unix))]
    {
        bail!(
            "{} is a symbolic link to {target:?}; links are not supported on this OS",
            dest.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ExtractLimits = ExtractLimits {
        max_entries: 100,
        max_unpacked_bytes: 1 << 20,
    };

    /// A tar built by hand so hostile headers are possible (the tar crate's builder refuses some).
    fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, link, data) in entries {
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(*kind);
            header.set_mode(0o755);
            header.set_size(data.len() as u64);
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn unpack(
        entries: &[(&str, tar::EntryType, &str, &[u8])],
    ) -> (tempfile::TempDir, Result<UnpackStats>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack_checked(
            &raw_tar(entries)[..],
            &dir.path().join("out"),
            "dist",
            LIMITS,
        );
        (dir, result)
    }

    use tar::EntryType::{Block, Directory, Link, Regular, Symlink};

    #[test]
    fn normal_output_unpacks_with_our_modes() {
        let (dir, result) = unpack(&[
            ("dist/", Directory, "", b""),
            ("dist/app.exe", Regular, "", b"MZ..."),
            ("dist/lib/", Directory, "", b""),
            ("dist/lib/current", Symlink, "../app.exe", b""),
            ("dist/copy.exe", Link, "dist/app.exe", b""),
        ]);
        assert_eq!(
            result.unwrap(),
            UnpackStats {
                entries: 5,
                bytes: 10
            }
        );
        let out = dir.path().join("out/dist");
        assert_eq!(fs::read(out.join("app.exe")).unwrap(), b"MZ...");
        assert_eq!(fs::read(out.join("lib/current")).unwrap(), b"MZ...");
        assert_eq!(fs::read(out.join("copy.exe")).unwrap(), b"MZ...");
    }

    #[test]
    fn traversal_and_special_files_are_refused() {
        /// (path, entry type, link target, contents)
        type Entry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);
        let cases: &[&[Entry]] = &[
            &[("/etc/evil", Regular, "", b"x")],
            &[("dist/../../evil", Regular, "", b"x")],
            &[("other/file", Regular, "", b"x")],
            &[("dist/abs", Symlink, "/etc/passwd", b"")],
            &[("dist/up", Symlink, "../../etc", b"")],
            &[("dist/sneaky", Symlink, "sub/../../..", b"")],
            &[("dist/dev", Block, "", b"")],
            &[("dist/hl", Link, "/etc/passwd", b"")],
            &[("dist\\win", Regular, "", b"x")],
        ];
        for entries in cases {
            let (_dir, result) = unpack(entries);
            assert!(result.is_err(), "accepted {:?}", entries[0].0);
        }
    }

    #[cfg(unix)]
    #[test]
    fn never_writes_through_a_symlink() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().to_string();
        // The link itself is refused (absolute), but even a link planted beforehand is not followed.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        fs::create_dir_all(root.join("dist")).unwrap();
        std::os::unix::fs::symlink(&target, root.join("dist/planted")).unwrap();
        let tar = raw_tar(&[("dist/planted/x", Regular, "", b"boom")]);
        assert!(unpack_checked(&tar[..], &root, "dist", LIMITS).is_err());
        std::os::unix::fs::symlink(outside.path().join("f"), root.join("dist/file-link")).unwrap();
        let tar = raw_tar(&[("dist/file-link", Regular, "", b"boom")]);
        unpack_checked(&tar[..], &root, "dist", LIMITS).unwrap();
        assert!(
            !outside.path().join("f").exists(),
            "wrote through a symlink"
        );
        assert_eq!(fs::read(root.join("dist/file-link")).unwrap(), b"boom");
    }

    #[test]
    fn limits_are_enforced() {
        let big = vec![0u8; 2 << 20];
        let (_d, r) = unpack(&[("dist", Regular, "", &big)]);
        assert!(r.unwrap_err().to_string().contains("larger"));
        let many: Vec<String> = (0..101).map(|i| format!("dist/{i}")).collect();
        let entries: Vec<(&str, tar::EntryType, &str, &[u8])> = many
            .iter()
            .map(|n| (n.as_str(), Regular, "", &b""[..]))
            .collect();
        let (_d, r) = unpack(&entries);
        assert!(r.unwrap_err().to_string().contains("entries"));
    }
}
