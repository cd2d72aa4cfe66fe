//! The PE side of Authenticode: header layout, the streaming Authenticode digest, embedding
//! the signature as a `WIN_CERTIFICATE` and the PE checksum.
//!
//! Everything streams through a fixed 1 MiB buffer: memory does not grow with the file size.
//! The digest is the "flat" one osslsigncode and Windows compute: every byte from the start of
//! the file to the certificate table (or the end), except the 4-byte checksum field and the
//! 8-byte security directory entry, followed by the zero padding that aligns the table to 8.

use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

const BUF_SIZE: usize = 1 << 20;
/// `WIN_CERT_REVISION_2_0`
const WIN_CERT_REVISION: u16 = 0x0200;
/// `WIN_CERT_TYPE_PKCS_SIGNED_DATA`
const WIN_CERT_TYPE_PKCS: u16 = 0x0002;
/// The smallest file accepted: PE headers are padded to the 512-byte file alignment, and a
/// certificate table is refused below it (so a shorter file could not be signed and read back).
const MIN_PE_LEN: u64 = 512;
/// A certificate table bigger than this is not ours and not plausible.
const MAX_CERT_TABLE: u64 = 16 << 20;

/// Where the fields that Authenticode skips live in one PE file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeLayout {
    /// Length of the whole file, in bytes.
    pub(crate) file_len: u64,
    /// File offset of the optional header's `CheckSum` field.
    pub(crate) checksum_offset: u64,
    /// File offset of the security (certificate table) data directory entry.
    pub(crate) security_dir_offset: u64,
    /// The existing certificate table `(offset, size)`, if the file is already signed.
    pub(crate) cert_table: Option<(u64, u64)>,
}

impl PeLayout {
    /// Length of the content that is hashed (the file without its certificate table).
    pub(crate) fn content_len(&self) -> u64 {
        self.cert_table.map_or(self.file_len, |(offset, _)| offset)
    }

    /// Zero bytes appended after the content so the certificate table starts 8-aligned.
    pub(crate) fn padding(&self) -> u64 {
        (8 - self.content_len() % 8) % 8
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Why a file's PE headers or certificate table cannot be used. The messages are plain
/// sentences for a `SignError`.
#[derive(Debug, thiserror::Error)]
pub enum PeError {
    /// Not a PE image, or one whose headers or certificate table this signer refuses.
    #[error("{0}")]
    Malformed(&'static str),
    /// The file is too short to hold PE headers.
    #[error("file is {len} bytes, smaller than the {MIN_PE_LEN} bytes of PE headers")]
    TooSmall {
        /// The file's length, in bytes.
        len: u64,
    },
    /// The file carries no signature.
    #[error("file is not signed (no certificate table)")]
    Unsigned,
    /// Reading or writing the file failed.
    #[error("{action}: {source}")]
    Io {
        /// What failed, e.g. `cannot seek`.
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io_error(action: &'static str) -> impl FnOnce(std::io::Error) -> PeError {
    move |source| PeError::Io { action, source }
}

/// Reads and checks the headers.
pub fn read_layout(file: &mut File) -> Result<PeLayout, PeError> {
    let file_len = file.metadata().map_err(io_error("cannot stat file"))?.len();
    let mut dos = [0u8; 64];
    file.seek(SeekFrom::Start(0))
        .map_err(io_error("cannot seek"))?;
    file.read_exact(&mut dos)
        .map_err(|_| PeError::Malformed("file is too small to be a PE image"))?;
    if &dos[..2] != b"MZ" {
        return Err(PeError::Malformed("not a PE image (no MZ header)"));
    }
    if file_len < MIN_PE_LEN {
        return Err(PeError::TooSmall { len: file_len });
    }
    let pe_offset = u64::from(u32_at(&dos, 0x3c).unwrap_or(0));
    // signature + COFF header + the optional header up to and including the data directories
    let mut header = vec![0u8; 24 + 240];
    if pe_offset + header.len() as u64 > file_len {
        return Err(PeError::Malformed("PE header lies outside the file"));
    }
    file.seek(SeekFrom::Start(pe_offset))
        .map_err(io_error("cannot seek"))?;
    file.read_exact(&mut header)
        .map_err(io_error("cannot read PE header"))?;
    if &header[..4] != b"PE\0\0" {
        return Err(PeError::Malformed("not a PE image (no PE signature)"));
    }
    let optional = 24usize;
    let (rva_count_at, dirs_at) = match u16_at(&header, optional) {
        Some(0x10b) => (optional + 92, optional + 96),
        Some(0x20b) => (optional + 108, optional + 112),
        _ => {
            return Err(PeError::Malformed(
                "unknown optional header magic (neither PE32 nor PE32+)",
            ))
        }
    };
    let rva_count = u32_at(&header, rva_count_at).unwrap_or(0);
    if rva_count < 5 {
        return Err(PeError::Malformed(
            "PE image has no security directory entry",
        ));
    }
    let security_at = dirs_at + 4 * 8;
    let table_offset = u64::from(u32_at(&header, security_at).unwrap_or(0));
    let table_size = u64::from(u32_at(&header, security_at + 4).unwrap_or(0));
    let cert_table = match (table_offset, table_size) {
        (0, 0) => None,
        (offset, size) => {
            if offset + size != file_len || size > MAX_CERT_TABLE || offset < 512 {
                return Err(PeError::Malformed(
                    "existing certificate table is not at the end of the file",
                ));
            }
            Some((offset, size))
        }
    };
    Ok(PeLayout {
        file_len,
        checksum_offset: pe_offset + optional as u64 + 64,
        security_dir_offset: pe_offset + security_at as u64,
        cert_table,
    })
}

/// Streams `len` bytes from the start of `file` into `sink(offset, bytes)`, with the byte
/// ranges in `skip` (sorted, non-overlapping) left out.
fn stream_excluding(
    file: &mut File,
    len: u64,
    skip: &[(u64, u64)],
    mut sink: impl FnMut(u64, &[u8]),
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut pos = 0u64;
    while pos < len {
        let want = (len - pos).min(BUF_SIZE as u64) as usize;
        file.read_exact(&mut buf[..want])?;
        let chunk_end = pos + want as u64;
        let mut from = pos;
        for &(start, end) in skip {
            if end <= from || start >= chunk_end {
                continue;
            }
            if start > from {
                sink(from, &buf[(from - pos) as usize..(start - pos) as usize]);
            }
            from = end.min(chunk_end);
        }
        if from < chunk_end {
            sink(from, &buf[(from - pos) as usize..want]);
        }
        pos = chunk_end;
    }
    Ok(())
}

/// The PE checksum accumulator: little-endian 16-bit words summed by file position, so
/// pieces can be added in any order; fields being rewritten are simply left out.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WordSum(u64);

impl WordSum {
    /// Adds `bytes` found at file position `offset`.
    pub(crate) fn add(&mut self, offset: u64, bytes: &[u8]) {
        let mut bytes = bytes;
        if offset % 2 == 1 {
            if let Some((&high, rest)) = bytes.split_first() {
                self.0 += u64::from(high) << 8;
                bytes = rest;
            }
        }
        let mut words = bytes.chunks_exact(2);
        for w in &mut words {
            self.0 += u64::from(u16::from_le_bytes([w[0], w[1]]));
        }
        if let [low] = words.remainder() {
            self.0 += u64::from(*low);
        }
    }

    /// Folds the carries and adds the file length.
    pub(crate) fn finish(self, file_len: u64) -> u32 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        (sum as u32).wrapping_add(file_len as u32)
    }
}

/// One read of the content: its Authenticode digest (with the alignment padding) and the
/// checksum word sum of the same bytes (checksum field and security entry left out).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ContentScan {
    /// Authenticode SHA-256 digest of the content.
    pub(crate) digest: [u8; 32],
    sum: WordSum,
}

fn skipped_fields(layout: &PeLayout) -> [(u64, u64); 2] {
    let (c, s) = (layout.checksum_offset, layout.security_dir_offset);
    let (a, b) = ((c, c + 4), (s, s + 8));
    if a.0 <= b.0 {
        [a, b]
    } else {
        [b, a]
    }
}

/// Reads the content once for the digest and the checksum sum.
pub(crate) fn scan_content(file: &mut File, layout: &PeLayout) -> std::io::Result<ContentScan> {
    let mut hasher = Sha256::new();
    let mut sum = WordSum::default();
    stream_excluding(
        file,
        layout.content_len(),
        &skipped_fields(layout),
        |offset, b| {
            hasher.update(b);
            sum.add(offset, b);
        },
    )?;
    hasher.update(&[0u8; 8][..layout.padding() as usize]);
    Ok(ContentScan {
        digest: hasher.finalize().into(),
        sum,
    })
}

/// SHA-256 Authenticode digest of the file as it will be once padded for signing.
pub fn authenticode_digest(file: &mut File, layout: &PeLayout) -> std::io::Result<[u8; 32]> {
    Ok(scan_content(file, layout)?.digest)
}

/// The PE checksum of the whole file (checksum field read as zero), in one pass.
pub(crate) fn pe_checksum(file: &mut File, checksum_offset: u64) -> std::io::Result<u32> {
    let len = file.metadata()?.len();
    let mut sum = WordSum::default();
    stream_excluding(
        file,
        len,
        &[(checksum_offset, checksum_offset + 4)],
        |o, b| sum.add(o, b),
    )?;
    Ok(sum.finish(len))
}

/// Replaces any certificate table with `pkcs7` (a DER ContentInfo) wrapped in a
/// `WIN_CERTIFICATE`, points the security directory at it and fixes the checksum.
/// `scan` is the [`scan_content`] of the same file, so the checksum needs no second read.
pub(crate) fn embed_signature(
    path: &Path,
    layout: &PeLayout,
    scan: &ContentScan,
    pkcs7: &[u8],
) -> std::io::Result<()> {
    let table_offset = layout.content_len() + layout.padding();
    let padded_len = pkcs7.len().div_ceil(8) * 8;
    let entry_len = 8 + padded_len as u64;
    let (Ok(table_offset32), Ok(entry_len32)) =
        (u32::try_from(table_offset), u32::try_from(entry_len))
    else {
        return Err(std::io::Error::other(
            "PE image too large for a certificate table",
        ));
    };
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    file.set_len(layout.content_len())?;
    file.seek(SeekFrom::End(0))?;
    let mut tail = Vec::with_capacity(layout.padding() as usize + 8 + padded_len);
    tail.resize(layout.padding() as usize, 0);
    tail.extend_from_slice(&entry_len32.to_le_bytes());
    tail.extend_from_slice(&WIN_CERT_REVISION.to_le_bytes());
    tail.extend_from_slice(&WIN_CERT_TYPE_PKCS.to_le_bytes());
    tail.extend_from_slice(pkcs7);
    tail.resize(tail.len() + padded_len - pkcs7.len(), 0);
    file.write_all(&tail)?;
    file.seek(SeekFrom::Start(layout.security_dir_offset))?;
    let mut entry = [0u8; 8];
    entry[..4].copy_from_slice(&table_offset32.to_le_bytes());
    entry[4..].copy_from_slice(&entry_len32.to_le_bytes());
    file.write_all(&entry)?;
    let mut sum = scan.sum;
    sum.add(layout.security_dir_offset, &entry);
    sum.add(layout.content_len(), &tail);
    let checksum = sum.finish(table_offset + entry_len);
    file.seek(SeekFrom::Start(layout.checksum_offset))?;
    file.write_all(&checksum.to_le_bytes())?;
    file.flush()
}

/// Reads the PKCS#7 blob of the (first) `WIN_CERTIFICATE` of a signed file.
pub(crate) fn read_signature(file: &mut File, layout: &PeLayout) -> Result<Vec<u8>, PeError> {
    let Some((offset, size)) = layout.cert_table else {
        return Err(PeError::Unsigned);
    };
    let mut table = vec![0u8; size as usize];
    file.seek(SeekFrom::Start(offset))
        .map_err(io_error("cannot seek"))?;
    file.read_exact(&mut table)
        .map_err(io_error("cannot read certificate table"))?;
    let entry_len = u32_at(&table, 0).unwrap_or(0) as usize;
    if entry_len < 8 || entry_len > table.len() {
        return Err(PeError::Malformed("malformed WIN_CERTIFICATE length"));
    }
    if u16_at(&table, 4) != Some(WIN_CERT_REVISION) || u16_at(&table, 6) != Some(WIN_CERT_TYPE_PKCS)
    {
        return Err(PeError::Malformed(
            "WIN_CERTIFICATE is not a revision 2 PKCS#7 entry",
        ));
    }
    table.truncate(entry_len);
    table.drain(..8);
    Ok(table)
}

/// The checksum stored in the header.
pub(crate) fn stored_checksum(file: &mut File, layout: &PeLayout) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    file.seek(SeekFrom::Start(layout.checksum_offset))?;
    file.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests;
