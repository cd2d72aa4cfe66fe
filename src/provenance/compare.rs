//! Comparing an artifact with an unsigned rebuild of the same inputs.
//!
//! Unsigned artifacts must be byte-identical. For a signed portable ZIP or MSIX each entry
//! is compared: a PE file by its Authenticode content (every byte except the checksum, the
//! security directory entry and the certificate table, i.e. the file with its signature
//! stripped), any other file byte for byte; the MSIX signature, block map and content types
//! (which describe the signed files) are left out, and the manifest's `Identity Publisher`
//! (which must name the signing certificate) is not compared. A signed installer holds signed files
//! inside its compressed payload and is not comparable byte-wise.

use super::check::ArtifactKind;
use crate::sign::pe;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

/// MSIX parts that change when the package is signed.
const MSIX_SIGNING_PARTS: [&str; 3] = [
    "AppxSignature.p7x",
    "AppxBlockMap.xml",
    "[Content_Types].xml",
];

/// `Ok(())` when `artifact` is what `rebuilt` (unsigned) becomes by signing, else the
/// differences.
pub fn compare_with_rebuild(artifact: &Path, rebuilt: &Path) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let (a, b) = (read(artifact)?, read(rebuilt)?);
    if a == b {
        return Ok(());
    }
    match ArtifactKind::of(artifact)? {
        ArtifactKind::Installer => {
            if is_signed_pe(&a)? {
                Err("a signed installer cannot be compared byte-wise with an unsigned rebuild (its payload holds signed files)".into())
            } else {
                Err("the rebuilt installer differs from the artifact".into())
            }
        }
        kind => compare_archives(&a, &b, kind),
    }
}

fn is_signed_pe(bytes: &[u8]) -> Result<bool, String> {
    with_temp_file(bytes, |f| {
        Ok(pe::read_layout(f)
            .map_err(|e| e.to_string())?
            .cert_table
            .is_some())
    })
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

fn entries(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable ZIP: {e}"))?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
        let name = entry
            .name()
            .map_err(|e| format!("entry {i}: {e}"))?
            .to_string();
        out.insert(name, data);
    }
    Ok(out)
}

/// The MSIX manifest with its `Identity Publisher` value left out: a signed package names
/// its certificate's subject there, an unsigned one a placeholder.
fn without_identity_publisher(xml: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(xml);
    let Some(identity) = text.find("<Identity ") else {
        return xml.to_vec();
    };
    let marker = " Publisher=\"";
    let Some(start) = text[identity..]
        .find(marker)
        .map(|i| identity + i + marker.len())
    else {
        return xml.to_vec();
    };
    let Some(len) = text[start..].find('"') else {
        return xml.to_vec();
    };
    format!("{}{}", &text[..start], &text[start + len..]).into_bytes()
}

fn compare_archives(artifact: &[u8], rebuilt: &[u8], kind: ArtifactKind) -> Result<(), String> {
    let skip = |name: &str| kind == ArtifactKind::Msix && MSIX_SIGNING_PARTS.contains(&name);
    let a = entries(artifact)?;
    let b = entries(rebuilt)?;
    let names = |m: &BTreeMap<String, Vec<u8>>| -> Vec<String> {
        m.keys().filter(|n| !skip(n)).cloned().collect()
    };
    if names(&a) != names(&b) {
        return Err("the rebuilt archive holds other entries than the artifact".into());
    }
    let mut differences = Vec::new();
    for (name, data) in a.iter().filter(|(n, _)| !skip(n)) {
        let other = &b[name];
        if data == other {
            continue;
        }
        if kind == ArtifactKind::Msix && name == "AppxManifest.xml" {
            if without_identity_publisher(data) == without_identity_publisher(other) {
                continue;
            }
            differences.push(name.clone());
            continue;
        }
        let same_pe_content = super::check::is_pe(data)
            && super::check::is_pe(other)
            && pe_content_digest(data)? == pe_content_digest(other)?;
        if !same_pe_content {
            differences.push(name.clone());
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "entries differ from the rebuild: {}",
            differences.join(", ")
        ))
    }
}
