//! The bundle folder (exe, DLLs, app.ico, asset folders) and a safe, sorted listing of it
//! that every package format installs from.
//!
//! Listing refuses what cannot be packaged safely: a missing exe, symlinks that lead out
//! of the bundle (or to folders, which could loop), special files, and names Windows or
//! an NSIS script cannot carry.

use super::escape::check_file_name;
use super::PackageError;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A folder laid out as it will be installed: `<exe>`, DLLs, `app.ico`, asset folders.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The bundle folder.
    pub root: PathBuf,
    /// `"<App>.exe"`, relative to `root`.
    pub exe_name: String,
}

/// One regular file of the bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleFile {
    /// `/`-separated, relative to the bundle root.
    pub rel: String,
    /// Where to read it (a symlink inside the bundle is resolved to its target).
    pub source: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time written into packages: the source date, not the copy time.
    pub(crate) mtime: SystemTime,
}

/// Folders (parents before children) and files, both sorted by relative path.
#[derive(Clone, Debug, Default)]
pub struct BundleListing {
    /// Folders, `/`-separated and relative to the bundle root.
    pub(crate) dirs: Vec<String>,
    /// Regular files.
    pub files: Vec<BundleFile>,
}

impl BundleListing {
    /// Bytes of all files together.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

impl Bundle {
    /// The bundle at `root` whose app exe is `exe_name`.
    pub fn new(root: impl Into<PathBuf>, exe_name: impl Into<String>) -> Bundle {
        Bundle {
            root: root.into(),
            exe_name: exe_name.into(),
        }
    }

    /// Full path of the app exe.
    pub fn exe_path(&self) -> PathBuf {
        self.root.join(&self.exe_name)
    }

    /// Walks the bundle; see the module doc for what is refused.
    pub fn list(&self) -> Result<BundleListing, PackageError> {
        let exe = self.exe_path();
        match std::fs::symlink_metadata(&exe) {
            Ok(m) if m.is_file() => {}
            _ => {
                return Err(PackageError::Missing {
                    what: "application exe",
                    path: exe,
                })
            }
        }
        let canonical_root = self.root.canonicalize().map_err(PackageError::io(format!(
            "resolving bundle folder {}",
            self.root.display()
        )))?;
        let mut listing = BundleListing::default();
        walk(&canonical_root, &canonical_root, "", &mut listing)?;
        listing.dirs.sort();
        listing.files.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(listing)
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    out: &mut BundleListing,
) -> Result<(), PackageError> {
    let entries =
        std::fs::read_dir(dir).map_err(PackageError::io(format!("reading {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(PackageError::io(format!("reading {}", dir.display())))?;
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| {
            PackageError::UnsafeBundle(format!("file name {name:?} in {prefix:?} is not UTF-8"))
        })?;
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        check_file_name(&rel)?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)
            .map_err(PackageError::io(format!("stat {}", path.display())))?;
        let (source, meta) = if meta.file_type().is_symlink() {
            let target = path
                .canonicalize()
                .map_err(|_| PackageError::UnsafeBundle(format!("{rel} is a dangling symlink")))?;
            if !target.starts_with(root) {
                return Err(PackageError::UnsafeBundle(format!(
                    "{rel} is a symlink pointing outside the bundle ({})",
                    target.display()
                )));
            }
            let tmeta = std::fs::metadata(&target)
                .map_err(PackageError::io(format!("stat {}", target.display())))?;
            if !tmeta.is_file() {
                return Err(PackageError::UnsafeBundle(format!(
                    "{rel} is a symlink to a folder; only file links are followed"
                )));
            }
            (target, tmeta)
        } else {
            (path, meta)
        };
        if meta.is_dir() {
            out.dirs.push(rel.clone());
            walk(root, &source, &rel, out)?;
        } else if meta.is_file() {
            // Packages carry the source date, not the time the file was copied here.
            let mtime = super::source_date::source_date();
            out.files.push(BundleFile {
                rel,
                source,
                size: meta.len(),
                mtime,
            });
        } else {
            return Err(PackageError::UnsafeBundle(format!(
                "{rel} is not a regular file or folder"
            )));
        }
    }
    Ok(())
}

/// UTC calendar fields of `t` (`year, month, day, hour, minute, second`), clamped to the
/// range a ZIP (DOS) timestamp can hold: 1980-01-01 … 2107-12-31.
pub fn utc_fields(t: SystemTime) -> (u16, u8, u8, u8, u8, u8) {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = secs.clamp(315_532_800, 4_354_819_199); // 1980-01-01 .. 2107-12-31T23:59:59
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), days since 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
    (
        year,
        month,
        day,
        (rem / 3600) as u8,
        (rem % 3600 / 60) as u8,
        (rem % 60) as u8,
    )
}

/// `(time, date)` in MS-DOS format (UTC, 2-second resolution), as ZIP headers store it.
pub(crate) fn dos_time_date(t: SystemTime) -> (u16, u16) {
    let (y, mo, d, h, mi, s) = utc_fields(t);
    let time = (u16::from(h) << 11) | (u16::from(mi) << 5) | u16::from(s / 2);
    let date = ((y - 1980) << 9) | (u16::from(mo) << 5) | u16::from(d);
    (time, date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_fields_match_known_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_074_096); // 2025-11-25T12:34:56Z
        assert_eq!(utc_fields(t), (2025, 11, 25, 12, 34, 56));
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_fields(leap), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc_fields(SystemTime::UNIX_EPOCH), (1980, 1, 1, 0, 0, 0));
    }
}
