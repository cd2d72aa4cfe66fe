//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>): the pre-authentication
//! encoding, signing one with the job's key, and checking one against the certificate
//! chain it carries.
//!
//! Each signature holds `keyid` (the leaf certificate's SHA-1 thumbprint, as Windows shows
//! it), `sig` (RSA PKCS#1 v1.5 or DER ECDSA P-256 over SHA-256 of the PAE) and `cert` (the
//! chain as PEM, leaf first), so a verifier needs nothing but the file.

use crate::sign::signer::{parse_certificates, CertChain, SignatureAlgorithm};
use crate::sign::{certificate, verify, SignError, SigningSession};
use base64::Engine as _;
use der::{pem::LineEnding, EncodePem};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// The payload type of an in-toto statement.
pub(crate) const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope: a payload and the signatures over its pre-authentication encoding.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The payload's type: [`PAYLOAD_TYPE`] for a build record.
    pub(crate) payload_type: String,
    /// Base64 of the statement's bytes.
    pub(crate) payload: String,
    /// The signatures (empty for an unsigned record).
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of a DSSE envelope.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// SHA-1 thumbprint of the leaf certificate, as Windows shows it.
    pub(crate) keyid: String,
    /// Base64 signature (RSA PKCS#1 v1.5 or DER ECDSA P-256) over SHA-256 of the PAE.
    pub sig: String,
    /// The certificate chain, PEM, leaf first.
    pub(crate) cert: String,
}

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Envelope {
    /// An envelope with no signature (an unsigned build's record).
    pub(crate) fn unsigned(payload: &[u8]) -> Envelope {
        Envelope {
            payload_type: PAYLOAD_TYPE.into(),
            payload: b64().encode(payload),
            signatures: Vec::new(),
        }
    }

    /// Signs `payload` with the session's key (only the SHA-256 of the PAE leaves the host).
    pub(crate) async fn sign(
        payload: &[u8],
        session: &SigningSession,
    ) -> Result<Envelope, SignError> {
        let digest: [u8; 32] = Sha256::digest(pae(PAYLOAD_TYPE, payload)).into();
        let signed = session.sign_detached_digest(&digest).await?;
        let cert = chain_pem(&signed.chain)
            .map_err(|e| SignError::new("record", format!("encoding the chain: {e}")))?;
        let mut envelope = Envelope::unsigned(payload);
        envelope.signatures.push(EnvelopeSignature {
            keyid: certificate::thumbprint(&signed.chain.leaf),
            sig: b64().encode(&signed.signature),
            cert,
        });
        Ok(envelope)
    }

    /// The decoded payload.
    pub(crate) fn payload_bytes(&self) -> Result<Vec<u8>, String> {
        b64()
            .decode(&self.payload)
            .map_err(|e| format!("payload is not base64: {e}"))
    }

    /// Checks every signature against its own certificate; returns the leaf certificates'
    /// thumbprints. An envelope without signatures passes with an empty list.
    pub(crate) fn verify(&self) -> Result<Vec<String>, String> {
        if self.payload_type != PAYLOAD_TYPE {
            return Err(format!("payloadType is {:?}", self.payload_type));
        }
        let payload = self.payload_bytes()?;
        let digest: [u8; 32] = Sha256::digest(pae(&self.payload_type, &payload)).into();
        let mut thumbprints = Vec::new();
        for s in &self.signatures {
            let certs = parse_certificates(s.cert.as_bytes()).map_err(|e| e.to_string())?;
            let leaf: &Certificate = certs.first().ok_or("signature carries no certificate")?;
            let thumbprint = certificate::thumbprint(leaf);
            if !thumbprint.eq_ignore_ascii_case(&s.keyid) {
                return Err(format!(
                    "keyid {} is not the certificate's thumbprint {thumbprint}",
                    s.keyid
                ));
            }
            let sig = b64()
                .decode(&s.sig)
                .map_err(|e| format!("signature is not base64: {e}"))?;
            let algorithm = SignatureAlgorithm::for_certificate(leaf).map_err(|e| e.to_string())?;
            verify::check_digest_signature(leaf, algorithm, &digest, &sig)
                .map_err(|e| format!("signature by {thumbprint}: {e}"))?;
            thumbprints.push(thumbprint);
        }
        Ok(thumbprints)
    }
}

fn chain_pem(chain: &CertChain) -> der::Result<String> {
    let mut pem = String::new();
    for cert in chain.all() {
        pem.push_str(&cert.to_pem(LineEnding::LF)?);
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn an_unsigned_envelope_verifies_with_no_signer_and_a_bad_type_does_not() {
        let env = Envelope::unsigned(b"{}");
        assert_eq!(env.verify(), Ok(vec![]));
        assert_eq!(env.payload_bytes().unwrap(), b"{}");
        let mut wrong = env.clone();
        wrong.payload_type = "text/plain".into();
        assert!(wrong.verify().is_err());
    }
}
