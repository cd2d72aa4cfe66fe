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
pub(crate) fn is_pe_file(path: &Path) -> bool {
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
pub(crate) fn bundle_pe_files(bundle: &Bundle) -> Result<Vec<(String, PathBuf)>, String> {
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
    let expected_signer = &session.certificate().thumbprint;
    let timestamps_on = session.timestamp_servers().is_some();
    for (name, path) in files {
        let verified = verify_pe(path).map_err(|e| {
            fail(
                name,
                format!("is not signed or does not verify: {}", e.message),
            )
        })?;
        if &verified.signer_thumbprint != expected_signer {
            return Err(fail(
                name,
                format!(
                    "is signed by {} (thumbprint {}), not by this job's certificate {expected_signer}",
                    verified.signer_subject, verified.signer_thumbprint
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pe_files_are_recognised_by_their_headers_not_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut pe = vec![0u8; 0x90];
        pe[..2].copy_from_slice(b"MZ");
        pe[60..64].copy_from_slice(&0x80u32.to_le_bytes());
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        let addon = dir.path().join("native.node");
        std::fs::write(&addon, &pe).unwrap();
        assert!(is_pe_file(&addon));

        let mut dos_only = pe.clone();
        dos_only[0x80..0x84].copy_from_slice(b"NE\0\0");
        let old = dir.path().join("old.exe");
        std::fs::write(&old, &dos_only).unwrap();
        assert!(!is_pe_file(&old));

        let text = dir.path().join("readme.dll");
        std::fs::write(&text, b"MZ but only text").unwrap();
        assert!(!is_pe_file(&text));
        assert!(!is_pe_file(&dir.path().join("missing.exe")));
    }
}
