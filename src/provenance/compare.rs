//! Comparing an artifact with an unsigned rebuild of the same inputs.
//!
//! An artifact identical to the rebuild byte for byte passes. Otherwise every difference
//! must come from signing, and the comparison says what it compared:
//!
//! - portable ZIP: the same entries in the same order with the same times and permissions;
//!   each file byte for byte, or (a PE file) by its Authenticode content: every byte
//!   except the checksum, the security directory entry and the certificate table, i.e. the
//!   file with its signature stripped;
//! - MSIX: the same, except `AppxSignature.p7x` (checked as the package signature, not
//!   here); `AppxManifest.xml` apart from its `Identity Publisher` (a signed package names
//!   the certificate's subject there); `[Content_Types].xml` apart from the signature's
//!   content type; `AppxBlockMap.xml` apart from the `<File>` elements of the files that
//!   differ by a signature (see `super::compare_msix`);
//! - installer: see `super::compare_installer`.
//!
//! An artifact without any signed file must be identical byte for byte.

use super::check::{is_pe, ArtifactKind};
use super::compare_msix::{block_maps_match, content_types_match, without_identity_publisher};
use crate::sign::pe;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

/// How the files of an artifact matched the rebuild's.
#[derive(Default, Debug)]
pub(crate) struct Tally {
    /// How many files are identical byte for byte.
    pub(crate) identical: usize,
    /// Names of PE files equal once their signatures are stripped (and that differ).
    pub(crate) stripped: Vec<String>,
    /// Names of files that differ otherwise.
    pub(crate) different: Vec<String>,
    /// What was compared by a special rule.
    pub(crate) notes: Vec<String>,
}

impl Tally {
    /// One file of both: identical, equal with signatures stripped, or different.
    pub(crate) fn file(
        &mut self,
        name: &str,
        artifact: &[u8],
        rebuilt: &[u8],
    ) -> Result<(), String> {
        if artifact == rebuilt {
            self.identical += 1;
        } else if is_pe(artifact)
            && is_pe(rebuilt)
            && pe_content_digest(artifact)? == pe_content_digest(rebuilt)?
        {
            self.stripped.push(name.to_string());
        } else {
            self.different.push(name.to_string());
        }
        Ok(())
    }

    /// `Ok(what was compared)` when nothing differs and a signature explains the bytes
    /// that do.
    pub(crate) fn verdict(self, what: &str) -> Result<String, String> {
        if !self.different.is_empty() {
            return Err(format!(
                "{what}: these differ from the rebuild: {}",
                self.different.join(", ")
            ));
        }
        if self.stripped.is_empty() {
            return Err(format!(
                "the artifact is unsigned but differs from the rebuild byte-wise ({what}: every file matches, so its layout or metadata differs)"
            ));
        }
        let mut text = format!(
            "{what}: {} files byte for byte, {} PE files with their signatures stripped",
            self.identical,
            self.stripped.len()
        );
        for note in &self.notes {
            text.push_str("; ");
            text.push_str(note);
        }
        Ok(text)
    }
}

/// `Ok(what was compared)` when `artifact` is what `rebuilt` (unsigned) becomes by
/// signing, else the differences.
pub fn compare_with_rebuild(artifact: &Path, rebuilt: &Path) -> Result<String, String> {
    let digest = |p: &Path| {
        super::inputs::sha256_file(p).map_err(|e| format!("reading {}: {e}", p.display()))
    };
    if digest(artifact)? == digest(rebuilt)? {
        return Ok("identical byte for byte".into());
    }
    match ArtifactKind::of(artifact)? {
        ArtifactKind::Installer => super::compare_installer::compare_installers(artifact, rebuilt),
        kind => compare_archives(artifact, rebuilt, kind),
    }
}

fn with_temp_file<T>(
    bytes: &[u8],
    work: impl FnOnce(&mut std::fs::File) -> Result<T, String>,
) -> Result<T, String> {
    let mut file = tempfile::tempfile().map_err(|e| e.to_string())?;
    file.write_all(bytes).map_err(|e| e.to_string())?;
    work(&mut file)
}

/// The Authenticode digest of a PE file's content (its signature, if any, left out).
pub fn pe_content_digest(bytes: &[u8]) -> Result<[u8; 32], String> {
    with_temp_file(bytes, |f| {
        let layout = pe::read_layout(f).map_err(|e| e.to_string())?;
        pe::authenticode_digest(f, &layout).map_err(|e| e.to_string())
    })
}

type Archive = zip::ZipArchive<std::fs::File>;

fn open_archive(path: &Path) -> Result<Archive, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    zip::ZipArchive::new(file).map_err(|e| format!("not a readable ZIP: {e}"))
}

/// The metadata of an entry compared besides its data: its time and permissions.
type EntryMeta = (Option<zip::DateTime>, Option<u32>);

/// One entry's name, data and metadata.
fn read_entry(zip: &mut Archive, i: usize) -> Result<(String, Vec<u8>, EntryMeta), String> {
    let mut entry = zip.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
    let name = entry
        .name()
        .map_err(|e| format!("entry {i}: {e}"))?
        .to_string();
    let meta = (entry.last_modified(), entry.unix_mode());
    let mut data = Vec::new();
    entry
        .read_to_end(&mut data)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok((name, data, meta))
}

fn compare_archives(artifact: &Path, rebuilt: &Path, kind: ArtifactKind) -> Result<String, String> {
    let msix = kind == ArtifactKind::Msix;
    let (mut a, mut b) = (open_archive(artifact)?, open_archive(rebuilt)?);
    let signature_entry = |zip: &mut Archive| {
        msix && zip
            .name_for_index(zip.len().wrapping_sub(1))
            .and_then(Result::ok)
            .is_some_and(|n| n == "AppxSignature.p7x")
    };
    let a_len = a.len() - usize::from(signature_entry(&mut a));
    if a_len != b.len() {
        return Err(format!(
            "the artifact holds {a_len} entries, the rebuild {}",
            b.len()
        ));
    }
    let mut tally = Tally::default();
    let mut deferred = Vec::new();
    let mut manifest_differs = false;
    for i in 0..a_len {
        let (name, data, meta) = read_entry(&mut a, i)?;
        let (other_name, other, other_meta) = read_entry(&mut b, i)?;
        if name != other_name {
            return Err(format!(
                "entry {i} is {name} in the artifact, {other_name} in the rebuild"
            ));
        }
        if meta != other_meta {
            tally
                .different
                .push(format!("{name} (time or permissions)"));
            continue;
        }
        match name.as_str() {
            "AppxBlockMap.xml" | "[Content_Types].xml" if msix => {
                deferred.push((name, data, other))
            }
            "AppxManifest.xml" if msix && data != other => {
                if without_identity_publisher(&data) == without_identity_publisher(&other) {
                    manifest_differs = true;
                    tally
                        .notes
                        .push("AppxManifest.xml apart from Identity Publisher".into());
                } else {
                    tally.different.push(name);
                }
            }
            _ => tally.file(&name, &data, &other)?,
        }
    }
    // The block map describes these with other hashes and sizes in a signed package.
    let mut signed_parts: BTreeSet<String> = tally.stripped.iter().cloned().collect();
    if manifest_differs {
        signed_parts.insert("AppxManifest.xml".into());
    }
    for (name, data, other) in deferred {
        let matches = if name == "AppxBlockMap.xml" {
            block_maps_match(&data, &other, &signed_parts)
        } else {
            content_types_match(&data, &other)
        };
        match matches {
            Ok(true) if data == other => tally.identical += 1,
            Ok(true) => tally.notes.push(format!("{name} apart from signing")),
            Ok(false) => tally.different.push(name),
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    if msix {
        tally
            .notes
            .push("AppxSignature.p7x checked as the package signature".into());
    }
    let what = if msix { "MSIX entries" } else { "ZIP entries" };
    tally.verdict(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signatures_may_explain_a_difference() {
        let mut signed = Tally::default();
        signed.file("a.txt", b"same", b"same").unwrap();
        signed.stripped.push("App.exe".into());
        signed.notes.push("a special rule".into());
        assert_eq!(
            signed.verdict("ZIP entries").unwrap(),
            "ZIP entries: 1 files byte for byte, 1 PE files with their signatures stripped; a special rule"
        );

        let mut changed = Tally::default();
        changed.file("a.txt", b"one", b"two").unwrap();
        changed.stripped.push("App.exe".into());
        assert!(changed
            .verdict("ZIP entries")
            .unwrap_err()
            .contains("a.txt"));

        let mut unsigned = Tally::default();
        unsigned.file("a.txt", b"same", b"same").unwrap();
        assert!(unsigned
            .verdict("ZIP entries")
            .unwrap_err()
            .contains("unsigned but differs"));
    }
}
