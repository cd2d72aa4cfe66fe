//! A streaming ZIP writer for the portable archive: entries are written as their packed
//! chunks arrive (already deflated elsewhere, see [`super::deflate_pool`]), then the local
//! header is patched with the CRC and sizes (the output is a seekable file), so no data
//! descriptors are needed and every ZIP reader accepts the archive. Zip64 fields appear
//! only where a size, offset or count needs them.

use super::zip_end;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

/// ZIP compression method 0: stored.
pub(crate) const METHOD_STORED: u16 = 0;
/// ZIP compression method 8: deflated.
pub(crate) const METHOD_DEFLATED: u16 = 8;
const FLAG_UTF8: u16 = 0x0800;
const MADE_BY_UNIX: u16 = (3 << 8) | 45;
/// Files at least this large get a zip64 extra field in their local header.
const ZIP64_LOCAL_FROM: u64 = 0xF000_0000;
const U32_MAX: u64 = u32::MAX as u64;
const U16_MAX: u64 = u16::MAX as u64;

struct CentralEntry {
    name: Vec<u8>,
    method: u16,
    flags: u16,
    dos: (u16, u16),
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
    offset: u64,
    external_attrs: u32,
}

struct OpenEntry {
    header_offset: u64,
    data_start: u64,
    zip64_local: bool,
    crc: flate2::Crc,
    uncompressed: u64,
}

/// A ZIP being written to a file.
pub(crate) struct ZipStream {
    w: BufWriter<File>,
    pos: u64,
    entries: Vec<CentralEntry>,
    open: Option<OpenEntry>,
}

impl ZipStream {
    /// Creates (or truncates) the ZIP file at `path`.
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        Ok(ZipStream {
            w: BufWriter::with_capacity(256 * 1024, File::create(path)?),
            pos: 0,
            entries: Vec::new(),
            open: None,
        })
    }

    /// A folder entry (`name` ends with `/`).
    pub(crate) fn add_directory(
        &mut self,
        name: &str,
        dos: (u16, u16),
        mode: u32,
    ) -> io::Result<()> {
        self.begin_file(name, METHOD_STORED, dos, mode | 0o040000, 0)?;
        self.end_file()?;
        let last = self.entries.last_mut().expect("entry just written");
        last.external_attrs |= 0x10; // MS-DOS directory attribute
        Ok(())
    }

    /// Starts an entry; `size_hint` (the source file's size) decides whether the local
    /// header needs zip64 fields.
    pub(crate) fn begin_file(
        &mut self,
        name: &str,
        method: u16,
        dos: (u16, u16),
        mode: u32,
        size_hint: u64,
    ) -> io::Result<()> {
        if self.open.is_some() {
            return Err(io::Error::other("previous ZIP entry not finished"));
        }
        let zip64_local = size_hint >= ZIP64_LOCAL_FROM;
        let name = name.as_bytes().to_vec();
        let flags = if name.is_ascii() { 0 } else { FLAG_UTF8 };
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        h.extend_from_slice(b"PK\x03\x04");
        h.extend_from_slice(&(if zip64_local { 45u16 } else { 20 }).to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&method.to_le_bytes());
        h.extend_from_slice(&dos.0.to_le_bytes());
        h.extend_from_slice(&dos.1.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes()); // crc: patched
        let placeholder = if zip64_local { u32::MAX } else { 0 };
        h.extend_from_slice(&placeholder.to_le_bytes());
        h.extend_from_slice(&placeholder.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(if zip64_local { 20u16 } else { 0 }).to_le_bytes());
        h.extend_from_slice(&name);
        if zip64_local {
            h.extend_from_slice(&1u16.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&[0u8; 16]); // sizes: patched
        }
        let header_offset = self.pos;
        self.put(&h)?;
        self.entries.push(CentralEntry {
            name,
            method,
            flags,
            dos,
            crc32: 0,
            compressed: 0,
            uncompressed: 0,
            offset: header_offset,
            external_attrs: mode << 16,
        });
        self.open = Some(OpenEntry {
            header_offset,
            data_start: self.pos,
            zip64_local,
            crc: flate2::Crc::new(),
            uncompressed: 0,
        });
        Ok(())
    }

    /// Appends packed bytes of the open entry: `raw_len` uncompressed bytes with `crc`.
    pub(crate) fn write_chunk(
        &mut self,
        bytes: &[u8],
        raw_len: usize,
        crc: &flate2::Crc,
    ) -> io::Result<()> {
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| io::Error::other("no ZIP entry open"))?;
        open.crc.combine(crc);
        open.uncompressed += raw_len as u64;
        self.put(bytes)
    }

    /// Finishes the open entry: patches its local header with the CRC and sizes.
    pub(crate) fn end_file(&mut self) -> io::Result<()> {
        let open = self
            .open
            .take()
            .ok_or_else(|| io::Error::other("no ZIP entry open"))?;
        let compressed = self.pos - open.data_start;
        if !open.zip64_local && (compressed >= U32_MAX || open.uncompressed >= U32_MAX) {
            return Err(io::Error::other(
                "a file grew past 4 GiB while it was being packed",
            ));
        }
        let crc32 = open.crc.sum();
        let name_len = self.entries.last().map_or(0, |e| e.name.len() as u64);
        self.w.seek(SeekFrom::Start(open.header_offset + 14))?;
        self.w.write_all(&crc32.to_le_bytes())?;
        if open.zip64_local {
            self.w
                .seek(SeekFrom::Start(open.header_offset + 30 + name_len + 4))?;
            self.w.write_all(&open.uncompressed.to_le_bytes())?;
            self.w.write_all(&compressed.to_le_bytes())?;
        } else {
            self.w.write_all(&(compressed as u32).to_le_bytes())?;
            self.w
                .write_all(&(open.uncompressed as u32).to_le_bytes())?;
        }
        self.w.seek(SeekFrom::Start(self.pos))?;
        let entry = self.entries.last_mut().expect("open entry recorded");
        entry.crc32 = crc32;
        entry.compressed = compressed;
        entry.uncompressed = open.uncompressed;
        Ok(())
    }

    /// Writes the central directory and end records and flushes the file.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if self.open.is_some() {
            return Err(io::Error::other("last ZIP entry not finished"));
        }
        let cd_offset = self.pos;
        let mut cd = Vec::new();
        for e in &self.entries {
            let mut extra = Vec::new();
            for (value, needed) in [
                (e.uncompressed, e.uncompressed >= U32_MAX),
                (e.compressed, e.compressed >= U32_MAX),
                (e.offset, e.offset >= U32_MAX),
            ] {
                if needed {
                    extra.extend_from_slice(&value.to_le_bytes());
                }
            }
            let zip64 = !extra.is_empty();
            cd.extend_from_slice(b"PK\x01\x02");
            cd.extend_from_slice(&MADE_BY_UNIX.to_le_bytes());
            cd.extend_from_slice(&(if zip64 { 45u16 } else { 20 }).to_le_bytes());
            cd.extend_from_slice(&e.flags.to_le_bytes());
            cd.extend_from_slice(&e.method.to_le_bytes());
            cd.extend_from_slice(&e.dos.0.to_le_bytes());
            cd.extend_from_slice(&e.dos.1.to_le_bytes());
            cd.extend_from_slice(&e.crc32.to_le_bytes());
            cd.extend_from_slice(&saturate(e.compressed).to_le_bytes());
            cd.extend_from_slice(&saturate(e.uncompressed).to_le_bytes());
            cd.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            let extra_len = if zip64 { extra.len() + 4 } else { 0 };
            cd.extend_from_slice(&(extra_len as u16).to_le_bytes());
            cd.extend_from_slice(&0u16.to_le_bytes()); // comment
            cd.extend_from_slice(&0u16.to_le_bytes()); // disk
            cd.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            cd.extend_from_slice(&e.external_attrs.to_le_bytes());
            cd.extend_from_slice(&saturate(e.offset).to_le_bytes());
            cd.extend_from_slice(&e.name);
            if zip64 {
                cd.extend_from_slice(&1u16.to_le_bytes());
                cd.extend_from_slice(&(extra.len() as u16).to_le_bytes());
                cd.extend_from_slice(&extra);
            }
        }
        let cd_size = cd.len() as u64;
        let count = self.entries.len() as u64;
        if count >= U16_MAX || cd_offset >= U32_MAX || cd_size >= U32_MAX {
            cd.extend_from_slice(&zip_end::zip64_end(
                MADE_BY_UNIX,
                45,
                count,
                cd_size,
                cd_offset,
            ));
        }
        let count16 = count.min(U16_MAX) as u16;
        cd.extend_from_slice(&zip_end::classic_end(
            count16,
            saturate(cd_size),
            saturate(cd_offset),
        ));
        self.put(&cd)?;
        self.w.flush()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }
}

fn saturate(v: u64) -> u32 {
    v.min(U32_MAX) as u32
}
