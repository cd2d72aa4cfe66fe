//! Packs payload files chunk by chunk on every core and hands the chunks back in file
//! order, for the ZIP-based packagers (portable ZIP, MSIX).
//!
//! Each chunk of a deflated file is compressed on its own (the compressor is reset, and the
//! chunk ends with a full flush, or the final block for the last chunk), so chunks can be
//! compressed in parallel and their outputs concatenated into one valid deflate stream;
//! this is also what an MSIX block map requires of its 64 KiB blocks. Stored chunks pass
//! through unchanged. At most a few chunks per thread are in memory at once, whatever the
//! file sizes.

use super::compressibility::worker_threads;
use flate2::{Compress, Compression, FlushCompress, Status};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;

/// Deflate level of the ZIP-based packagers for files that compress: zlib-rs' level 4
/// (short lazy-match chains) is within ~4 % of level 6's size on text and executables at
/// about twice its speed, and far from level 9's time for < 1 % more.
pub(crate) const BULK_DEFLATE_LEVEL: u32 = 4;

/// How one file's bytes go into the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Packing {
    /// Copied as is.
    Store,
    /// Deflate at this level (1..=9).
    Deflate(u32),
}

/// One payload file to pack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PackFile<'a> {
    /// The file to read.
    pub(crate) path: &'a Path,
    /// How its bytes are packed.
    pub(crate) packing: Packing,
}

/// A packed chunk, delivered in file and chunk order.
#[derive(Debug)]
pub(crate) struct PackedChunk {
    /// Index into the files given to [`pack_files`].
    pub(crate) file: usize,
    /// Whether this is the file's first chunk.
    pub(crate) first: bool,
    /// Whether this is the file's last chunk.
    pub(crate) last: bool,
    /// Uncompressed length of the chunk.
    pub(crate) raw_len: usize,
    /// CRC-32 of the uncompressed chunk (combine them for the file's CRC).
    pub(crate) crc: flate2::Crc,
    /// SHA-256 of the uncompressed chunk, when asked for and the chunk is not empty.
    pub(crate) sha256: Option<[u8; 32]>,
    /// The bytes that go into the archive.
    pub(crate) bytes: Vec<u8>,
}

struct Job {
    file: usize,
    first: bool,
    last: bool,
    packing: Packing,
    data: Vec<u8>,
}

/// Reads `files` in `chunk_size` pieces, packs them on all cores and calls `consume` with
/// each chunk in order (every file yields at least one chunk, empty files one empty last
/// chunk). With `hash_chunks`, each non-empty chunk also carries its SHA-256.
pub(crate) fn pack_files(
    files: &[PackFile<'_>],
    chunk_size: usize,
    hash_chunks: bool,
    mut consume: impl FnMut(PackedChunk) -> io::Result<()>,
) -> io::Result<()> {
    let threads = worker_threads();
    let max_outstanding = threads * 3;
    let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Job)>(max_outstanding);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(u64, io::Result<PackedChunk>)>();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            s.spawn(move || {
                let mut compressor: Option<(u32, Compress)> = None;
                loop {
                    let next = job_rx.lock().expect("job queue lock").recv();
                    let Ok((seq, job)) = next else { break };
                    // A compressor panic becomes this chunk's error instead of a lost
                    // chunk the writer would wait for forever.
                    let packed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        pack_chunk(job, &mut compressor, hash_chunks)
                    }))
                    .unwrap_or_else(|_| {
                        compressor = None;
                        Err(io::Error::other("the deflate compressor panicked"))
                    });
                    if done_tx.send((seq, packed)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let job_tx = job_tx; // dropped when this closure returns: the workers then stop
        let mut reader = ChunkReader::new(files, chunk_size);
        let (mut sent, mut emitted) = (0u64, 0u64);
        let mut ready: BTreeMap<u64, io::Result<PackedChunk>> = BTreeMap::new();
        let mut exhausted = false;
        loop {
            while !exhausted && sent - emitted < max_outstanding as u64 {
                match reader.next_job()? {
                    Some(job) => {
                        job_tx
                            .send((sent, job))
                            .map_err(|_| io::Error::other("packing threads stopped"))?;
                        sent += 1;
                    }
                    None => exhausted = true,
                }
            }
            if emitted == sent {
                return Ok(());
            }
            while let Some(chunk) = ready.remove(&emitted) {
                consume(chunk?)?;
                emitted += 1;
            }
            if emitted < sent && !ready.contains_key(&emitted) {
                let (seq, packed) = done_rx
                    .recv()
                    .map_err(|_| io::Error::other("packing threads stopped"))?;
                ready.insert(seq, packed);
            }
        }
    })
}

fn pack_chunk(
    job: Job,
    compressor: &mut Option<(u32, Compress)>,
    hash: bool,
) -> io::Result<PackedChunk> {
    let mut crc = flate2::Crc::new();
    crc.update(&job.data);
    let sha256 = (hash && !job.data.is_empty()).then(|| Sha256::digest(&job.data).into());
    let raw_len = job.data.len();
    let bytes = match job.packing {
        Packing::Store => job.data,
        Packing::Deflate(level) => {
            let c = match compressor {
                Some((l, c)) if *l == level => c,
                _ => {
                    &mut compressor
                        .insert((level, Compress::new(Compression::new(level), false)))
                        .1
                }
            };
            c.reset();
            let mut out = Vec::with_capacity(raw_len / 2 + 1024);
            let flush = if job.last {
                FlushCompress::Finish
            } else {
                FlushCompress::Full
            };
            deflate_into(c, &job.data, &mut out, flush)?;
            out
        }
    };
    Ok(PackedChunk {
        file: job.file,
        first: job.first,
        last: job.last,
        raw_len,
        crc,
        sha256,
        bytes,
    })
}

/// Deflates all of `input` into `out`, ending with `flush` (`Full`: byte-aligned, the
/// dictionary reset; `Finish`: the stream's final block).
pub(crate) fn deflate_into(
    c: &mut Compress,
    input: &[u8],
    out: &mut Vec<u8>,
    flush: FlushCompress,
) -> io::Result<()> {
    let start_in = c.total_in();
    loop {
        let consumed = (c.total_in() - start_in) as usize;
        // Room for the rest even if it does not compress: zlib-rs' fastest level
        // panics instead of pausing when the output runs out mid-block.
        let left = input.len() - consumed;
        let room = left + left / 4 + 4096;
        if out.capacity() - out.len() < room {
            out.reserve(room);
        }
        let status = c
            .compress_vec(&input[consumed..], out, flush)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        let all_in = (c.total_in() - start_in) as usize == input.len();
        match (status, flush) {
            (Status::StreamEnd, _) => return Ok(()),
            // A full flush is complete once all input is consumed and spare room remains.
            (_, FlushCompress::Full) if all_in && out.len() < out.capacity() => return Ok(()),
            _ => {}
        }
    }
}

/// Cuts the files into chunks, one chunk ahead so the last chunk of a file is known.
struct ChunkReader<'a> {
    files: &'a [PackFile<'a>],
    chunk_size: usize,
    index: usize,
    open: Option<File>,
    ahead: Vec<u8>,
    first: bool,
}

impl<'a> ChunkReader<'a> {
    fn new(files: &'a [PackFile<'a>], chunk_size: usize) -> Self {
        ChunkReader {
            files,
            chunk_size,
            index: 0,
            open: None,
            ahead: Vec::new(),
            first: true,
        }
    }

    fn next_job(&mut self) -> io::Result<Option<Job>> {
        let Some(spec) = self.files.get(self.index) else {
            return Ok(None);
        };
        let path = spec.path;
        let ctx =
            |e: io::Error| io::Error::new(e.kind(), format!("reading {}: {e}", path.display()));
        if self.open.is_none() {
            let mut f = File::open(path).map_err(ctx)?;
            self.ahead = read_chunk(&mut f, self.chunk_size).map_err(ctx)?;
            self.open = Some(f);
            self.first = true;
        }
        let data = std::mem::take(&mut self.ahead);
        let mut last = data.len() < self.chunk_size;
        if !last {
            let f = self.open.as_mut().expect("file open");
            self.ahead = read_chunk(f, self.chunk_size).map_err(ctx)?;
            last = self.ahead.is_empty();
        }
        let job = Job {
            file: self.index,
            first: self.first,
            last,
            packing: spec.packing,
            data,
        };
        self.first = false;
        if last {
            self.open = None;
            self.index += 1;
        }
        Ok(Some(job))
    }
}

fn read_chunk(f: &mut File, size: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(size);
    f.take(size as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn chunks_come_back_in_order_and_inflate_to_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let contents: Vec<Vec<u8>> = vec![
            b"abc".repeat(40_000),                        // several chunks, deflated
            Vec::new(),                                   // empty
            (0..=255u8).cycle().take(3 * 1000).collect(), // exactly 3 chunks, stored
            b"tail".to_vec(),
        ];
        let paths: Vec<_> = (0..contents.len())
            .map(|i| dir.path().join(format!("f{i}")))
            .collect();
        for (p, c) in paths.iter().zip(&contents) {
            std::fs::File::create(p).unwrap().write_all(c).unwrap();
        }
        let packing = [
            Packing::Deflate(6),
            Packing::Deflate(1),
            Packing::Store,
            Packing::Deflate(9),
        ];
        let files: Vec<PackFile> = paths
            .iter()
            .zip(packing)
            .map(|(p, packing)| PackFile { path: p, packing })
            .collect();
        let mut per_file: Vec<(Vec<u8>, flate2::Crc, usize)> = (0..files.len())
            .map(|_| (Vec::new(), flate2::Crc::new(), 0))
            .collect();
        let mut order = Vec::new();
        pack_files(&files, 1000, true, |c| {
            order.push((c.file, c.first, c.last));
            assert_eq!(c.sha256.is_some(), c.raw_len > 0);
            let entry = &mut per_file[c.file];
            entry.0.extend_from_slice(&c.bytes);
            entry.1.combine(&c.crc);
            entry.2 += 1;
            Ok(())
        })
        .unwrap();
        let mut expected_order = Vec::new();
        for (i, c) in contents.iter().enumerate() {
            let n = c.len().div_ceil(1000).max(1);
            for k in 0..n {
                expected_order.push((i, k == 0, k == n - 1));
            }
        }
        assert_eq!(order, expected_order);
        for (i, (bytes, crc, _)) in per_file.iter().enumerate() {
            let data = match packing[i] {
                Packing::Store => bytes.clone(),
                Packing::Deflate(_) => {
                    let mut out = Vec::new();
                    flate2::read::DeflateDecoder::new(&bytes[..])
                        .read_to_end(&mut out)
                        .unwrap();
                    out
                }
            };
            assert_eq!(data, contents[i], "file {i}");
            let mut whole = flate2::Crc::new();
            whole.update(&contents[i]);
            assert_eq!(crc.sum(), whole.sum(), "file {i} crc");
        }
    }

    #[test]
    fn a_missing_file_fails_with_its_name() {
        let files = [PackFile {
            path: Path::new("/nonexistent/payload.bin"),
            packing: Packing::Store,
        }];
        let err = pack_files(&files, 1000, false, |_| Ok(())).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/payload.bin"),
            "{err}"
        );
    }

    #[test]
    fn a_consumer_error_stops_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 100_000]).unwrap();
        let files = [PackFile {
            path: &p,
            packing: Packing::Deflate(1),
        }];
        let mut calls = 0;
        let err = pack_files(&files, 1000, false, |_| {
            calls += 1;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(calls, 1);
    }
}
