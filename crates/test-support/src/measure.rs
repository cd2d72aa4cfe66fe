//! Measuring helpers shared by the streaming tests and the benchmarks: file hashes computed
//! by streaming, and this process's memory figures from `/proc/self/status`.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Lowercase hex SHA-256 of a file, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

/// A `/proc/self/status` field in KiB: `status_kib("VmRSS")`, `status_kib("VmHWM")`.
pub fn status_kib(field: &str) -> u64 {
    process_status_kib("self", field)
}

/// A `/proc/<process>/status` field in KiB (`process`: a pid or `self`).
pub fn process_status_kib(process: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/{process}/status"))
}

/// Resets this process's peak RSS (`VmHWM`) to its current RSS (Linux 4.0 and later).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
