//! The one time every package writes: `SOURCE_DATE_EPOCH` from the worker's environment,
//! else a fixed default, never the clock. ZIP and MSIX entries, the exe's PE timestamp and
//! the files makensis packs all carry it, so the same inputs give the same bytes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The environment variable (<https://reproducible-builds.org/specs/source-date-epoch/>).
pub(crate) const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// 2020-01-01T00:00:00Z: used when `SOURCE_DATE_EPOCH` is not set.
pub(crate) const DEFAULT_SOURCE_DATE: u64 = 1_577_836_800;
/// The latest time a ZIP (DOS) timestamp and a PE `TimeDateStamp` can both hold.
pub(crate) const MAX_SOURCE_DATE: u64 = u32::MAX as u64;
/// The earliest time a ZIP (DOS) timestamp can hold (1980-01-01).
pub(crate) const MIN_SOURCE_DATE: u64 = 315_532_800;

/// Parses a `SOURCE_DATE_EPOCH` value: whole seconds since 1970, 1980-01-01 … 2106-02-07.
pub(crate) fn parse_source_date(value: &str) -> Result<u64, String> {
    let secs: u64 = value.trim().parse().map_err(|_| {
        format!("{SOURCE_DATE_EPOCH}={value:?} is not a whole number of seconds since 1970")
    })?;
    if !(MIN_SOURCE_DATE..=MAX_SOURCE_DATE).contains(&secs) {
        return Err(format!(
            "{SOURCE_DATE_EPOCH}={secs} is outside {MIN_SOURCE_DATE}..={MAX_SOURCE_DATE} (1980-01-01 to 2106-02-07)"
        ));
    }
    Ok(secs)
}

/// Seconds since 1970 of the build's source date. An unusable value (rejected at startup by
/// the configuration check) falls back to the default rather than to the clock.
pub(crate) fn source_date_secs() -> u64 {
    std::env::var(SOURCE_DATE_EPOCH)
        .ok()
        .and_then(|v| parse_source_date(&v).ok())
        .unwrap_or(DEFAULT_SOURCE_DATE)
}

/// `source_date_secs` as a `SystemTime`.
pub fn source_date() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(source_date_secs())
}

/// Sets a file's modification time to the source date (makensis records file times).
pub(crate) fn pin_mtime(path: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_modified(source_date())
}

/// Pins every file under `dir` (recursively) to the source date.
pub(crate) fn pin_tree_mtimes(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            pin_tree_mtimes(&entry.path())?;
        } else if kind.is_file() {
            pin_mtime(&entry.path())?;
        }
    }
    Ok(())
}

/// Writes the source date into a PE file's COFF `TimeDateStamp` and recomputes its checksum
/// (after resource editing, which leaves both as the linker wrote them).
pub(crate) fn pin_pe_timestamp(path: &Path) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let mut dos = [0u8; 64];
    file.read_exact(&mut dos)
        .map_err(|_| "too short for a DOS header".to_string())?;
    if &dos[..2] != b"MZ" {
        return Err("no MZ signature".into());
    }
    let pe_offset = u64::from(u32::from_le_bytes(dos[60..64].try_into().expect("4 bytes")));
    let mut signature = [0u8; 4];
    file.seek(SeekFrom::Start(pe_offset))
        .and_then(|_| file.read_exact(&mut signature))
        .map_err(|_| "PE header out of range".to_string())?;
    if signature != *b"PE\0\0" {
        return Err("no PE signature".into());
    }
    // COFF header: Machine(2) NumberOfSections(2) TimeDateStamp(4)
    let stamp = source_date_secs() as u32;
    file.seek(SeekFrom::Start(pe_offset + 8))
        .and_then(|_| file.write_all(&stamp.to_le_bytes()))
        .map_err(|e| format!("cannot write the timestamp: {e}"))?;
    rewrite_checksum(&mut file)
}

fn rewrite_checksum(file: &mut File) -> Result<(), String> {
    let layout = crate::sign::pe::read_layout(file).map_err(|e| e.to_string())?;
    let checksum = crate::sign::pe::pe_checksum(file, layout.checksum_offset)
        .map_err(|e| format!("cannot read for the checksum: {e}"))?;
    file.seek(SeekFrom::Start(layout.checksum_offset))
        .and_then(|_| file.write_all(&checksum.to_le_bytes()))
        .map_err(|e| format!("cannot write the checksum: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_whole_seconds_in_range() {
        assert_eq!(parse_source_date(" 1700000000 "), Ok(1_700_000_000));
        assert!(parse_source_date("1.5").is_err());
        assert!(parse_source_date("-1").is_err());
        assert!(parse_source_date("12").is_err(), "before 1980");
        assert!(parse_source_date("99999999999").is_err());
    }
}
