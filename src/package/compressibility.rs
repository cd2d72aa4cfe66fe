//! Cheap detection of which payload files are worth compressing: a few samples of each
//! file are deflated at level 1 (fast), and files that do not shrink are stored by every
//! packager (NSIS, portable ZIP, MSIX). Already compressed media, archives and fonts come
//! out at ~100 % and cost a compressor its full time for nothing.
//!
//! The samples also tell text from binary data, which the NSIS compressor choice needs
//! (bzip2 matches LZMA on text but not on executables; see [`super::nsis_compression`]).

use super::deflate_pool::deflate_into;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes per sample; deflate's window is 32 KiB, so a sample sees typical matches.
const SAMPLE_BYTES: u64 = 32 * 1024;
/// Samples per file, spread evenly from start to end (smaller files are read whole).
const SAMPLES: u64 = 8;
/// A file whose samples deflate to at least this fraction of their size is stored.
pub(crate) const STORE_RATIO: f64 = 0.95;
/// Files at most this large are always compressed (headers would dominate a sample).
const ALWAYS_COMPRESS_BELOW: u64 = 4096;

/// What the samples of one file showed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Bytes sampled.
    pub(crate) sampled: u64,
    /// Their size after level-1 deflate (each sample on its own).
    pub(crate) deflated: u64,
    /// Sampled bytes that are printable ASCII, tab, CR or LF.
    pub(crate) text_like: u64,
}

impl Probe {
    /// Deflated / sampled (1.0 for an empty probe).
    pub(crate) fn ratio(&self) -> f64 {
        if self.sampled == 0 {
            1.0
        } else {
            self.deflated as f64 / self.sampled as f64
        }
    }

    /// True when compressing the file is worth its time.
    pub(crate) fn compresses(&self) -> bool {
        self.sampled < ALWAYS_COMPRESS_BELOW || self.ratio() < STORE_RATIO
    }

    /// True when at least 95 % of the sampled bytes look like text.
    pub(crate) fn is_text(&self) -> bool {
        self.sampled > 0 && self.text_like * 100 >= self.sampled * 95
    }
}

/// Samples `path` (of `size` bytes) and deflates the samples.
pub(crate) fn probe_file(path: &Path, size: u64) -> std::io::Result<Probe> {
    let mut file = File::open(path)?;
    let mut probe = Probe::default();
    let mut buf = Vec::with_capacity(SAMPLE_BYTES as usize);
    let mut out = Vec::with_capacity(SAMPLE_BYTES as usize + 1024);
    let mut deflater = flate2::Compress::new(flate2::Compression::fast(), false);
    let whole = size <= SAMPLE_BYTES * SAMPLES;
    let count = if whole {
        size.div_ceil(SAMPLE_BYTES)
    } else {
        SAMPLES
    };
    for i in 0..count {
        let offset = if whole {
            i * SAMPLE_BYTES
        } else {
            i * (size - SAMPLE_BYTES) / (SAMPLES - 1)
        };
        file.seek(SeekFrom::Start(offset))?;
        buf.clear();
        (&mut file).take(SAMPLE_BYTES).read_to_end(&mut buf)?;
        if buf.is_empty() {
            break;
        }
        deflater.reset();
        out.clear();
        deflate_into(&mut deflater, &buf, &mut out, flate2::FlushCompress::Finish)?;
        probe.sampled += buf.len() as u64;
        probe.deflated += out.len() as u64;
        probe.text_like += buf
            .iter()
            .filter(|&&b| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e))
            .count() as u64;
    }
    Ok(probe)
}

/// Probes every `(path, size)` on all cores; results in input order.
pub(crate) fn probe_files(files: &[(&Path, u64)]) -> std::io::Result<Vec<Probe>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<std::io::Result<Probe>>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    let threads = worker_threads().min(files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(path, size)) = files.get(i) else {
                    break;
                };
                let probe = probe_file(path, size).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("sampling {}: {e}", path.display()))
                });
                results.lock().expect("probe results lock")[i] = Some(probe);
            });
        }
    });
    results
        .into_inner()
        .expect("probe results lock")
        .into_iter()
        .map(|r| r.expect("every file probed"))
        .collect()
}

/// Threads for CPU-bound packaging work: every core, at most 8.
pub(crate) fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize) -> Vec<u8> {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn random_data_is_stored_text_is_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let random = dir.path().join("r.bin");
        let text = dir.path().join("t.txt");
        let small = dir.path().join("s.bin");
        std::fs::write(&random, noise(3 << 20)).unwrap();
        std::fs::write(&text, "fn main() { println!(\"hello\"); }\n".repeat(50_000)).unwrap();
        std::fs::write(&small, noise(100)).unwrap();
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        let probes = probe_files(&[
            (&random, size(&random)),
            (&text, size(&text)),
            (&small, size(&small)),
        ])
        .unwrap();
        assert!(!probes[0].compresses(), "{:?}", probes[0]);
        assert!(!probes[0].is_text());
        assert_eq!(probes[0].sampled, SAMPLE_BYTES * SAMPLES);
        assert!(
            probes[1].compresses() && probes[1].is_text(),
            "{:?}",
            probes[1]
        );
        assert!(probes[1].ratio() < 0.1);
        assert!(probes[2].compresses(), "tiny files are always compressed");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = probe_files(&[(Path::new("/nonexistent/x.bin"), 10)]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.bin"), "{err}");
    }
}
