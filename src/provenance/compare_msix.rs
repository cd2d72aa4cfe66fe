//! The MSIX parts that signing changes besides the PE files, compared with an unsigned
//! rebuild's by exact rules:
//!
//! - `AppxManifest.xml`: equal once the `Identity Publisher` value is left out of both;
//! - `[Content_Types].xml`: the rebuild's with the signature's content type
//!   ([`SIGNATURE_CONTENT_TYPE`]) added where the writer puts it;
//! - `AppxBlockMap.xml`: the same text outside the `<File>` elements, the same files in the
//!   same order, and every `<File>` element equal except those of the parts that differ by
//!   signing (each signed PE file, and the manifest when its publisher differs), whose
//!   block hashes and sizes describe the signed bytes (the package check,
//!   [`crate::package::msix::blockmap_check`], holds them against those bytes).

use crate::package::msix::blockmap_check::part_of_block_map_name;
use crate::package::msix::manifest::SIGNATURE_CONTENT_TYPE;
use std::collections::BTreeSet;

/// The MSIX manifest with its `Identity Publisher` value left out: a signed package names
/// its certificate's subject there, an unsigned one a placeholder.
pub(crate) fn without_identity_publisher(xml: &[u8]) -> Vec<u8> {
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

/// Whether the artifact's content types are the rebuild's, plus the signature's when the
/// rebuild lacks it.
pub(crate) fn content_types_match(artifact: &[u8], rebuilt: &[u8]) -> Result<bool, String> {
    if artifact == rebuilt {
        return Ok(true);
    }
    let rebuilt = std::str::from_utf8(rebuilt).map_err(|_| "not UTF-8")?;
    let Some(body) = rebuilt.strip_suffix("</Types>") else {
        return Ok(false);
    };
    Ok(artifact == format!("{body}{SIGNATURE_CONTENT_TYPE}</Types>").as_bytes())
}

/// A block map split into the text before the first `<File`, its `<File>` elements (with
/// the part name each describes) and the text after the last.
struct SplitBlockMap<'a> {
    head: &'a str,
    files: Vec<(String, &'a str)>,
    tail: &'a str,
}

fn split_block_map(xml: &[u8]) -> Result<SplitBlockMap<'_>, String> {
    let text = std::str::from_utf8(xml).map_err(|_| "not UTF-8")?;
    let first = text.find("<File ").unwrap_or(text.len());
    let (head, mut rest) = text.split_at(first);
    let mut files = Vec::new();
    while rest.starts_with("<File ") {
        let end = rest
            .find("</File>")
            .ok_or("a <File> element is not closed")?
            + 7;
        let element = &rest[..end];
        let name = element
            .split_once(" Name=\"")
            .and_then(|(_, after)| after.split_once('"'))
            .map(|(name, _)| name)
            .ok_or("a <File> element has no Name")?;
        files.push((part_of_block_map_name(name), element));
        rest = &rest[end..];
    }
    Ok(SplitBlockMap {
        head,
        files,
        tail: rest,
    })
}

/// Whether the block maps match by this module's rule, `signed_parts` being the part names
/// that differ by signing.
pub(crate) fn block_maps_match(
    artifact: &[u8],
    rebuilt: &[u8],
    signed_parts: &BTreeSet<String>,
) -> Result<bool, String> {
    let (a, b) = (split_block_map(artifact)?, split_block_map(rebuilt)?);
    if a.head != b.head || a.tail != b.tail || a.files.len() != b.files.len() {
        return Ok(false);
    }
    Ok(a.files
        .iter()
        .zip(&b.files)
        .all(|((name, x), (other, y))| name == other && (x == y || signed_parts.contains(name))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "<?xml?>\r\n<BlockMap x=\"1\"><File Name=\"My App.exe\" Size=\"3\" LfhSize=\"40\"><Block Hash=\"AA\"/></File><File Name=\"assets\\a&amp;b.txt\" Size=\"1\" LfhSize=\"39\"><Block Hash=\"BB\"/></File></BlockMap>";

    #[test]
    fn block_maps_may_differ_only_in_the_elements_of_signed_parts() {
        let signed = MAP.replace("Hash=\"AA\"", "Hash=\"CC\"");
        let exe: BTreeSet<String> = ["My%20App.exe".to_string()].into();
        assert!(block_maps_match(signed.as_bytes(), MAP.as_bytes(), &exe).unwrap());
        assert!(!block_maps_match(signed.as_bytes(), MAP.as_bytes(), &BTreeSet::new()).unwrap());
        let other = MAP.replace("Hash=\"BB\"", "Hash=\"DD\"");
        assert!(!block_maps_match(other.as_bytes(), MAP.as_bytes(), &exe).unwrap());
        let text: BTreeSet<String> = ["assets/a&b.txt".to_string()].into();
        assert!(block_maps_match(other.as_bytes(), MAP.as_bytes(), &text).unwrap());
        let renamed = MAP.replace("x=\"1\"", "x=\"2\"");
        assert!(!block_maps_match(renamed.as_bytes(), MAP.as_bytes(), &exe).unwrap());
    }

    #[test]
    fn content_types_may_only_gain_the_signature() {
        let unsigned = "<Types><Default Extension=\"exe\"/></Types>";
        let signed = format!("<Types><Default Extension=\"exe\"/>{SIGNATURE_CONTENT_TYPE}</Types>");
        assert!(content_types_match(signed.as_bytes(), unsigned.as_bytes()).unwrap());
        assert!(content_types_match(unsigned.as_bytes(), unsigned.as_bytes()).unwrap());
        let more = signed.replace("exe", "dll");
        assert!(!content_types_match(more.as_bytes(), unsigned.as_bytes()).unwrap());
    }

    #[test]
    fn only_the_publisher_of_the_identity_is_left_out() {
        let a = b"<Identity Name=\"x\" Publisher=\"CN=A\" Version=\"1\"/>";
        let b = b"<Identity Name=\"x\" Publisher=\"CN=Unsigned\" Version=\"1\"/>";
        let c = b"<Identity Name=\"y\" Publisher=\"CN=A\" Version=\"1\"/>";
        assert_eq!(without_identity_publisher(a), without_identity_publisher(b));
        assert_ne!(without_identity_publisher(a), without_identity_publisher(c));
    }
}
