//! Authenticode signing on the host: PFX, Azure Trusted Signing, Google Cloud KMS.
//!
//! [`SigningSession`] is what the pipeline uses: built once per job from the credentials, it
//! signs PE files in place ([`SigningSession::sign_pe`]) and produces the PKCS#7 of an MSIX
//! ([`SigningSession::sign_appx_blob`]). Opening a session checks the certificate
//! ([`certificate`]) so a bad one fails the job before anything is compiled. Every signature
//! is timestamped (RFC 3161, with failover over several servers, unless the job says `none`)
//! and checked by our own verifier before the call returns. Only a 32-byte digest ever
//! leaves the host for the cloud methods.
//!
//! Module map: [`pe`] (digest, embedding, checksum), `pkcs7` (SignedData), `signer` (the
//! `signer::DigestSigner` seam, certificates), [`certificate`] (up-front checks),
//! `pfx`, `kms`, `azure`, `timestamp` + [`timestamp_servers`], `appx`, [`verify`],
//! `summary` (job-log summary, `/metrics` gauges), `signtool` (the Windows SDK's second
//! opinion on Windows hosts).

pub(crate) mod appx;
pub(crate) mod azure;
pub mod certificate;
pub(crate) mod http;
mod invalid;
pub(crate) mod kms;
pub mod pe;
pub(crate) mod pfx;
pub(crate) mod pkcs7;
pub(crate) mod signer;
pub(crate) mod signtool;
pub(crate) mod summary;
pub(crate) mod timestamp;
pub mod timestamp_servers;
pub(crate) mod token;
pub mod verify;

use crate::config::SigningEndpoints;
use crate::job::credentials::{Credentials, SigningMethod};
use certificate::CertificateReport;
use signer::{CertChain, DigestSigner, SignatureAlgorithm};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use timestamp_servers::{TimestampChoice, TimestampServers};

pub use verify::{verify_pe, VerifiedSignature};

/// A signing failure. `message` names the step and HTTP status; it never holds a secret.
#[derive(Debug, thiserror::Error)]
#[error("{method}: {message}")]
pub struct SignError {
    /// The signing method (e.g. `PFX`) or the check (`verify`, `record`) that failed.
    pub method: &'static str,
    /// What failed; names the step and HTTP status, never a secret.
    pub message: String,
}

impl SignError {
    /// A failure of `method` described by `message`.
    pub(crate) fn new(method: &'static str, message: impl std::fmt::Display) -> Self {
        SignError {
            method,
            message: message.to_string(),
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
    /// Wait between two polls of a Trusted Signing operation.
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

/// One job's signer: the key (local or remote), its checked certificate chain and the
/// timestamp servers (`None`: timestamping turned off on purpose).
pub struct SigningSession {
    method: SigningMethod,
    signer: Box<dyn DigestSigner>,
    /// The chain as checked when the session opened (embedded for PFX and KMS).
    chain: CertChain,
    certificate: CertificateReport,
    timestamp: Option<TimestampServers>,
    files_signed: AtomicUsize,
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
        let fail = |m: String| SignError::new(method.as_str(), m);
        // Trusted Signing certificates live a few days and the service renews them: a
        // near-expiry warning would fire on every job.
        let warn_expiry = method != SigningMethod::Azure;
        let (chain, certificate) =
            certificate::check_chain(signer.chain(), std::time::SystemTime::now(), warn_expiry)
                .map_err(|e| fail(e.to_string()))?;
        let timestamp = match creds.timestamp_choice().map_err(fail)? {
            TimestampChoice::Off => None,
            TimestampChoice::Servers(job) => {
                let urls = timestamp_servers::job_servers(&job, &endpoints.timestamp_fallbacks);
                Some(TimestampServers::new(http, &urls, &policy))
            }
        };
        tracing::info!(method = method.as_str(), subject = %certificate.subject, thumbprint = %certificate.thumbprint, "signing session ready");
        Ok(Some(SigningSession {
            method,
            signer,
            chain,
            certificate,
            timestamp,
            files_signed: AtomicUsize::new(0),
        }))
    }

    /// The session of a job's child process: `signer` reaches the key through the worker,
    /// `chain` and `certificate` are what the worker checked when it opened the job's
    /// session, and the child stamps its signatures itself.
    pub(crate) fn delegated(
        method: SigningMethod,
        signer: Box<dyn DigestSigner>,
        certificate: CertificateReport,
        timestamp_urls: Option<Vec<String>>,
        http: &reqwest::Client,
    ) -> SigningSession {
        let chain = signer.chain().clone();
        SigningSession {
            method,
            signer,
            chain,
            certificate,
            timestamp: timestamp_urls
                .map(|urls| TimestampServers::new(http, &urls, &HttpPolicy::default())),
            files_signed: AtomicUsize::new(0),
        }
    }

    /// The signing method of this session.
    pub fn method(&self) -> SigningMethod {
        self.method
    }

    /// Certificate subject as Windows renders it (reverse RDN order, "CN=…, O=…, C=…"), for
    /// the MSIX Publisher.
    pub fn publisher_dn(&self) -> String {
        signer::windows_dn(&self.chain.leaf.tbs_certificate.subject)
    }

    /// The certificate as checked when the session opened.
    pub fn certificate(&self) -> &CertificateReport {
        &self.certificate
    }

    /// The timestamp servers in the order they are tried; `None` when timestamping is off.
    pub fn timestamp_servers(&self) -> Option<Vec<String>> {
        self.timestamp.as_ref().map(|t| t.urls())
    }

    /// The servers that issued timestamps so far.
    pub fn timestamp_servers_used(&self) -> Vec<String> {
        self.timestamp
            .as_ref()
            .map(|t| t.used())
            .unwrap_or_default()
    }

    /// PE files and packages signed so far.
    pub fn files_signed(&self) -> usize {
        self.files_signed.load(Ordering::Relaxed)
    }

    fn err(&self, message: impl std::fmt::Display) -> SignError {
        SignError::new(self.method.as_str(), message)
    }

    /// Signs `content` (an `SpcIndirectDataContent`) and returns the DER ContentInfo with
    /// the timestamp token in place.
    async fn sign_content(&self, content: der::asn1::Any) -> Result<Vec<u8>, SignError> {
        let der_err = |e: der::Error| self.err(format!("encoding the signature failed: {e}"));
        let signed_attrs = pkcs7::signed_attributes(&content).map_err(der_err)?;
        let digest = pkcs7::signed_attributes_digest(&signed_attrs).map_err(der_err)?;
        let (signed, algorithm) = self
            .sign_and_check(
                &digest,
                "the signature returned does not match the certificate",
            )
            .await?;
        let token = match &self.timestamp {
            Some(servers) => Some(
                servers
                    .stamp(self.method.as_str(), &signed.signature)
                    .await?,
            ),
            None => None,
        };
        pkcs7::assemble(pkcs7::SignedParts {
            content,
            signed_attrs,
            signature: signed.signature,
            algorithm,
            chain: &signed.chain,
            timestamp_token: token,
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
            let layout = pe::read_layout(&mut file).map_err(|e| e.to_string())?;
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
        if !verified.timestamped && self.timestamp.is_some() {
            return Err(self.err(format!("{name}: signature has no timestamp after signing")));
        }
        self.files_signed.fetch_add(1, Ordering::Relaxed);
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
        if !verified.timestamped && self.timestamp.is_some() {
            return Err(self.err("MSIX signature has no timestamp"));
        }
        self.files_signed.fetch_add(1, Ordering::Relaxed);
        Ok(der)
    }

    /// Signs a SHA-256 digest that is not Authenticode (the build record's DSSE envelope)
    /// with the job's key, and checks the signature against the chain it comes with.
    pub(crate) async fn sign_detached_digest(
        &self,
        digest: &[u8; 32],
    ) -> Result<signer::DigestSignature, SignError> {
        let (signed, _) = self
            .sign_and_check(digest, "the record signature does not verify")
            .await?;
        Ok(signed)
    }

    /// Has the signer sign `digest`, adopts the chain checked when the session opened (or
    /// checks a renewed Trusted Signing certificate the same way), and verifies the
    /// signature against it; `mismatch` opens the error when it does not verify.
    async fn sign_and_check(
        &self,
        digest: &[u8; 32],
        mismatch: &str,
    ) -> Result<(signer::DigestSignature, SignatureAlgorithm), SignError> {
        let mut signed = self.signer.sign_digest(digest).await?;
        if signed.chain.leaf == self.chain.leaf {
            signed.chain = self.chain.clone();
        } else {
            let (chain, _) =
                certificate::check_chain(&signed.chain, std::time::SystemTime::now(), false)
                    .map_err(|m| self.err(m))?;
            signed.chain = chain;
        }
        let algorithm = signed.chain.algorithm().map_err(|m| self.err(m))?;
        verify::check_digest_signature(&signed.chain.leaf, algorithm, digest, &signed.signature)
            .map_err(|m| self.err(format!("{mismatch}: {m}")))?;
        Ok((signed, algorithm))
    }

    /// The certificate chain checked when the session opened.
    pub(crate) fn chain(&self) -> &CertChain {
        &self.chain
    }
}
