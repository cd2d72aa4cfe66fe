//! The ZIP layer of an MSIX in MakeAppx's layout: local headers with the data-descriptor
//! flag and zeroed CRC/sizes, zip64 data descriptors, central-directory entries with a
//! zip64 extra field, then a zip64 end record, its locator and a classic end record.
//!
//! Every byte of the local records passes through a SHA-256 (the signature's AXPC digest),
//! and the central directory is produced as bytes so its digest (AXCD) can be taken
//! before it is written.

use crate::package::zip_end;
use sha2::{Digest, Sha256};
use std::io::{self, Write};

const VERSION: u16 = 45; // zip64
const FLAG_DATA_DESCRIPTOR: u16 = 0x0008;
pub(crate) const METHOD_STORED: u16 = 0;
pub(crate) const METHOD_DEFLATED: u16 = 8;

/// What the central directory needs to know about one written entry.
#[derive(Clone, Debug)]
pub(crate) struct EntryRecord {
    pub(crate) name: String,
    pub(crate) method: u16,
    pub(crate) flags: u16,
    pub(crate) dos_time: u16,
    pub(crate) dos_date: u16,
    pub(crate) crc32: u32,
    pub(crate) compressed: u64,
    pub(crate) uncompressed: u64,
    pub(crate) offset: u64,
}

/// A writer that counts bytes and hashes them (for the AXPC digest).
pub(crate) struct HashingWriter<W: Write> {
    inner: W,
    pub(crate) written: u64,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            written: 0,
            hasher: Sha256::new(),
        }
    }
    /// Digest of everything written so far (the hasher keeps running).
    pub(crate) fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Local header for an entry whose CRC and sizes follow in a data descriptor.
/// Returns its length (the block map's `LfhSize`).
pub(crate) fn write_local_header<W: Write>(
    w: &mut W,
    name: &str,
    method: u16,
    dos_time: u16,
    dos_date: u16,
) -> io::Result<u64> {
    let n = name.as_bytes();
    let mut h = Vec::with_capacity(30 + n.len());
    h.extend_from_slice(b"PK\x03\x04");
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&FLAG_DATA_DESCRIPTOR.to_le_bytes());
    h.extend_from_slice(&method.to_le_bytes());
    h.extend_from_slice(&dos_time.to_le_bytes());
    h.extend_from_slice(&dos_date.to_le_bytes());
    h.extend_from_slice(&[0u8; 12]); // crc, compressed, uncompressed: in the descriptor
    h.extend_from_slice(&(n.len() as u16).to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(n);
    w.write_all(&h)?;
    Ok(h.len() as u64)
}

/// Zip64 data descriptor: signature, CRC, 8-byte compressed and uncompressed sizes.
pub(crate) fn write_data_descriptor<W: Write>(
    w: &mut W,
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
) -> io::Result<()> {
    let mut d = Vec::with_capacity(24);
    d.extend_from_slice(b"PK\x07\x08");
    d.extend_from_slice(&crc32.to_le_bytes());
    d.extend_from_slice(&compressed.to_le_bytes());
    d.extend_from_slice(&uncompressed.to_le_bytes());
    w.write_all(&d)
}

/// A complete stored entry without data descriptor (used for `AppxSignature.p7x`).
pub(crate) fn write_plain_stored<W: Write>(
    w: &mut W,
    name: &str,
    data: &[u8],
    dos_time: u16,
    dos_date: u16,
    offset: u64,
) -> io::Result<EntryRecord> {
    let n = name.as_bytes();
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let mut h = Vec::with_capacity(30 + n.len());
    h.extend_from_slice(b"PK\x03\x04");
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&METHOD_STORED.to_le_bytes());
    h.extend_from_slice(&dos_time.to_le_bytes());
    h.extend_from_slice(&dos_date.to_le_bytes());
    h.extend_from_slice(&crc.sum().to_le_bytes());
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    h.extend_from_slice(&(n.len() as u16).to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(n);
    w.write_all(&h)?;
    w.write_all(data)?;
    Ok(EntryRecord {
        name: name.to_string(),
        method: METHOD_STORED,
        flags: 0,
        dos_time,
        dos_date,
        crc32: crc.sum(),
        compressed: data.len() as u64,
        uncompressed: data.len() as u64,
        offset,
    })
}

/// Central directory for `entries` starting at `cd_offset`, followed by the zip64 end
/// record, its locator and the end record (sizes/offsets deferred to zip64).
pub(crate) fn central_directory(entries: &[EntryRecord], cd_offset: u64) -> Vec<u8> {
    let mut cd = Vec::new();
    for e in entries {
        let n = e.name.as_bytes();
        cd.extend_from_slice(b"PK\x01\x02");
        cd.extend_from_slice(&VERSION.to_le_bytes()); // made by
        cd.extend_from_slice(&VERSION.to_le_bytes()); // needed
        cd.extend_from_slice(&e.flags.to_le_bytes());
        cd.extend_from_slice(&e.method.to_le_bytes());
        cd.extend_from_slice(&e.dos_time.to_le_bytes());
        cd.extend_from_slice(&e.dos_date.to_le_bytes());
        cd.extend_from_slice(&e.crc32.to_le_bytes());
        cd.extend_from_slice(&u32::MAX.to_le_bytes());
        cd.extend_from_slice(&u32::MAX.to_le_bytes());
        cd.extend_from_slice(&(n.len() as u16).to_le_bytes());
        cd.extend_from_slice(&28u16.to_le_bytes()); // extra length
        cd.extend_from_slice(&0u16.to_le_bytes()); // comment
        cd.extend_from_slice(&0u16.to_le_bytes()); // disk
        cd.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
        cd.extend_from_slice(&0u32.to_le_bytes()); // external attrs
        cd.extend_from_slice(&u32::MAX.to_le_bytes());
        cd.extend_from_slice(n);
        cd.extend_from_slice(&1u16.to_le_bytes()); // zip64 extra
        cd.extend_from_slice(&24u16.to_le_bytes());
        cd.extend_from_slice(&e.uncompressed.to_le_bytes());
        cd.extend_from_slice(&e.compressed.to_le_bytes());
        cd.extend_from_slice(&e.offset.to_le_bytes());
    }
    let end = end_records(entries.len() as u64, cd.len() as u64, cd_offset);
    cd.extend_from_slice(&end);
    cd
}

/// The end of a central directory of `count` entries, `cd_size` bytes at `cd_offset`: the
/// zip64 end record, its locator and the classic end record (all its fields deferred to
/// zip64). Also what the package reader appends when it recomputes the AXCD digest.
pub(crate) fn end_records(count: u64, cd_size: u64, cd_offset: u64) -> Vec<u8> {
    let mut end = zip_end::zip64_end(VERSION, VERSION, count, cd_size, cd_offset);
    end.extend_from_slice(&zip_end::classic_end(u16::MAX, u32::MAX, u32::MAX));
    end
}
