//! Comparing an NSIS installer with an unsigned rebuild when their bytes differ. A signed
//! installer's compressed stream holds signed files, so it cannot equal the rebuild's;
//! compared instead:
//!
//! - the installer's own program: the NSIS stub, every byte before the NSIS data (which
//!   starts at a 512-byte boundary with `0xDEADBEEF` `NullsoftInst`), the PE checksum and
//!   the security directory entry left out, byte for byte;
//! - the payload, unpacked from both with 7z ([`super::unpack`]): the same files, each
//!   byte for byte or, for a PE file, with its signature stripped.
//!
//! Not compared: the NSIS header (the install script, which 7z does not show) and the
//! compressed stream as such, since both hold the signed files' sizes and bytes.

use super::compare::Tally;
use crate::sign::pe;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// `0xDEADBEEF` (little-endian) and the NSIS magic, 4 bytes into the NSIS first header.
const NSIS_SIGNATURE: &[u8; 16] = b"\xEF\xBE\xAD\xDENullsoftInst";
/// A stub larger than this is refused (makensis' are a few hundred KiB).
const MAX_STUB: usize = 64 << 20;

/// `Ok(what was compared)` or what differs.
pub(crate) fn compare_installers(artifact: &Path, rebuilt: &Path) -> Result<String, String> {
    if stub(artifact)? != stub(rebuilt)? {
        return Err(
            "the installer's program (NSIS stub, resources included) differs from the rebuild's"
                .into(),
        );
    }
    let (a_dir, b_dir) = (scratch()?, scratch()?);
    let a_files = super::unpack::unpack_installer(artifact, a_dir.path())?;
    let b_files = super::unpack::unpack_installer(rebuilt, b_dir.path())
        .map_err(|e| format!("the rebuilt installer: {e}"))?;
    if a_files != b_files {
        return Err("the installer holds other files than the rebuild's".into());
    }
    let mut tally = Tally::default();
    for rel in &a_files {
        let name = rel.display().to_string();
        compare_files(
            &mut tally,
            &name,
            &a_dir.path().join(rel),
            &b_dir.path().join(rel),
        )?;
    }
    tally.notes.push(
        "the installer's program byte for byte, checksum and signature aside; its NSIS script and compressed stream not compared (they hold the signed files)"
            .into(),
    );
    tally.verdict("installer payload (7z)")
}

fn scratch() -> Result<tempfile::TempDir, String> {
    tempfile::tempdir().map_err(|e| format!("creating a scratch folder: {e}"))
}

/// The bytes before the NSIS data, with the PE checksum and security directory zeroed.
fn stub(setup: &Path) -> Result<Vec<u8>, String> {
    let err = |e: String| format!("{}: {e}", setup.display());
    let mut file = File::open(setup).map_err(|e| err(e.to_string()))?;
    let layout = pe::read_layout(&mut file).map_err(|e| err(e.to_string()))?;
    let mut reader = std::io::BufReader::new(File::open(setup).map_err(|e| err(e.to_string()))?);
    let mut stub = Vec::new();
    let mut block = [0u8; 512];
    loop {
        match reader.read_exact(&mut block) {
            Ok(()) if &block[4..20] == NSIS_SIGNATURE => break,
            Ok(()) if stub.len() < MAX_STUB => stub.extend_from_slice(&block),
            Ok(()) => return Err(err("the NSIS stub is larger than 64 MiB".into())),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(err("no NSIS data found (not an NSIS installer?)".into()))
            }
            Err(e) => return Err(err(e.to_string())),
        }
    }
    for (offset, len) in [(layout.checksum_offset, 4), (layout.security_dir_offset, 8)] {
        if let Some(field) = stub.get_mut(offset as usize..offset as usize + len) {
            field.fill(0);
        }
    }
    Ok(stub)
}

fn sha256(path: &Path) -> Result<[u8; 32], String> {
    let mut hasher = Sha256::new();
    File::open(path)
        .and_then(|mut f| std::io::copy(&mut f, &mut hasher))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(hasher.finalize().into())
}

/// The Authenticode digest of a PE file on disk, `None` when it is not a PE file.
fn pe_digest(path: &Path) -> Option<[u8; 32]> {
    let mut file = File::open(path).ok()?;
    let layout = pe::read_layout(&mut file).ok()?;
    pe::authenticode_digest(&mut file, &layout).ok()
}

/// One unpacked file of both, streamed (payload files can be large).
fn compare_files(
    tally: &mut Tally,
    name: &str,
    artifact: &Path,
    rebuilt: &Path,
) -> Result<(), String> {
    if sha256(artifact)? == sha256(rebuilt)? {
        tally.identical += 1;
        return Ok(());
    }
    match (pe_digest(artifact), pe_digest(rebuilt)) {
        (Some(a), Some(b)) if a == b => tally.stripped.push(name.to_string()),
        _ => tally.different.push(name.to_string()),
    }
    Ok(())
}
