//! What `verify` checks in an artifact: the Authenticode signature of every PE file it
//! holds (the installer and the files of its payload, unpacked with 7z; each entry of a
//! portable ZIP or MSIX), an MSIX's package signature (`AppxSignature.p7x` over the package
//! digests read back from the file), and a build record against it (DSSE signature,
//! subject digest, signer).

use super::dsse::Envelope;
use super::statement;
use crate::sign::pe;
use std::io::{Read, Write};
use std::path::Path;

/// The signature state of one PE file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PeSignature {
    /// No Authenticode signature.
    Unsigned,
    /// Verified: the signer's thumbprint and whether it is timestamped.
    Valid {
        /// SHA-1 thumbprint of the signing certificate, hex.
        thumbprint: String,
        /// Whether the signature carries an RFC 3161 timestamp.
        timestamped: bool,
    },
    /// A signature that does not verify, and why.
    Invalid(String),
}

/// One PE file of an artifact and its signature.
#[derive(Clone, Debug)]
pub(crate) struct PeReport {
    /// `Setup.exe`, or the entry name inside an archive.
    pub(crate) name: String,
    /// Its signature state.
    pub(crate) signature: PeSignature,
}

/// The package kind, from the artifact's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArtifactKind {
    /// An NSIS `Setup.exe` (`.exe`).
    Installer,
    /// A portable ZIP (`.zip`).
    Portable,
    /// An MSIX package (`.msix`).
    Msix,
}

impl ArtifactKind {
    /// The kind of the artifact at `path`, from its extension; an error names an unknown one.
    pub(crate) fn of(path: &Path) -> Result<ArtifactKind, String> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "exe" => Ok(ArtifactKind::Installer),
            "zip" => Ok(ArtifactKind::Portable),
            "msix" => Ok(ArtifactKind::Msix),
            _ => Err(format!(
                "{} is not an .exe, .zip or .msix artifact",
                path.display()
            )),
        }
    }

    /// The manifest's `windows_distribute` value that builds this kind.
    pub(crate) fn distribute(self) -> &'static str {
        match self {
            ArtifactKind::Installer => "installer",
            ArtifactKind::Portable => "portable",
            ArtifactKind::Msix => "msix",
        }
    }
}

/// Whether `bytes` start like a PE file (MZ header pointing at a PE signature).
pub fn is_pe(bytes: &[u8]) -> bool {
    bytes.starts_with(b"MZ")
        && bytes
            .get(60..64)
            .map(|o| u32::from_le_bytes(o.try_into().expect("4 bytes")) as usize)
            .and_then(|o| bytes.get(o..o + 4))
            == Some(b"PE\0\0".as_slice())
}

/// The signature state of a PE file on disk.
pub(crate) fn pe_signature(path: &Path) -> PeSignature {
    let layout = std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|mut f| pe::read_layout(&mut f).map_err(|e| e.to_string()));
    match layout {
        Err(e) => PeSignature::Invalid(e),
        Ok(layout) if layout.cert_table.is_none() => PeSignature::Unsigned,
        Ok(_) => match crate::sign::verify_pe(path) {
            Ok(v) => PeSignature::Valid {
                thumbprint: v.signer_thumbprint,
                timestamped: v.timestamped,
            },
            Err(e) => PeSignature::Invalid(e.message),
        },
    }
}

/// Every PE file of the artifact with its signature state.
pub(crate) fn authenticode_reports(artifact: &Path) -> Result<Vec<PeReport>, String> {
    let name = artifact
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    match ArtifactKind::of(artifact)? {
        ArtifactKind::Installer => {
            let mut reports = vec![PeReport {
                name,
                signature: pe_signature(artifact),
            }];
            reports.extend(installer_pe_reports(artifact)?);
            Ok(reports)
        }
        ArtifactKind::Portable => archive_pe_reports(artifact),
        ArtifactKind::Msix => {
            let mut reports = vec![PeReport {
                name: format!("{name}: package signature (AppxSignature.p7x)"),
                signature: msix_signature(artifact),
            }];
            match archive_pe_reports(artifact) {
                Ok(pe_reports) => reports.extend(pe_reports),
                Err(e) => reports.push(PeReport {
                    name: format!("{name}: files"),
                    signature: PeSignature::Invalid(e),
                }),
            }
            Ok(reports)
        }
    }
}

/// The state of an MSIX's package signature: the digests of the package as it is must be
/// the ones `AppxSignature.p7x` signed, and that signature must verify.
pub(crate) fn msix_signature(package: &Path) -> PeSignature {
    let input = match crate::package::msix::read::read_signature_input(package) {
        Ok(input) => input,
        Err(e) => return PeSignature::Invalid(format!("cannot read the package: {e}")),
    };
    // What Windows checks on install besides the signature; names a changed file.
    let block_map = crate::package::msix::blockmap_check::check_block_map(package);
    let Some(der) = input.pkcs7_der else {
        return match block_map {
            Ok(()) => PeSignature::Unsigned,
            Err(e) => PeSignature::Invalid(format!("unsigned package: {e}")),
        };
    };
    let actual = input.digests.to_blob();
    let signed = match crate::sign::verify::signed_digest(&der) {
        Ok(d) => d,
        Err(e) => return PeSignature::Invalid(e.to_string()),
    };
    let changed = crate::sign::appx::changed_parts(&signed, &actual);
    if !changed.is_empty() {
        let detail = block_map
            .err()
            .map(|e| format!("; {e}"))
            .unwrap_or_default();
        return PeSignature::Invalid(format!(
            "the package changed after signing: {} differ from what was signed{detail}",
            changed.join(", ")
        ));
    }
    match (crate::sign::verify::verify_pkcs7(&der, &actual), block_map) {
        (Err(e), _) => PeSignature::Invalid(e.to_string()),
        (Ok(_), Err(e)) => PeSignature::Invalid(format!("signed, but {e}")),
        (Ok(v), Ok(())) => PeSignature::Valid {
            thumbprint: v.signer_thumbprint,
            timestamped: v.timestamped,
        },
    }
}

/// The PE files inside an NSIS installer's payload (see [`super::unpack`]).
fn installer_pe_reports(setup: &Path) -> Result<Vec<PeReport>, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut reports = Vec::new();
    for rel in super::unpack::unpack_installer(setup, scratch.path())? {
        let path = scratch.path().join(&rel);
        let mut head = [0u8; 4096];
        let n = std::fs::File::open(&path)
            .and_then(|mut f| f.read(&mut head))
            .map_err(|e| e.to_string())?;
        if !is_pe(&head[..n]) {
            continue;
        }
        reports.push(PeReport {
            name: format!("installer payload: {}", rel.display()),
            signature: pe_signature(&path),
        });
    }
    Ok(reports)
}

fn archive_pe_reports(archive: &Path) -> Result<Vec<PeReport>, String> {
    let file = std::fs::File::open(archive).map_err(|e| format!("cannot open: {e}"))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a readable ZIP: {e}"))?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut reports = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map_err(|e| format!("entry {i}: {e}"))?
            .to_string();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name}: {e}"))?;
        if !is_pe(&bytes) {
            continue;
        }
        let path = scratch.path().join("entry.bin");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|e| e.to_string())?;
        reports.push(PeReport {
            name,
            signature: pe_signature(&path),
        });
    }
    Ok(reports)
}

/// What a record says, once checked against the artifact.
#[derive(Clone, Debug)]
pub struct RecordReport {
    /// Thumbprints of the certificates that signed the record (empty: unsigned record).
    pub signers: Vec<String>,
    /// The in-toto statement the record carries.
    pub statement: serde_json::Value,
}

/// Checks the envelope's signatures and that its subject is the artifact's SHA-256.
pub fn check_record(envelope: &Envelope, artifact: &Path) -> Result<RecordReport, String> {
    let signers = envelope
        .verify()
        .map_err(|e| format!("record signature: {e}"))?;
    let payload = envelope.payload_bytes()?;
    let statement: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|e| format!("record payload is not JSON: {e}"))?;
    let (_, subject_sha256) = statement::subject(&statement)?;
    let actual = super::inputs::sha256_file(artifact)
        .map_err(|e| format!("hashing {}: {e}", artifact.display()))?;
    if !subject_sha256.eq_ignore_ascii_case(&actual) {
        return Err(format!(
            "the record is for sha256 {subject_sha256}, the artifact is {actual}"
        ));
    }
    Ok(RecordReport { signers, statement })
}

/// Failures of the Authenticode reports: invalid signatures, and a mix of signed and
/// unsigned PE files (a signed build signs every one).
pub(crate) fn authenticode_problems(reports: &[PeReport]) -> Vec<String> {
    let mut problems: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.signature {
            PeSignature::Invalid(e) => Some(format!("{}: {e}", r.name)),
            _ => None,
        })
        .collect();
    let signed = reports
        .iter()
        .filter(|r| matches!(r.signature, PeSignature::Valid { .. }))
        .count();
    if signed > 0 {
        for r in reports {
            if r.signature == PeSignature::Unsigned {
                problems.push(format!("{}: unsigned in a signed build", r.name));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_extension() {
        assert_eq!(
            ArtifactKind::of(Path::new("a/App-Setup.EXE")),
            Ok(ArtifactKind::Installer)
        );
        assert_eq!(
            ArtifactKind::of(Path::new("a.zip")).unwrap().distribute(),
            "portable"
        );
        assert!(ArtifactKind::of(Path::new("a.tar")).is_err());
    }

    #[test]
    fn mixed_signed_and_unsigned_is_a_problem() {
        let valid = PeReport {
            name: "a.exe".into(),
            signature: PeSignature::Valid {
                thumbprint: "AB".into(),
                timestamped: true,
            },
        };
        let unsigned = PeReport {
            name: "b.dll".into(),
            signature: PeSignature::Unsigned,
        };
        assert!(authenticode_problems(std::slice::from_ref(&unsigned)).is_empty());
        assert_eq!(authenticode_problems(&[valid, unsigned]).len(), 1);
    }
}
