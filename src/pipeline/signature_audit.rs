//! The worker's check of its own artifact: every PE file it put in (the bundle's exe, DLLs
//! and any other PE, the installer's plugin DLLs and uninstaller, the installer itself) is
//! signed, verifies, carries a timestamp (unless the job turned timestamps off) and was
//! signed by this job's certificate. Any miss is `SIGNING_FAILED` naming the file.

use super::JobContext;
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use crate::package::Bundle;
use crate::sign::{verify_pe, SigningSession};
use std::io::Read;
use std::path::{Path, PathBuf};

/// True when `path` starts like a PE image (`MZ`, then `PE\0\0` at `e_lfanew`), whatever its
/// extension (`.exe`, `.dll`, `.node`, `.sys`, …).
pub fn is_pe_file(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut dos = [0u8; 64];
    if file.read_exact(&mut dos).is_err() || &dos[..2] != b"MZ" {
        return false;
    }
    let e_lfanew = u32::from_le_bytes([dos[60], dos[61], dos[62], dos[63]]) as u64;
    use std::io::Seek;
    let mut sig = [0u8; 4];
    file.seek(std::io::SeekFrom::Start(e_lfanew)).is_ok()
        && file.read_exact(&mut sig).is_ok()
        && &sig == b"PE\0\0"
}

/// Every PE file of the bundle, as `(path inside the bundle, host path)`.
pub fn bundle_pe_files(bundle: &Bundle) -> Result<Vec<(String, PathBuf)>, String> {
    let listing = bundle.list().map_err(|e| e.to_string())?;
    Ok(listing
        .files
        .into_iter()
        .filter(|f| is_pe_file(&f.source))
        .map(|f| (f.rel, f.source))
        .collect())
}

/// Verifies each `(name, path)`; the first problem fails the job.
pub fn check_signed(
    job: &JobContext,
    session: &SigningSession,
    files: &[(String, PathBuf)],
) -> Result<(), JobError> {
    let fail = |name: &str, why: String| {
        JobError::new(
            ErrorCode::SigningFailed,
            Some(Stage::Packaging),
            format!("artifact check: {name} {why}"),
        )
    };
    let expected_signer = session.publisher_dn();
    let timestamps_on = session.timestamp_servers().is_some();
    for (name, path) in files {
        let verified = verify_pe(path).map_err(|e| {
            fail(
                name,
                format!("is not signed or does not verify: {}", e.message),
            )
        })?;
        if verified.signer_subject != expected_signer {
            return Err(fail(
                name,
                format!(
                    "is signed by {}, not by this job's certificate {expected_signer}",
                    verified.signer_subject
                ),
            ));
        }
        if timestamps_on && !verified.timestamped {
            return Err(fail(name, "has no timestamp".into()));
        }
    }
    job.events.info(
        Stage::Packaging,
        &format!(
            "artifact check: {} PE file(s) signed by this job's certificate and verified",
            files.len()
        ),
    );
    Ok(())
}
