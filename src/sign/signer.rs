//! The seam between Authenticode and a key: [`DigestSigner`] (implemented by the PFX, Cloud
//! KMS and Trusted Signing signers) signs a 32-byte SHA-256 digest and says which certificate
//! chain goes with the signature. Also: certificate parsing (DER, PEM, PKCS#7 certs-only),
//! key-type detection and the Windows rendering of a subject name.

use super::invalid::CertificateError;
use super::SignError;
use const_oid::ObjectIdentifier as Oid;
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::Certificate;

pub(crate) const OID_RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const OID_EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub(crate) const OID_SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub(crate) const OID_ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
const OID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");

/// Signature schemes we produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignatureAlgorithm {
    /// RSA PKCS#1 v1.5 over SHA-256.
    RsaPkcs1Sha256,
    /// ECDSA P-256 over SHA-256, DER-encoded `Ecdsa-Sig-Value`.
    EcdsaP256Sha256,
}

impl SignatureAlgorithm {
    /// The key type of a certificate's public key.
    pub(crate) fn for_certificate(cert: &Certificate) -> Result<Self, CertificateError> {
        let spki = &cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid == OID_RSA_ENCRYPTION {
            return Ok(SignatureAlgorithm::RsaPkcs1Sha256);
        }
        if spki.algorithm.oid == OID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<Oid>().ok());
            if curve == Some(OID_SECP256R1) {
                return Ok(SignatureAlgorithm::EcdsaP256Sha256);
            }
            return Err("certificate has an EC key on a curve other than P-256".into());
        }
        Err(format!(
            "certificate key type {} is not supported (RSA or ECDSA P-256)",
            spki.algorithm.oid
        )
        .into())
    }
}

/// The signer's certificate and any intermediates to embed.
#[derive(Clone, Debug)]
pub(crate) struct CertChain {
    pub(crate) leaf: Certificate,
    pub(crate) intermediates: Vec<Certificate>,
}

impl CertChain {
    /// Picks the leaf out of an unordered set: the certificate that issued no other one.
    pub(crate) fn from_unordered(certs: Vec<Certificate>) -> Result<Self, CertificateError> {
        if certs.is_empty() {
            return Err("no certificate found".into());
        }
        let is_issuer_of_another = |c: &Certificate| {
            certs.iter().any(|o| {
                !std::ptr::eq(o, c)
                    && o.tbs_certificate.issuer == c.tbs_certificate.subject
                    && o.tbs_certificate.subject != c.tbs_certificate.subject
            })
        };
        let leaf_index = certs
            .iter()
            .position(|c| !is_issuer_of_another(c))
            .unwrap_or(0);
        let mut certs = certs;
        let leaf = certs.remove(leaf_index);
        Ok(CertChain {
            leaf,
            intermediates: certs,
        })
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Certificate> {
        std::iter::once(&self.leaf).chain(self.intermediates.iter())
    }

    pub(crate) fn algorithm(&self) -> Result<SignatureAlgorithm, CertificateError> {
        SignatureAlgorithm::for_certificate(&self.leaf)
    }
}

/// A signature over a digest, with the chain that verifies it.
pub(crate) struct DigestSignature {
    pub(crate) signature: Vec<u8>,
    pub(crate) chain: CertChain,
}

/// Something that turns a SHA-256 digest into a signature. Only the digest leaves the host.
#[async_trait::async_trait]
pub(crate) trait DigestSigner: Send + Sync {
    /// The chain known before signing (Trusted Signing may return a newer one per signature).
    fn chain(&self) -> &CertChain;
    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<DigestSignature, SignError>;
}

/// Parses certificates from DER (one or several concatenated), PEM (`CERTIFICATE` and
/// `PKCS7` blocks) or a DER PKCS#7 certs-only bundle.
pub(crate) fn parse_certificates(bytes: &[u8]) -> Result<Vec<Certificate>, CertificateError> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(trimmed).map_err(|_| "PEM is not valid text")?;
        return parse_pem_certificates(text);
    }
    parse_der_certificates(bytes)
}

fn parse_pem_certificates(text: &str) -> Result<Vec<Certificate>, CertificateError> {
    let mut certs = Vec::new();
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin..];
        let label_end = after[11..].find("-----").ok_or("malformed PEM header")? + 11;
        let label = &after[11..label_end];
        let end_marker = format!("-----END {label}-----");
        let end = after.find(&end_marker).ok_or("PEM block has no END line")?;
        let block = &after[..end + end_marker.len()];
        let (_, der) =
            der::pem::decode_vec(block.as_bytes()).map_err(|e| format!("bad PEM block: {e}"))?;
        match label {
            "CERTIFICATE" | "PKCS7" => certs.extend(parse_der_certificates(&der)?),
            _ => {}
        }
        rest = &after[end + end_marker.len()..];
    }
    if certs.is_empty() {
        return Err("PEM holds no certificate".into());
    }
    Ok(certs)
}

fn parse_der_certificates(bytes: &[u8]) -> Result<Vec<Certificate>, CertificateError> {
    if let Ok(ci) = cms::content_info::ContentInfo::from_der(bytes) {
        if ci.content_type == OID_SIGNED_DATA {
            let sd: cms::signed_data::SignedData = ci
                .content
                .decode_as()
                .map_err(|e| format!("bad PKCS#7 certificate bundle: {e}"))?;
            let certs: Vec<Certificate> = sd
                .certificates
                .map(|set| {
                    set.0
                        .into_vec()
                        .into_iter()
                        .filter_map(|c| match c {
                            cms::cert::CertificateChoices::Certificate(c) => Some(c),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            if certs.is_empty() {
                return Err("PKCS#7 bundle holds no certificate".into());
            }
            return Ok(certs);
        }
    }
    let mut certs = Vec::new();
    let mut reader = der::SliceReader::new(bytes).map_err(|e| e.to_string())?;
    use der::Reader;
    while !reader.is_finished() {
        let cert = <Certificate as der::Decode>::decode(&mut reader)
            .map_err(|e| format!("not a DER/PEM certificate or PKCS#7 bundle: {e}"))?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(certs)
}

/// A subject as Windows renders it (`CN=…, O=…, C=…`): RDNs in reverse order, values with
/// special characters in double quotes. This is what an MSIX `Publisher` must equal.
pub(crate) fn windows_dn(name: &x509_cert::name::Name) -> String {
    let mut parts = Vec::new();
    for rdn in name.0.iter().rev() {
        for atv in rdn.0.iter() {
            let key = match atv.oid.to_string().as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.10" => "O".into(),
                "2.5.4.11" => "OU".into(),
                "2.5.4.7" => "L".into(),
                "2.5.4.8" => "S".into(),
                "2.5.4.6" => "C".into(),
                "2.5.4.9" => "STREET".into(),
                "2.5.4.5" => "SERIALNUMBER".into(),
                "1.2.840.113549.1.9.1" => "E".into(),
                "0.9.2342.19200300.100.1.25" => "DC".into(),
                other => format!("OID.{other}"),
            };
            parts.push(format!(
                "{key}={}",
                quote_dn_value(&any_to_string(&atv.value))
            ));
        }
    }
    parts.join(", ")
}

fn any_to_string(value: &der::Any) -> String {
    match value.tag() {
        Tag::BmpString => {
            let units: Vec<u16> = value
                .value()
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(value.value()).into_owned(),
    }
}

fn quote_dn_value(v: &str) -> String {
    let needs_quotes = v.is_empty()
        || v.starts_with(' ')
        || v.ends_with(' ')
        || v.chars()
            .any(|c| matches!(c, ',' | '+' | '=' | '"' | '\n' | '<' | '>' | '#' | ';'));
    if needs_quotes {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// Checks that a certificate's public key matches the given SubjectPublicKeyInfo DER.
pub(crate) fn same_public_key(cert: &Certificate, spki_der: &[u8]) -> bool {
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map(|d| d == spki_der)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::SetOfVec;
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

    fn rdn(oid: &str, v: &str) -> RelativeDistinguishedName {
        let mut set = SetOfVec::new();
        set.insert(AttributeTypeAndValue {
            oid: Oid::new_unwrap(oid),
            value: der::Any::new(Tag::Utf8String, v.as_bytes()).unwrap(),
        })
        .unwrap();
        RelativeDistinguishedName(set)
    }

    #[test]
    fn windows_dn_reverses_and_quotes() {
        let name: Name = RdnSequence(vec![
            rdn("2.5.4.6", "US"),
            rdn("2.5.4.10", "Acme, Inc."),
            rdn("2.5.4.3", "Perry App"),
        ]);
        assert_eq!(windows_dn(&name), "CN=Perry App, O=\"Acme, Inc.\", C=US");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(parse_certificates(b"hello").is_err());
        assert!(parse_certificates(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
        assert!(parse_certificates(&[]).is_err());
    }
}
