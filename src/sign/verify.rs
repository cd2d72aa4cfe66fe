//! Our own post-signing verification: recompute the Authenticode digest, compare it with the
//! signed `SpcIndirectDataContent`, check `messageDigest`, check the signature with the
//! signer certificate's public key, check the PE checksum and the RFC 3161 token (imprint
//! and TSA signature). Trust (chains to a root) is not judged here; `osslsigncode verify`
//! does that in the tests.

use super::invalid::SignatureError;
use super::pe;
use super::pkcs7::{
    OID_CONTENT_TYPE, OID_MESSAGE_DIGEST, OID_RFC3161_TIMESTAMP, OID_SIGNED_DATA,
    OID_SPC_INDIRECT_DATA,
};
use super::signer::{windows_dn, SignatureAlgorithm};
use super::SignError;
use authenticode::SpcIndirectDataContent;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::OctetString;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use std::path::Path;
use x509_cert::Certificate;

/// What a valid signature says.
#[derive(Clone, Debug)]
pub struct VerifiedSignature {
    /// The signer certificate subject, Windows style.
    pub signer_subject: String,
    /// The signer certificate's thumbprint (SHA-1, upper-case hex).
    pub(crate) signer_thumbprint: String,
    /// Whether the signature carries an RFC 3161 timestamp.
    pub timestamped: bool,
    /// The token's genTime, when timestamped.
    pub timestamp_time: Option<String>,
}

/// Verifies the embedded signature of a PE file (streaming; memory does not grow with size).
pub fn verify_pe(path: &Path) -> Result<VerifiedSignature, SignError> {
    let err = |m: String| SignError::new("verify", format!("{}: {m}", path.display()));
    let mut file = std::fs::File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
    let layout = pe::read_layout(&mut file).map_err(|e| err(e.to_string()))?;
    let pkcs7 = pe::read_signature(&mut file, &layout).map_err(|e| err(e.to_string()))?;
    let digest = pe::authenticode_digest(&mut file, &layout).map_err(|e| err(e.to_string()))?;
    if layout.padding() != 0 {
        return Err(err("certificate table is not 8-byte aligned".into()));
    }
    let stored = pe::stored_checksum(&mut file, &layout).map_err(|e| err(e.to_string()))?;
    let actual =
        pe::pe_checksum(&mut file, layout.checksum_offset).map_err(|e| err(e.to_string()))?;
    if stored != actual {
        return Err(err(format!(
            "PE checksum {stored:#x} does not match the file ({actual:#x})"
        )));
    }
    // the WIN_CERTIFICATE is padded to 8 bytes after the DER; take exactly one DER value
    let der_len = der_length(&pkcs7).ok_or_else(|| err("signature is not DER".into()))?;
    verify_pkcs7(&pkcs7[..der_len], &digest).map_err(|m| err(m.to_string()))
}

fn der_length(bytes: &[u8]) -> Option<usize> {
    let mut reader = der::SliceReader::new(bytes).ok()?;
    let header = der::Header::decode(&mut reader).ok()?;
    let header_len = usize::try_from(header.encoded_len().ok()?).ok()?;
    let total = header_len + usize::try_from(header.length).ok()?;
    (total <= bytes.len()).then_some(total)
}

/// Verifies an Authenticode PKCS#7 whose `SpcIndirectDataContent` digest must equal
/// `expected_digest` (the PE digest, or the whole MSIX blob).
pub fn verify_pkcs7(
    der: &[u8],
    expected_digest: &[u8],
) -> Result<VerifiedSignature, SignatureError> {
    let sd = authenticode_signed_data(der)?;
    let idc = indirect_data(&sd)?;
    if idc.message_digest.digest.as_bytes() != expected_digest {
        return Err(
            "file digest does not match the signed digest (file changed after signing?)".into(),
        );
    }
    let content = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or("SignedData has no content")?;
    let signer = single_signer(&sd)?;
    let cert = verify_signer(&sd, signer, content.value(), Some(OID_SPC_INDIRECT_DATA))?;
    let (timestamped, timestamp_time) = match timestamp_token(signer)? {
        Some(token) => (
            true,
            Some(verify_timestamp(&token, signer.signature.as_bytes())?),
        ),
        None => (false, None),
    };
    Ok(VerifiedSignature {
        signer_subject: windows_dn(&cert.tbs_certificate.subject),
        signer_thumbprint: super::certificate::thumbprint(cert),
        timestamped,
        timestamp_time,
    })
}

/// The digest an Authenticode PKCS#7 says it signed (its `SpcIndirectDataContent` digest),
/// read without verifying anything: for naming what changed when it differs.
pub(crate) fn signed_digest(der: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let sd = authenticode_signed_data(der)?;
    Ok(indirect_data(&sd)?
        .message_digest
        .digest
        .as_bytes()
        .to_vec())
}

fn authenticode_signed_data(der: &[u8]) -> Result<SignedData, SignatureError> {
    let ci = ContentInfo::from_der(der)
        .map_err(|e| format!("signature is not a PKCS#7 ContentInfo: {e}"))?;
    if ci.content_type != OID_SIGNED_DATA {
        return Err("signature is not SignedData".into());
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| format!("bad SignedData: {e}"))?;
    if sd.encap_content_info.econtent_type != OID_SPC_INDIRECT_DATA {
        return Err("signed content is not SpcIndirectDataContent".into());
    }
    Ok(sd)
}

fn indirect_data(sd: &SignedData) -> Result<SpcIndirectDataContent, SignatureError> {
    let content = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or("SignedData has no content")?;
    SpcIndirectDataContent::from_der(&content.to_der().map_err(|e| e.to_string())?)
        .map_err(|e| format!("bad SpcIndirectDataContent: {e}").into())
}

fn single_signer(sd: &SignedData) -> Result<&SignerInfo, SignatureError> {
    let signers = sd.signer_infos.0.as_slice();
    match signers {
        [one] => Ok(one),
        _ => Err(format!("expected one SignerInfo, found {}", signers.len()).into()),
    }
}

/// Checks messageDigest (and contentType) and the signature of `signer`; returns its cert.
fn verify_signer<'a>(
    sd: &'a SignedData,
    signer: &SignerInfo,
    content_octets: &[u8],
    content_type: Option<const_oid::ObjectIdentifier>,
) -> Result<&'a Certificate, SignatureError> {
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or("SignerInfo has no signed attributes")?;
    let attr_value = |oid| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.get(0))
    };
    let md = attr_value(OID_MESSAGE_DIGEST).ok_or("no messageDigest attribute")?;
    let md: OctetString = md
        .decode_as()
        .map_err(|_| "messageDigest is not an OCTET STRING")?;
    if md.as_bytes() != Sha256::digest(content_octets).as_slice() {
        return Err("messageDigest does not match the signed content".into());
    }
    if let Some(expected) = content_type {
        let ct = attr_value(OID_CONTENT_TYPE).ok_or("no contentType attribute")?;
        if ct.decode_as::<const_oid::ObjectIdentifier>().ok() != Some(expected) {
            return Err("contentType attribute does not match".into());
        }
    }
    let SignerIdentifier::IssuerAndSerialNumber(id) = &signer.sid else {
        return Err("SignerInfo does not use IssuerAndSerialNumber".into());
    };
    let cert = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .find_map(|c| match c {
            CertificateChoices::Certificate(c)
                if c.tbs_certificate.issuer == id.issuer
                    && c.tbs_certificate.serial_number == id.serial_number =>
            {
                Some(c)
            }
            _ => None,
        })
        .ok_or("signer certificate is not in the signature")?;
    let digest: [u8; 32] = Sha256::digest(attrs.to_der().map_err(|e| e.to_string())?).into();
    let algorithm = SignatureAlgorithm::for_certificate(cert)?;
    check_digest_signature(cert, algorithm, &digest, signer.signature.as_bytes())?;
    Ok(cert)
}

/// Checks a signature over a SHA-256 digest with the certificate's public key.
pub(crate) fn check_digest_signature(
    cert: &Certificate,
    algorithm: SignatureAlgorithm,
    digest: &[u8; 32],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    match algorithm {
        SignatureAlgorithm::RsaPkcs1Sha256 => {
            use rsa::pkcs8::DecodePublicKey;
            let key = rsa::RsaPublicKey::from_public_key_der(&spki)
                .map_err(|e| format!("bad RSA key: {e}"))?;
            key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), digest, signature)
                .map_err(|_| "RSA signature does not verify".into())
        }
        SignatureAlgorithm::EcdsaP256Sha256 => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            use p256::pkcs8::DecodePublicKey;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
                .map_err(|e| format!("bad P-256 key: {e}"))?;
            let sig = p256::ecdsa::Signature::from_der(signature)
                .map_err(|_| "ECDSA signature is not DER")?;
            key.verify_prehash(digest, &sig)
                .map_err(|_| "ECDSA signature does not verify".into())
        }
    }
}

fn timestamp_token(signer: &SignerInfo) -> Result<Option<ContentInfo>, SignatureError> {
    let Some(attrs) = signer.unsigned_attrs.as_ref() else {
        return Ok(None);
    };
    let Some(attr) = attrs.iter().find(|a| a.oid == OID_RFC3161_TIMESTAMP) else {
        return Ok(None);
    };
    let value = attr.values.get(0).ok_or("empty timestamp attribute")?;
    value
        .decode_as::<ContentInfo>()
        .map(Some)
        .map_err(|_| "timestamp attribute is not a ContentInfo".into())
}

/// Checks that the token covers `signature` and that the TSA's signature is valid; returns
/// the time.
fn verify_timestamp(token: &ContentInfo, signature: &[u8]) -> Result<String, SignatureError> {
    let info = super::timestamp::tst_info(token)?;
    if info.message_imprint.hashed_message.as_bytes() != Sha256::digest(signature).as_slice() {
        return Err("timestamp does not cover this signature".into());
    }
    let sd: SignedData = token
        .content
        .decode_as()
        .map_err(|_| "token is not SignedData")?;
    let tsa_signer = single_signer(&sd)?;
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or("token has no content")?;
    if tsa_signer.digest_alg.oid == super::pkcs7::OID_SHA256 {
        verify_signer(&sd, tsa_signer, econtent.value(), None)
            .map_err(|m| format!("timestamp token signature: {m}"))?;
    }
    Ok(info.gen_time.to_date_time().to_string())
}
