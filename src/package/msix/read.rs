//! Reading an existing MSIX back for its signature check: the package digests a signature
//! covers, computed from the file by the rules the writer follows ([`super::write_msix`]):
//!
//! - AXPC: every byte before `AppxSignature.p7x`'s local record (the local records of all
//!   other entries; the signature entry must be the last one before the central directory,
//!   as the writer, MakeAppx and signtool place it); unsigned, everything before the
//!   central directory;
//! - AXCD: the central directory as it was without the signature entry: the stored entries
//!   of every other part, ended by [`end_records`] (the writer's own end records) for one
//!   entry less, at the signature entry's offset;
//! - AXCT, AXBM (and AXCI when `AppxMetadata/CodeIntegrity.cat` exists): the uncompressed
//!   `[Content_Types].xml`, `AppxBlockMap.xml` (and catalog).
//!
//! Also returns the PKCS#7 stored in `AppxSignature.p7x` (after its `PKCX` prefix). Streams
//! the file: memory holds the central directory, the signature and copy buffers.

use super::zip64::end_records;
use super::AppxDigests;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

/// A central directory larger than this is refused (ours hold ~100 bytes per entry).
const MAX_CENTRAL_DIRECTORY: u64 = 64 << 20;
/// A signature (certificate chain and timestamp included) larger than this is refused.
const MAX_SIGNATURE: u64 = 16 << 20;
const SIGNATURE_PART: &str = "AppxSignature.p7x";
const CONTENT_TYPES_PART: &str = "[Content_Types].xml";
const BLOCK_MAP_PART: &str = "AppxBlockMap.xml";
const CODE_INTEGRITY_PART: &str = "AppxMetadata/CodeIntegrity.cat";

/// What a package's signature check needs.
#[derive(Clone, Debug)]
pub(crate) struct PackageSignatureInput {
    /// The digests of the package as it is (what a valid signature must have signed).
    pub(crate) digests: AppxDigests,
    /// The DER PKCS#7 of `AppxSignature.p7x`; `None` for an unsigned package.
    pub(crate) pkcs7_der: Option<Vec<u8>>,
}

/// One central-directory entry.
#[derive(Clone, Debug)]
pub(super) struct CentralEntry {
    /// The part name as stored (percent-encoded, `/`-separated).
    pub(super) name: String,
    flags: u16,
    method: u16,
    compressed: u64,
    local_offset: u64,
    /// Where the entry sits in the central directory bytes.
    raw: Range<usize>,
}

/// Reads `path`'s package digests and signature. Errors name what is malformed.
pub(crate) fn read_signature_input(path: &Path) -> Result<PackageSignatureInput, String> {
    let PackageFile {
        mut file,
        cd,
        cd_offset,
        entries,
    } = open_package(path)?;
    let find = |part: &str| -> Result<Option<&CentralEntry>, String> {
        let mut found = entries.iter().filter(|e| e.name.eq_ignore_ascii_case(part));
        match (found.next(), found.next()) {
            (_, Some(_)) => Err(format!("the package holds {part} twice")),
            (one, None) => Ok(one),
        }
    };
    let required =
        |part: &str| find(part)?.ok_or_else(|| format!("the package has no {part} (not an MSIX?)"));
    let signature = find(SIGNATURE_PART)?;
    let (records_end, pkcs7_der) = match signature {
        Some(sig) => {
            let (data_start, data) = signature_bytes(&mut file, sig)?;
            if data_start + sig.compressed != cd_offset {
                return Err(format!(
                    "{SIGNATURE_PART} is not the last entry before the central directory"
                ));
            }
            (sig.local_offset, Some(data))
        }
        None => (cd_offset, None),
    };
    let axpc = hash_range(&mut file, 0, records_end)?;
    let mut unsigned_cd = Sha256::new();
    let mut unsigned_cd_size = 0u64;
    let is_signature = |e: &CentralEntry| signature.is_some_and(|s| s.raw == e.raw);
    for e in entries.iter().filter(|e| !is_signature(e)) {
        unsigned_cd.update(&cd[e.raw.clone()]);
        unsigned_cd_size += e.raw.len() as u64;
    }
    let unsigned_count = entries.len() as u64 - u64::from(signature.is_some());
    unsigned_cd.update(end_records(unsigned_count, unsigned_cd_size, records_end));
    let digests = AppxDigests {
        axpc,
        axcd: unsigned_cd.finalize().into(),
        axct: hash_part(&mut file, required(CONTENT_TYPES_PART)?)?,
        axbm: hash_part(&mut file, required(BLOCK_MAP_PART)?)?,
        axci: find(CODE_INTEGRITY_PART)?
            .map(|e| hash_part(&mut file, e))
            .transpose()?,
    };
    Ok(PackageSignatureInput { digests, pkcs7_der })
}

/// A package file opened for reading, with its central directory.
pub(super) struct PackageFile {
    pub(super) file: File,
    cd: Vec<u8>,
    cd_offset: u64,
    pub(super) entries: Vec<CentralEntry>,
}

/// Opens `path` and reads its central directory.
pub(super) fn open_package(path: &Path) -> Result<PackageFile, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let (cd_offset, cd_size, count) = find_central_directory(&mut file, len)?;
    if cd_size > MAX_CENTRAL_DIRECTORY || cd_offset.checked_add(cd_size).is_none_or(|e| e > len) {
        return Err("the central directory is out of bounds".into());
    }
    let mut cd = vec![0u8; cd_size as usize];
    read_at(&mut file, cd_offset, &mut cd)?;
    let entries = parse_central_directory(&cd, count)?;
    Ok(PackageFile {
        file,
        cd,
        cd_offset,
        entries,
    })
}

fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> Result<(), String> {
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| format!("reading {} bytes at {offset}: {e}", buf.len()))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `(offset, size, entry count)` of the central directory, from the zip64 end record when
/// the classic one points at it.
fn find_central_directory(file: &mut File, len: u64) -> Result<(u64, u64, u64), String> {
    let tail_len = len.min(22 + 0xFFFF + 20);
    let mut tail = vec![0u8; tail_len as usize];
    read_at(file, len - tail_len, &mut tail)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
        .ok_or("no end of central directory record (not a ZIP)")?;
    if eocd >= 20 && tail[eocd - 20..].starts_with(b"PK\x06\x07") {
        let zip64_end = u64_at(&tail, eocd - 20 + 8);
        let mut record = [0u8; 56];
        if zip64_end.checked_add(56).is_none_or(|end| end > len) {
            return Err("the zip64 end record is out of bounds".into());
        }
        read_at(file, zip64_end, &mut record)?;
        if !record.starts_with(b"PK\x06\x06") {
            return Err("the zip64 end record locator points at something else".into());
        }
        return Ok((
            u64_at(&record, 48),
            u64_at(&record, 40),
            u64_at(&record, 32),
        ));
    }
    Ok((
        u64::from(u32_at(&tail, eocd + 16)),
        u64::from(u32_at(&tail, eocd + 12)),
        u64::from(u16_at(&tail, eocd + 10)),
    ))
}

fn parse_central_directory(cd: &[u8], count: u64) -> Result<Vec<CentralEntry>, String> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    while entries.len() as u64 != count {
        let bad = || format!("central directory entry {} is malformed", entries.len());
        let fixed = cd.get(at..at + 46).ok_or_else(bad)?;
        if !fixed.starts_with(b"PK\x01\x02") {
            return Err(bad());
        }
        let (name_len, extra_len, comment_len) = (
            u16_at(fixed, 28) as usize,
            u16_at(fixed, 30) as usize,
            u16_at(fixed, 32) as usize,
        );
        let end = at + 46 + name_len + extra_len + comment_len;
        let name = cd.get(at + 46..at + 46 + name_len).ok_or_else(bad)?;
        let extra = cd.get(at + 46 + name_len..at + 46 + name_len + extra_len);
        let extra = extra.ok_or_else(bad)?;
        let mut compressed = u64::from(u32_at(fixed, 20));
        let mut local_offset = u64::from(u32_at(fixed, 42));
        let zip64 = zip64_extra(extra);
        let mut next = zip64.iter().copied();
        if u32_at(fixed, 24) == u32::MAX {
            next.next().ok_or_else(bad)?;
        }
        if compressed == u64::from(u32::MAX) {
            compressed = next.next().ok_or_else(bad)?;
        }
        if local_offset == u64::from(u32::MAX) {
            local_offset = next.next().ok_or_else(bad)?;
        }
        entries.push(CentralEntry {
            name: String::from_utf8_lossy(name).into_owned(),
            flags: u16_at(fixed, 8),
            method: u16_at(fixed, 10),
            compressed,
            local_offset,
            raw: at..end,
        });
        at = end;
    }
    Ok(entries)
}

/// The 8-byte values of the zip64 extra field (id 1), in order.
fn zip64_extra(mut extra: &[u8]) -> Vec<u64> {
    while extra.len() >= 4 {
        let (id, size) = (u16_at(extra, 0), u16_at(extra, 2) as usize);
        let Some(body) = extra.get(4..4 + size) else {
            break;
        };
        if id == 1 {
            return body.chunks_exact(8).map(|c| u64_at(c, 0)).collect();
        }
        extra = &extra[4 + size..];
    }
    Vec::new()
}

/// Where the entry's data starts (after its local header).
fn data_start(file: &mut File, entry: &CentralEntry) -> Result<u64, String> {
    let mut header = [0u8; 30];
    read_at(file, entry.local_offset, &mut header)?;
    if !header.starts_with(b"PK\x03\x04") {
        return Err(format!("{}: no local header at its offset", entry.name));
    }
    Ok(entry.local_offset + 30 + u64::from(u16_at(&header, 26)) + u64::from(u16_at(&header, 28)))
}

/// The signature entry's data start and its PKCS#7 (without `PKCX`).
fn signature_bytes(file: &mut File, sig: &CentralEntry) -> Result<(u64, Vec<u8>), String> {
    if sig.method != 0 || sig.flags & 0x0008 != 0 {
        return Err(format!(
            "{SIGNATURE_PART} must be stored, without a data descriptor"
        ));
    }
    if sig.compressed > MAX_SIGNATURE {
        return Err(format!("{SIGNATURE_PART} is larger than 16 MiB"));
    }
    let start = data_start(file, sig)?;
    let mut data = vec![0u8; sig.compressed as usize];
    read_at(file, start, &mut data)?;
    match data.strip_prefix(b"PKCX") {
        Some(der) => Ok((start, der.to_vec())),
        None => Err(format!("{SIGNATURE_PART} does not start with PKCX")),
    }
}

fn hash_range(file: &mut File, start: u64, end: u64) -> Result<[u8; 32], String> {
    file.seek(SeekFrom::Start(start))
        .map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    let copied = std::io::copy(&mut file.take(end - start), &mut hasher)
        .map_err(|e| format!("hashing the package: {e}"))?;
    if copied != end - start {
        return Err("the package is shorter than its central directory says".into());
    }
    Ok(hasher.finalize().into())
}

/// SHA-256 of a part's uncompressed content.
fn hash_part(file: &mut File, entry: &CentralEntry) -> Result<[u8; 32], String> {
    let (_, mut content) = part_reader(file, entry)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut content, &mut hasher)
        .map_err(|e| format!("{} cannot be read: {e}", entry.name))?;
    Ok(hasher.finalize().into())
}

/// The length of a part's local header and a reader of its uncompressed content.
pub(super) fn part_reader<'a>(
    file: &'a mut File,
    entry: &CentralEntry,
) -> Result<(u64, Box<dyn Read + 'a>), String> {
    let start = data_start(file, entry)?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| e.to_string())?;
    let raw = file.take(entry.compressed);
    let content: Box<dyn Read + 'a> = match entry.method {
        0 => Box::new(raw),
        8 => Box::new(flate2::read::DeflateDecoder::new(raw)),
        m => {
            return Err(format!(
                "{}: unsupported compression method {m}",
                entry.name
            ))
        }
    };
    Ok((start - entry.local_offset, content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::msix::test_package::pending;

    #[test]
    fn an_unsigned_package_reads_back_the_writers_digests() {
        let dir = tempfile::tempdir().unwrap();
        let pending = pending(dir.path(), false);
        let written = pending.digests().clone();
        let path = pending.finish_unsigned().unwrap();
        let read = read_signature_input(&path).unwrap();
        assert_eq!(read.digests, written);
        assert!(read.pkcs7_der.is_none());
    }

    #[test]
    fn a_signed_package_reads_back_the_digests_it_was_signed_over() {
        let dir = tempfile::tempdir().unwrap();
        let pending = pending(dir.path(), true);
        let written = pending.digests().clone();
        let der = [0x30, 0x03, 0x02, 0x01, 0x07];
        let path = pending.finish_signed(&der).unwrap();
        let read = read_signature_input(&path).unwrap();
        assert_eq!(read.digests, written, "one rule for writing and reading");
        assert_eq!(read.digests.to_blob(), written.to_blob());
        assert_eq!(read.pkcs7_der.as_deref(), Some(der.as_slice()));

        // One changed byte in the first entry's data changes AXPC and nothing else.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let changed = read_signature_input(&path).unwrap().digests;
        assert_ne!(changed.axpc, written.axpc);
        assert_eq!(changed.axcd, written.axcd);
        assert_eq!(changed.axbm, written.axbm);
    }

    #[test]
    fn any_changed_byte_of_the_central_directory_is_an_error_or_a_result_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = pending(dir.path(), true)
            .finish_signed(&[0x30, 0x03, 0x02, 0x01, 0x07])
            .unwrap();
        let good = std::fs::read(&path).unwrap();
        let cd_offset = open_package(&path).unwrap().cd_offset as usize;
        let hostile = dir.path().join("hostile.msix");
        for at in cd_offset..good.len() {
            for value in [0xFF, good[at] ^ 0x80] {
                let mut bytes = good.clone();
                bytes[at] = value;
                std::fs::write(&hostile, &bytes).unwrap();
                let read = std::panic::catch_unwind(|| read_signature_input(&hostile));
                assert!(read.is_ok(), "reading panicked with byte {at} = {value:#x}");
                let checked = std::panic::catch_unwind(|| {
                    super::super::blockmap_check::check_block_map(&hostile)
                });
                assert!(checked.is_ok(), "the block map check panicked at {at}");
            }
        }
    }

    #[test]
    fn what_is_not_a_package_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.msix");
        std::fs::write(&path, b"not a zip at all, just some words").unwrap();
        let err = read_signature_input(&path).unwrap_err();
        assert!(err.contains("not a ZIP"), "{err}");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file("a.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, b"hello").unwrap();
        zip.finish().unwrap();
        let err = read_signature_input(&path).unwrap_err();
        assert!(err.contains("no [Content_Types].xml"), "{err}");
    }
}
