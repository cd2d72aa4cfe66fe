//! MSIX/APPX signing input: the digest blob the package writer computes
//! (`"APPX"` + `"AXPC"`+H + `"AXCD"`+H + `"AXCT"`+H + `"AXBM"`+H [+ `"AXCI"`+H], SHA-256) goes
//! whole into the `SpcIndirectDataContent` (with `SpcSipInfo`, see [`super::pkcs7`]); the
//! package writer stores the result as `AppxSignature.p7x` = `"PKCX"` + DER.

use super::invalid::SignatureError;

const TAGS: [&[u8; 4]; 5] = [b"AXPC", b"AXCD", b"AXCT", b"AXBM", b"AXCI"];

/// Checks the blob's shape: `APPX`, then four or five tagged SHA-256 hashes in order.
pub fn check_blob(blob: &[u8]) -> Result<(), SignatureError> {
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
}
