//! Authenticode PKCS#7: `SpcIndirectDataContent` for PE images and MSIX packages, the signed
//! attributes, and SignedData **version 1** with one SignerInfo (IssuerAndSerialNumber).
//!
//! Authenticode quirk: the `messageDigest` attribute is the SHA-256 of the
//! `SpcIndirectDataContent` SEQUENCE *contents* (without its tag and length).

use super::signer::{CertChain, SignatureAlgorithm, OID_ECDSA_SHA256, OID_RSA_ENCRYPTION};
use authenticode::{DigestInfo, SpcAttributeTypeAndOptionalValue, SpcIndirectDataContent};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier as Oid;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode, Tag};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::{Attribute, Attributes};

pub(crate) const OID_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub(crate) const OID_SPC_INDIRECT_DATA: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.4");
const OID_SPC_PE_IMAGE_DATA: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.15");
const OID_SPC_SIP_INFO: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.30");
const OID_SPC_SP_OPUS_INFO: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.12");
const OID_SPC_STATEMENT_TYPE: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.11");
const OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.21");
pub(crate) const OID_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
pub(crate) const OID_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
pub(crate) const OID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// Unsigned attribute holding an RFC 3161 TimeStampToken (`SPC_RFC3161_OBJID`).
pub(crate) const OID_RFC3161_TIMESTAMP: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.3.3.1");

/// `SpcSipInfo` class id of APPX/MSIX packages (4BDFC50A-07CE-E24D-B76E-23C839A09FD1, bytes as
/// stored).
const APPX_SIP_UUID: [u8; 16] = [
    0x4B, 0xDF, 0xC5, 0x0A, 0x07, 0xCE, 0xE2, 0x4D, 0xB7, 0x6E, 0x23, 0xC8, 0x39, 0xA0, 0x9F, 0xD1,
];
const APPX_SIP_VERSION: u32 = 0x0101_0000;

pub(crate) type Result<T> = std::result::Result<T, der::Error>;

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: OID_SHA256,
        parameters: Some(Any::null()),
    }
}

/// `SpcPeImageData { flags BIT STRING (includeResources), file [0] SpcLink { [2] SpcString { [0] BMP
/// "<<<Obsolete>>>" } } }`, as every signer writes it.
fn pe_image_data() -> Vec<u8> {
    let text: Vec<u8> = "<<<Obsolete>>>"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let mut bmp = vec![0x80, text.len() as u8];
    bmp.extend(text);
    let mut link = vec![0xa2, bmp.len() as u8];
    link.extend(bmp);
    let mut file = vec![0xa0, link.len() as u8];
    file.extend(link);
    let mut body = vec![0x03, 0x02, 0x07, 0x80];
    body.extend(file);
    let mut seq = vec![0x30, body.len() as u8];
    seq.extend(body);
    seq
}

/// `SpcSipInfo ::= SEQUENCE { a INTEGER, uuid OCTET STRING, b..f INTEGER }` for MSIX.
fn appx_sip_info() -> Result<Vec<u8>> {
    let mut body = APPX_SIP_VERSION.to_der()?;
    body.extend(OctetString::new(APPX_SIP_UUID.to_vec())?.to_der()?);
    for _ in 0..5 {
        body.extend(0u32.to_der()?);
    }
    Any::new(Tag::Sequence, body)?.to_der()
}

fn indirect_data(value_type: Oid, value_der: &[u8], digest: &[u8]) -> Result<Any> {
    let idc = SpcIndirectDataContent {
        data: SpcAttributeTypeAndOptionalValue {
            value_type,
            value: Any::from_der(value_der)?,
        },
        message_digest: DigestInfo {
            digest_algorithm: sha256_alg(),
            digest: OctetString::new(digest)?,
        },
    };
    Any::from_der(&idc.to_der()?)
}

/// The signed content for a PE image with the given Authenticode digest.
pub(crate) fn pe_indirect_data(digest: &[u8; 32]) -> Result<Any> {
    indirect_data(OID_SPC_PE_IMAGE_DATA, &pe_image_data(), digest)
}

/// The signed content for an MSIX package: the digest field holds the whole
/// `"APPX"+"AXPC"+…` blob (as osslsigncode and signtool write it), algorithm SHA-256.
pub(crate) fn appx_indirect_data(blob: &[u8]) -> Result<Any> {
    indirect_data(OID_SPC_SIP_INFO, &appx_sip_info()?, blob)
}

fn attribute(oid: Oid, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value)?;
    Ok(Attribute { oid, values })
}

/// contentType, messageDigest, an empty SpcSpOpusInfo and SpcStatementType = individual.
pub(crate) fn signed_attributes(content: &Any) -> Result<Attributes> {
    let content_digest = Sha256::digest(content.value());
    let mut statement = Vec::new();
    statement.extend(OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE.to_der()?);
    let mut attrs = SetOfVec::new();
    attrs.insert(attribute(
        OID_CONTENT_TYPE,
        Any::encode_from(&OID_SPC_INDIRECT_DATA)?,
    )?)?;
    attrs.insert(attribute(
        OID_MESSAGE_DIGEST,
        Any::new(Tag::OctetString, content_digest.to_vec())?,
    )?)?;
    attrs.insert(attribute(
        OID_SPC_SP_OPUS_INFO,
        Any::new(Tag::Sequence, Vec::<u8>::new())?,
    )?)?;
    attrs.insert(attribute(
        OID_SPC_STATEMENT_TYPE,
        Any::new(Tag::Sequence, statement)?,
    )?)?;
    Ok(attrs)
}

/// What the signer signs: SHA-256 over the DER `SET OF` signed attributes.
pub(crate) fn signed_attributes_digest(attrs: &Attributes) -> Result<[u8; 32]> {
    Ok(Sha256::digest(attrs.to_der()?).into())
}

fn signature_alg(alg: SignatureAlgorithm) -> AlgorithmIdentifierOwned {
    match alg {
        SignatureAlgorithm::RsaPkcs1Sha256 => AlgorithmIdentifierOwned {
            oid: OID_RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        SignatureAlgorithm::EcdsaP256Sha256 => AlgorithmIdentifierOwned {
            oid: OID_ECDSA_SHA256,
            parameters: None,
        },
    }
}

/// Everything needed for the final ContentInfo.
pub(crate) struct SignedParts<'a> {
    pub(crate) content: Any,
    pub(crate) signed_attrs: Attributes,
    pub(crate) signature: Vec<u8>,
    pub(crate) algorithm: SignatureAlgorithm,
    pub(crate) chain: &'a CertChain,
    /// DER of an RFC 3161 TimeStampToken (a ContentInfo).
    pub(crate) timestamp_token: Option<Vec<u8>>,
}

/// SignedData v1 wrapped in a ContentInfo, DER-encoded.
pub(crate) fn assemble(parts: SignedParts<'_>) -> Result<Vec<u8>> {
    let leaf = &parts.chain.leaf;
    let unsigned_attrs = match parts.timestamp_token {
        Some(token) => {
            let mut set = SetOfVec::new();
            set.insert(attribute(OID_RFC3161_TIMESTAMP, Any::from_der(&token)?)?)?;
            Some(set)
        }
        None => None,
    };
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: leaf.tbs_certificate.issuer.clone(),
            serial_number: leaf.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256_alg(),
        signed_attrs: Some(parts.signed_attrs),
        signature_algorithm: signature_alg(parts.algorithm),
        signature: OctetString::new(parts.signature)?,
        unsigned_attrs,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(sha256_alg())?;
    let mut certs = SetOfVec::new();
    for cert in parts.chain.all() {
        // a duplicate (e.g. a chain that repeats the leaf) would make the SET invalid
        let choice = CertificateChoices::Certificate(cert.clone());
        if !certs.iter().any(|c| c == &choice) {
            certs.insert(choice)?;
        }
    }
    let mut signers = SetOfVec::new();
    signers.insert(signer)?;
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: OID_SPC_INDIRECT_DATA,
            econtent: Some(parts.content),
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(signers),
    };
    ContentInfo {
        content_type: OID_SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    }
    .to_der()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pe_image_data_is_the_obsolete_link() {
        let d = pe_image_data();
        assert_eq!(&d[..6], &[0x30, 0x26, 0x03, 0x02, 0x07, 0x80]);
        assert_eq!(d.len(), 0x28);
        Any::from_der(&d).unwrap();
    }

    #[test]
    fn appx_sip_info_layout() {
        let d = appx_sip_info().unwrap();
        // SEQUENCE { INTEGER 0x01010000, OCTET STRING uuid, INTEGER 0 x5 }
        assert_eq!(&d[..8], &[0x30, 0x27, 0x02, 0x04, 0x01, 0x01, 0x00, 0x00]);
        assert_eq!(&d[8..10], &[0x04, 0x10]);
        assert_eq!(&d[10..26], &APPX_SIP_UUID);
        assert_eq!(&d[26..], &[0x02, 0x01, 0x00].repeat(5)[..]);
    }
}
