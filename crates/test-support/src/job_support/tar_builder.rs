//! Tar streams built from raw headers for extraction tests: names and link targets are
//! written straight into the header bytes (or GNU long-name records), so `..`, absolute and
//! non-UTF-8 names reach the extractor unchanged.

use std::io::Write;
use tar::{EntryType, Header};

/// A tar stream built entry by entry.
pub struct Tar<W: Write> {
    out: W,
}

impl<W: Write> Tar<W> {
    pub fn new(out: W) -> Self {
        Tar { out }
    }

    pub fn raw(
        &mut self,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        mode: u32,
        data: &[u8],
    ) -> &mut Self {
        if name.len() > 100 {
            self.long(b'L', name);
        }
        if link.len() > 100 {
            self.long(b'K', link);
        }
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            let n = name.len().min(100);
            old.name[..n].copy_from_slice(&name[..n]);
            let l = link.len().min(100);
            old.linkname[..l].copy_from_slice(&link[..l]);
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).unwrap();
        self.out.write_all(data).unwrap();
        self.pad(data.len() as u64);
        self
    }

    pub fn long(&mut self, kind: u8, value: &[u8]) {
        let mut data = value.to_vec();
        data.push(0);
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(EntryType::new(kind));
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).unwrap();
        self.out.write_all(&data).unwrap();
        self.pad(data.len() as u64);
    }

    /// A regular file whose data (`size` bytes of `byte`) is streamed, not held in memory.
    pub fn big_file(&mut self, name: &str, size: u64, byte: u8) -> &mut Self {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).unwrap();
        let chunk = vec![byte; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            self.out.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        self.pad(size);
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Regular, b"", 0o644, data)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Directory, b"", 0o755, b"")
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Symlink,
            target.as_bytes(),
            0o777,
            b"",
        )
    }

    pub fn pad(&mut self, size: u64) {
        let rem = (512 - size % 512) % 512;
        self.out.write_all(&vec![0u8; rem as usize]).unwrap();
    }

    pub fn finish(mut self) -> W {
        self.out.write_all(&[0u8; 1024]).unwrap();
        self.out
    }
}

pub fn tar() -> Tar<Vec<u8>> {
    Tar::new(Vec::new())
}
