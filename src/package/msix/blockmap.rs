//! Entries written block by block, and the `AppxBlockMap.xml` that describes them: for
//! each 64 KiB block of uncompressed data its SHA-256, and for deflated entries the size
//! of that block's compressed bytes (each block ends with a full flush, so it can be
//! decompressed on its own). Stored entries' blocks carry no `Size` (the schema's rule:
//! `Size` is the compressed size, present only when the file is compressed).
//!
//! Payload files arrive as 64 KiB chunks packed in parallel ([`ChunkedEntry`]); the
//! small generated parts (manifest, block map, content types) go through
//! [`write_blocked_entry`].

use super::zip64::{
    write_data_descriptor, write_local_header, EntryRecord, METHOD_DEFLATED, METHOD_STORED,
};
use crate::package::deflate_pool::{deflate_into, PackedChunk};
use crate::package::escape::xml;
use crate::package::PackageError;
use base64::Engine;
use flate2::{Compress, Compression, FlushCompress};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// Bytes per block of the MSIX block map (64 KiB, fixed by the format).
pub const BLOCK_SIZE: usize = 64 * 1024;

/// One `<File>` of the block map.
#[derive(Clone, Debug)]
pub(crate) struct BlockMapFile {
    /// Windows path (`assets\img\logo.png`), unescaped.
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) lfh_size: u64,
    /// SHA-256 of each uncompressed block, and its compressed size when deflated.
    pub(crate) blocks: Vec<([u8; 32], Option<u64>)>,
}

/// Renders `AppxBlockMap.xml`.
pub(crate) fn render_block_map(files: &[BlockMapFile]) -> Result<String, PackageError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\r\n<BlockMap xmlns=\"http://schemas.microsoft.com/appx/2010/blockmap\" HashMethod=\"http://www.w3.org/2001/04/xmlenc#sha256\">",
    );
    for f in files {
        s.push_str(&format!(
            "<File Name=\"{}\" Size=\"{}\" LfhSize=\"{}\">",
            xml("file name", &f.name)?,
            f.size,
            f.lfh_size
        ));
        for (hash, size) in &f.blocks {
            match size {
                Some(sz) => s.push_str(&format!(
                    "<Block Hash=\"{}\" Size=\"{sz}\"/>",
                    b64.encode(hash)
                )),
                None => s.push_str(&format!("<Block Hash=\"{}\"/>", b64.encode(hash))),
            }
        }
        s.push_str("</File>");
    }
    s.push_str("</BlockMap>");
    Ok(s)
}

/// Writes one entry (local header, data, zip64 data descriptor) from `src`, 64 KiB at a
/// time; never holds more than one block (and its compressed form) in memory.
pub(crate) fn write_blocked_entry<W: Write, R: Read>(
    w: &mut W,
    offset: u64,
    part_name: &str,
    src: &mut R,
    deflate: bool,
    dos: (u16, u16),
) -> Result<(EntryRecord, BlockMapFile), std::io::Error> {
    let method = if deflate {
        METHOD_DEFLATED
    } else {
        METHOD_STORED
    };
    let lfh_size = write_local_header(w, part_name, method, dos.0, dos.1)?;
    let mut crc = flate2::Crc::new();
    let mut compressor = Compress::new(Compression::default(), false);
    let mut block = vec![0u8; BLOCK_SIZE];
    let mut out = Vec::with_capacity(BLOCK_SIZE + 1024);
    let mut blocks = Vec::new();
    let (mut total_in, mut total_out) = (0u64, 0u64);
    let mut next = read_block(src, &mut block)?;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let len = next;
        if len == 0 && total_in > 0 {
            break;
        }
        // Look ahead one block so the last one can finish the deflate stream.
        pending.clear();
        pending.extend_from_slice(&block[..len]);
        next = if len == 0 {
            0
        } else {
            read_block(src, &mut block)?
        };
        let is_last = next == 0;
        crc.update(&pending);
        total_in += len as u64;
        let hash: [u8; 32] = Sha256::digest(&pending).into();
        if deflate {
            out.clear();
            let flush = if is_last {
                FlushCompress::Finish
            } else {
                FlushCompress::Full
            };
            deflate_into(&mut compressor, &pending, &mut out, flush)?;
            w.write_all(&out)?;
            total_out += out.len() as u64;
            if len > 0 {
                blocks.push((hash, Some(out.len() as u64)));
            }
        } else {
            w.write_all(&pending)?;
            total_out += len as u64;
            if len > 0 {
                blocks.push((hash, None));
            }
        }
        if is_last {
            break;
        }
    }
    write_data_descriptor(w, crc.sum(), total_out, total_in)?;
    let record = EntryRecord {
        name: part_name.to_string(),
        method,
        flags: 0x0008,
        dos_time: dos.0,
        dos_date: dos.1,
        crc32: crc.sum(),
        compressed: total_out,
        uncompressed: total_in,
        offset,
    };
    let file = BlockMapFile {
        name: String::new(),
        size: total_in,
        lfh_size,
        blocks,
    };
    Ok((record, file))
}

fn read_block<R: Read>(src: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = src.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// A payload entry written from chunks packed by [`crate::package::deflate_pool`] (one
/// chunk per 64 KiB block, in order).
pub(crate) struct ChunkedEntry {
    record: EntryRecord,
    file: BlockMapFile,
    crc: flate2::Crc,
}

impl ChunkedEntry {
    /// Writes the local header of `part_name` at `offset`.
    pub(crate) fn begin<W: Write>(
        w: &mut W,
        offset: u64,
        part_name: &str,
        deflate: bool,
        dos: (u16, u16),
    ) -> std::io::Result<Self> {
        let method = if deflate {
            METHOD_DEFLATED
        } else {
            METHOD_STORED
        };
        let lfh_size = write_local_header(w, part_name, method, dos.0, dos.1)?;
        Ok(ChunkedEntry {
            record: EntryRecord {
                name: part_name.to_string(),
                method,
                flags: 0x0008,
                dos_time: dos.0,
                dos_date: dos.1,
                crc32: 0,
                compressed: 0,
                uncompressed: 0,
                offset,
            },
            file: BlockMapFile {
                name: String::new(),
                size: 0,
                lfh_size,
                blocks: Vec::new(),
            },
            crc: flate2::Crc::new(),
        })
    }

    /// Writes one block's bytes and records its hash (and compressed size when deflated).
    pub(crate) fn add<W: Write>(&mut self, w: &mut W, chunk: &PackedChunk) -> std::io::Result<()> {
        w.write_all(&chunk.bytes)?;
        self.crc.combine(&chunk.crc);
        self.record.compressed += chunk.bytes.len() as u64;
        self.record.uncompressed += chunk.raw_len as u64;
        if let Some(hash) = chunk.sha256 {
            let size = (self.record.method == METHOD_DEFLATED).then_some(chunk.bytes.len() as u64);
            self.file.blocks.push((hash, size));
        }
        Ok(())
    }

    /// Writes the data descriptor; returns the central-directory record and the block-map
    /// entry (its `name` still to be set).
    pub(crate) fn finish<W: Write>(
        mut self,
        w: &mut W,
    ) -> std::io::Result<(EntryRecord, BlockMapFile)> {
        self.record.crc32 = self.crc.sum();
        write_data_descriptor(
            w,
            self.record.crc32,
            self.record.compressed,
            self.record.uncompressed,
        )?;
        self.file.size = self.record.uncompressed;
        Ok((self.record, self.file))
    }
}
