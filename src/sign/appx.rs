//! MSIX/APPX signing input: the digest blob the package writer computes
//! (`"APPX"` + `"AXPC"`+H + `"AXCD"`+H + `"AXCT"`+H + `"AXBM"`+H [+ `"AXCI"`+H], SHA-256) goes
//! whole into the `SpcIndirectDataContent` (with `SpcSipInfo`, see [`super::pkcs7`]); the
//! package writer stores the result as `AppxSignature.p7x` = `"PKCX"` + DER.

use super::invalid::SignatureError;

const TAGS: [&[u8; 4]; 5] = [b"AXPC", b"AXCD", b"AXCT", b"AXBM", b"AXCI"];

/// Checks the blob's shape: `APPX`, then four or five tagged SHA-256 hashes in order.
pub(crate) fn check_blob(blob: &[u8]) -> Result<(), SignatureError> {
    let bad = || -> SignatureError {
        "MSIX digest blob is malformed (expected APPX + AXPC/AXCD/AXCT/AXBM[/AXCI] SHA-256 hashes)"
            .into()
    };
    let rest = blob.strip_prefix(b"APPX").ok_or_else(bad)?;
    if rest.len() % 36 != 0 || !(4..=5).contains(&(rest.len() / 36)) {
        return Err(bad());
    }
    for (chunk, tag) in rest.chunks(36).zip(TAGS) {
        if &chunk[..4] != tag {
            return Err(bad());
        }
    }
    Ok(())
}

/// What each tagged digest covers, for reports.
fn covered_part(tag: &[u8]) -> &'static str {
    match tag {
        b"AXPC" => "the file records (AXPC: the bytes of every file, its name and order)",
        b"AXCD" => "the central directory (AXCD)",
        b"AXCT" => "[Content_Types].xml (AXCT)",
        b"AXBM" => "AppxBlockMap.xml (AXBM)",
        b"AXCI" => "AppxMetadata/CodeIntegrity.cat (AXCI)",
        _ => "an unknown part",
    }
}

/// The parts whose digests differ between the blob a signature signed and the blob of the
/// package as it is, e.g. `["the central directory (AXCD)"]`; every part when the blobs do
/// not even have the same shape.
pub(crate) fn changed_parts(signed: &[u8], actual: &[u8]) -> Vec<&'static str> {
    let tagged = |blob: &[u8]| -> Vec<(Vec<u8>, Vec<u8>)> {
        blob.get(4..)
            .unwrap_or_default()
            .chunks(36)
            .map(|c| {
                (
                    c[..c.len().min(4)].to_vec(),
                    c.get(4..).unwrap_or_default().to_vec(),
                )
            })
            .collect()
    };
    let (s, a) = (tagged(signed), tagged(actual));
    if check_blob(signed).is_err() || s.len() != a.len() {
        return a.iter().map(|(tag, _)| covered_part(tag)).collect();
    }
    s.iter()
        .zip(&a)
        .filter(|(x, y)| x != y)
        .map(|(_, (tag, _))| covered_part(tag))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(tags: &[&[u8; 4]]) -> Vec<u8> {
        let mut b = b"APPX".to_vec();
        for t in tags {
            b.extend_from_slice(*t);
            b.extend_from_slice(&[7u8; 32]);
        }
        b
    }

    #[test]
    fn accepts_four_or_five_hashes_in_order() {
        check_blob(&blob(&[b"AXPC", b"AXCD", b"AXCT", b"AXBM"])).unwrap();
        check_blob(&blob(&[b"AXPC", b"AXCD", b"AXCT", b"AXBM", b"AXCI"])).unwrap();
        assert!(check_blob(&blob(&[b"AXCD", b"AXPC", b"AXCT", b"AXBM"])).is_err());
        assert!(check_blob(&blob(&[b"AXPC", b"AXCD", b"AXCT"])).is_err());
        assert!(check_blob(b"APPX").is_err());
        assert!(check_blob(&[]).is_err());
    }

    #[test]
    fn changed_parts_are_named() {
        let signed = blob(&[b"AXPC", b"AXCD", b"AXCT", b"AXBM"]);
        let mut actual = signed.clone();
        assert!(changed_parts(&signed, &actual).is_empty());
        actual[4 + 36 + 10] ^= 1;
        assert_eq!(
            changed_parts(&signed, &actual),
            ["the central directory (AXCD)"]
        );
        let with_catalog = blob(&[b"AXPC", b"AXCD", b"AXCT", b"AXBM", b"AXCI"]);
        assert_eq!(changed_parts(&signed, &with_catalog).len(), 5);
    }
}
