//! PFX (PKCS#12) signer: the key is decrypted in memory with the password (no file, no
//! command line) and signs digests locally. RSA and ECDSA P-256 keys; the certificate that
//! matches the key is the leaf, the other certificates of the PFX are embedded as the chain.

use super::invalid::PfxError;
use super::signer::{same_public_key, CertChain, DigestSignature, DigestSigner};
use super::SignError;
use crate::job::credentials::PfxCredentials;
use base64::Engine as _;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use zeroize::Zeroizing;

const METHOD: &str = "PFX";

enum LocalKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
}

/// A private key and certificate chain loaded from a PFX.
pub(crate) struct PfxSigner {
    key: LocalKey,
    chain: CertChain,
}

impl std::fmt::Debug for PfxSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PfxSigner")
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Decodes base64 that may contain line breaks.
pub(crate) fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
        .map(Zeroizing::new)
}

impl PfxSigner {
    /// Parses the PFX; errors are sentences for the job's error message.
    pub(crate) fn load(creds: &PfxCredentials) -> Result<PfxSigner, PfxError> {
        let der = decode_base64(creds.pfx_base64.expose())
            .ok_or("windows_pfx_base64 is not valid base64")?;
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&der, creds.password.expose())
            .map_err(|e| {
                use p12_keystore::error::Error as E;
                match e {
                    E::MacError(_) => {
                        "wrong PFX password (the PKCS#12 integrity check failed)".to_string()
                    }
                    E::UnpadError | E::Pkcs5Error(_) => {
                        "cannot decrypt the PFX (wrong password or unsupported encryption)"
                            .to_string()
                    }
                    E::UnsupportedEncryptionScheme | E::UnsupportedMacAlgorithm => {
                        format!("the PFX uses an unsupported algorithm ({e})")
                    }
                    _ => "corrupt PFX: not a valid PKCS#12 file".to_string(),
                }
            })?;
        let key_bag = archive.keys.first().ok_or("the PFX holds no private key")?;
        let key_der = Zeroizing::new(key_bag.key.as_der().to_vec());
        let (key, spki) = if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(&key_der) {
            let spki = k
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            (LocalKey::Rsa(Box::new(k)), spki)
        } else if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(&key_der) {
            let spki = k
                .verifying_key()
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            (LocalKey::P256(k), spki)
        } else {
            return Err("the PFX key is neither RSA nor ECDSA P-256".into());
        };
        let mut certs = Vec::new();
        for bag in &archive.certs {
            let cert = <x509_cert::Certificate as der::Decode>::from_der(bag.cert.as_der())
                .map_err(|e| format!("corrupt certificate in the PFX: {e}"))?;
            certs.push(cert);
        }
        if certs.is_empty() {
            return Err("the PFX holds no certificate".into());
        }
        let leaf_index = certs
            .iter()
            .position(|c| same_public_key(c, spki.as_bytes()))
            .ok_or("the PFX certificate does not match its private key")?;
        let leaf = certs.remove(leaf_index);
        Ok(PfxSigner {
            key,
            chain: CertChain {
                leaf,
                intermediates: certs,
            },
        })
    }
}

#[async_trait::async_trait]
impl DigestSigner for PfxSigner {
    fn chain(&self) -> &CertChain {
        &self.chain
    }

    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<DigestSignature, SignError> {
        let signature = match &self.key {
            LocalKey::Rsa(k) => k
                .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest)
                .map_err(|e| SignError::new(METHOD, format!("RSA signing failed: {e}")))?,
            LocalKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k
                    .sign_prehash(digest)
                    .map_err(|e| SignError::new(METHOD, format!("ECDSA signing failed: {e}")))?;
                sig.to_der().as_bytes().to_vec()
            }
        };
        Ok(DigestSignature {
            signature,
            chain: self.chain.clone(),
        })
    }
}
