//! Authenticode signing on the host: PFX, Azure Trusted Signing, Google Cloud KMS.
//!
//! [`SigningSession`] is what the pipeline uses: built once per job from the credentials, it
//! signs PE files in place ([`SigningSession::sign_pe`]) and produces the PKCS#7 of an MSIX
//! ([`SigningSession::sign_appx_blob`]). Every signature is timestamped (RFC 3161) and
//! checked by our own verifier before the call returns. Only a 32-byte digest ever leaves the
//! host for the cloud methods.
//!
//! Module map: [`pe`] (digest, embedding, checksum), [`pkcs7`] (SignedData), [`signer`] (the
//! [`signer::DigestSigner`] seam, certificates), [`pfx`], [`kms`], [`azure`], [`timestamp`],
//! [`appx`], [`verify`], [`signtool`] (the Windows SDK's second opinion on Windows hosts).

pub mod appx;
pub mod azure;
mod http;
pub mod kms;
pub mod pe;
pub mod pfx;
pub mod pkcs7;
pub mod signer;
pub mod signtool;
pub mod timestamp;
mod token;
pub mod verify;

use crate::config::SigningEndpoints;
use crate::job::credentials::{Credentials, SigningMethod};
use signer::{CertChain, DigestSigner};
use std::path::Path;
use std::time::Duration;

pub use verify::{verify_pe, VerifiedSignature};

/// A signing failure. `message` names the step and HTTP status; it never holds a secret.
#[derive(Debug, thiserror::Error)]
#[error("{method}: {message}")]
pub struct SignError {
    pub method: &'static str,
    pub message: String,
}

impl SignError {
    pub fn new(method: &'static str, message: impl Into<String>) -> Self {
        SignError {
            method,
            message: message.into(),
        }
    }
}

/// Timeouts and retry rules for the signing services and the timestamp server.
#[derive(Clone, Debug)]
pub struct HttpPolicy {
    /// Per HTTP request.
    pub request_timeout: Duration,
    /// Attempts for a signing-service call (token, sign, poll).
    pub attempts: u32,
    /// Attempts for the timestamp server.
    pub timestamp_attempts: u32,
    /// First backoff; doubles per attempt.
    pub initial_backoff: Duration,
    /// Cap on a server's `Retry-After`.
    pub max_retry_after: Duration,
    /// How long a Trusted Signing operation may take.
    pub operation_deadline: Duration,
    pub poll_interval: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            request_timeout: Duration::from_secs(30),
            attempts: 4,
            timestamp_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(10),
            operation_deadline: Duration::from_secs(120),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// One job's signer: the key (local or remote), its certificate chain and the TSA.
pub struct SigningSession {
    method: SigningMethod,
    signer: Box<dyn DigestSigner>,
    timestamp: timestamp::TimestampClient,
}

impl SigningSession {
    /// None when the credentials carry no method (`{}`): ship unsigned.
    pub async fn from_credentials(
        creds: &Credentials,
        http: &reqwest::Client,
        endpoints: &SigningEndpoints,
    ) -> Result<Option<SigningSession>, SignError> {
        Self::with_policy(creds, http, endpoints, HttpPolicy::default()).await
    }

    /// [`SigningSession::from_credentials`] with explicit timeouts (tests use short ones).
    pub async fn with_policy(
        creds: &Credentials,
        http: &reqwest::Client,
        endpoints: &SigningEndpoints,
        policy: HttpPolicy,
    ) -> Result<Option<SigningSession>, SignError> {
        let Some(method) = creds.method() else {
            return Ok(None);
        };
        let signer: Box<dyn DigestSigner> = match method {
            SigningMethod::Pfx => {
                let pfx = creds.pfx.as_ref().expect("method() said PFX");
                Box::new(pfx::PfxSigner::load(pfx).map_err(|m| SignError::new(method.as_str(), m))?)
            }
            SigningMethod::Azure => {
                let azure = creds.azure.as_ref().expect("method() said Azure");
                Box::new(azure::AzureSigner::connect(azure, http, endpoints, &policy).await?)
            }
            SigningMethod::Kms => {
                let kms = creds.kms.as_ref().expect("method() said KMS");
                Box::new(kms::KmsSigner::connect(kms, http, endpoints, &policy).await?)
            }
        };
        signer
            .chain()
            .check_validity(std::time::SystemTime::now())
            .map_err(|m| SignError::new(method.as_str(), m))?;
        signer
            .chain()
            .algorithm()
            .map_err(|m| SignError::new(method.as_str(), m))?;
        let timestamp =
            timestamp::TimestampClient::new(http.clone(), creds.timestamp_url(), policy);
        tracing::info!(method = method.as_str(), subject = %signer::windows_dn(&signer.chain().leaf.tbs_certificate.subject), "signing session ready");
        Ok(Some(SigningSession {
            method,
            signer,
            timestamp,
        }))
    }

    pub fn method(&self) -> SigningMethod {
        self.method
    }

    /// Certificate subject as Windows renders it (reverse RDN order, "CN=…, O=…, C=…"), for
    /// the MSIX Publisher.
    pub fn publisher_dn(&self) -> String {
        signer::windows_dn(&self.signer.chain().leaf.tbs_certificate.subject)
    }

    fn err(&self, message: impl Into<String>) -> SignError {
        SignError::new(self.method.as_str(), message)
    }

    /// Signs `content` (an `SpcIndirectDataContent`) and returns the DER ContentInfo with
    /// the timestamp token in place.
    async fn sign_content(&self, content: der::asn1::Any) -> Result<Vec<u8>, SignError> {
        let der_err = |e: der::Error| self.err(format!("encoding the signature failed: {e}"));
        let signed_attrs = pkcs7::signed_attributes(&content).map_err(der_err)?;
        let digest = pkcs7::signed_attributes_digest(&signed_attrs).map_err(der_err)?;
        let signed = self.signer.sign_digest(&digest).await?;
        let algorithm = signed.chain.algorithm().map_err(|m| self.err(m))?;
        verify::check_digest_signature(&signed.chain.leaf, algorithm, &digest, &signed.signature)
            .map_err(|m| {
            self.err(format!(
                "the signature returned does not match the certificate: {m}"
            ))
        })?;
        let token = self
            .timestamp
            .stamp(self.method.as_str(), &signed.signature)
            .await?;
        pkcs7::assemble(pkcs7::SignedParts {
            content,
            signed_attrs,
            signature: signed.signature,
            algorithm,
            chain: &signed.chain,
            timestamp_token: Some(token),
        })
        .map_err(der_err)
    }

    /// Signs a PE file in place (exe, dll, NSIS Setup.exe): digest, sign, timestamp, embed,
    /// fix checksum, then verify.
    pub async fn sign_pe(&self, path: &Path) -> Result<(), SignError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let owned = path.to_path_buf();
        let (layout, scan) = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&owned).map_err(|e| format!("cannot open: {e}"))?;
            let layout = pe::read_layout(&mut file)?;
            let scan =
                pe::scan_content(&mut file, &layout).map_err(|e| format!("cannot read: {e}"))?;
            Ok::<_, String>((layout, scan))
        })
        .await
        .map_err(|e| self.err(format!("{name}: digest task failed: {e}")))?
        .map_err(|m| self.err(format!("{name}: {m}")))?;

        let content = pkcs7::pe_indirect_data(&scan.digest)
            .map_err(|e| self.err(format!("encoding failed: {e}")))?;
        let pkcs7 = self.sign_content(content).await?;

        let owned = path.to_path_buf();
        let verified = tokio::task::spawn_blocking(move || {
            pe::embed_signature(&owned, &layout, &scan, &pkcs7)
                .map_err(|e| format!("cannot write signature: {e}"))?;
            verify_pe(&owned)
                .map_err(|e| format!("verification after signing failed: {}", e.message))
        })
        .await
        .map_err(|e| self.err(format!("{name}: embed task failed: {e}")))?
        .map_err(|m| self.err(format!("{name}: {m}")))?;
        if !verified.timestamped {
            return Err(self.err(format!("{name}: signature has no timestamp after signing")));
        }
        tracing::info!(method = self.method.as_str(), file = %name, signer = %verified.signer_subject, "signed and verified");
        Ok(())
    }

    /// Returns the DER PKCS#7 ContentInfo for an MSIX whose digest blob ("APPX"+"AXPC"+…)
    /// the package writer computed.
    pub async fn sign_appx_blob(&self, blob: &[u8]) -> Result<Vec<u8>, SignError> {
        appx::check_blob(blob).map_err(|m| self.err(m))?;
        let content = pkcs7::appx_indirect_data(blob)
            .map_err(|e| self.err(format!("encoding failed: {e}")))?;
        let der = self.sign_content(content).await?;
        let verified = verify::verify_pkcs7(&der, blob)
            .map_err(|m| self.err(format!("MSIX signature verification failed: {m}")))?;
        if !verified.timestamped {
            return Err(self.err("MSIX signature has no timestamp"));
        }
        Ok(der)
    }

    /// The certificate chain currently known for this session.
    pub fn chain(&self) -> &CertChain {
        self.signer.chain()
    }
}
