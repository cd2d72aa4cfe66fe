//! Checks a signing certificate when the signing session opens, before anything is built:
//! validity dates, the code-signing extended key usage, the digitalSignature key usage, and
//! the chain built from the certificates the credentials carry (leaf → issuer → …, each
//! link's signature checked where the algorithm is one we implement). The result is a
//! [`CertificateReport`] for the job log, the signing summary, `/metrics` and `doctor`.

use super::invalid::CertificateError;
use super::signer::{windows_dn, CertChain, SignatureAlgorithm};
use super::verify::check_digest_signature;
use const_oid::db::rfc5280::{ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE, ID_KP_CODE_SIGNING};
use const_oid::ObjectIdentifier as Oid;
use der::{Decode, Encode};
use sha2::Digest;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};
use x509_cert::Certificate;

/// A certificate expiring within this window gets a warning in the job log.
pub(crate) const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

const OID_SHA256_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
const OID_ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");

/// What the session tells about its certificate.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CertificateReport {
    /// Subject as Windows renders it.
    pub(crate) subject: String,
    /// Issuer as Windows renders it.
    pub(crate) issuer: String,
    /// SHA-1 of the DER, upper-case hex: what Windows calls the thumbprint.
    pub thumbprint: String,
    /// Start of validity (`notBefore`), as the certificate's time prints.
    pub(crate) not_before: String,
    /// End of validity (`notAfter`), as the certificate's time prints.
    pub(crate) not_after: String,
    /// `notAfter` as Unix seconds.
    pub(crate) not_after_unix: u64,
    /// Subjects from the leaf up, as far as the carried certificates reach.
    pub chain: Vec<String>,
    /// Lines for the job log (expiry soon, issuer not carried, link not checked).
    pub warnings: Vec<String>,
}

impl CertificateReport {
    /// Seconds until `notAfter` (negative once expired).
    pub fn seconds_left(&self, now: SystemTime) -> i64 {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.not_after_unix as i64 - now as i64
    }
}

/// Windows thumbprint of a certificate.
pub fn thumbprint(cert: &Certificate) -> String {
    let der = cert.to_der().unwrap_or_default();
    hex::encode_upper(sha1::Sha1::digest(der))
}

/// Fails when `cert` cannot sign code at `now`: dates, code-signing EKU, digitalSignature.
/// A certificate without a KeyUsage extension may be used for any purpose (RFC 5280 §4.2.1.3).
pub(crate) fn check_leaf(cert: &Certificate, now: SystemTime) -> Result<(), CertificateError> {
    check_dates(cert, now, "signing certificate")?;
    let subject = windows_dn(&cert.tbs_certificate.subject);
    let ext = |oid: Oid| {
        cert.tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid)
    };
    let eku = match ext(ID_CE_EXT_KEY_USAGE) {
        None => Vec::new(),
        Some(e) => {
            ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                .map_err(|_| format!("{subject}: malformed extended key usage"))?
                .0
        }
    };
    if !eku.contains(&ID_KP_CODE_SIGNING) {
        return Err(format!(
            "signing certificate {subject} has no code-signing extended key usage (1.3.6.1.5.5.7.3.3); Windows will not accept its signatures"
        ).into());
    }
    if let Some(e) = ext(ID_CE_KEY_USAGE) {
        let ku = KeyUsage::from_der(e.extn_value.as_bytes())
            .map_err(|_| format!("{subject}: malformed key usage"))?;
        if !ku.digital_signature() {
            return Err(format!(
                "signing certificate {subject} does not allow digitalSignature in its key usage"
            )
            .into());
        }
    }
    Ok(())
}

fn check_dates(cert: &Certificate, now: SystemTime, what: &str) -> Result<(), CertificateError> {
    let validity = &cert.tbs_certificate.validity;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let subject = windows_dn(&cert.tbs_certificate.subject);
    let window = format!(
        "valid from {} to {}",
        validity.not_before, validity.not_after
    );
    if validity.not_after.to_unix_duration() < now {
        return Err(format!(
            "{what} {subject} expired on {} ({window})",
            validity.not_after
        )
        .into());
    }
    if validity.not_before.to_unix_duration() > now {
        return Err(format!(
            "{what} {subject} is not valid yet: valid from {} ({window})",
            validity.not_before
        )
        .into());
    }
    Ok(())
}

/// Checks the leaf, orders the carried certificates into a chain leaf → issuer → …, checks
/// each link, and returns the chain to embed (certificates outside it are dropped) with its
/// report. `warn_expiry`: false for short-lived certificates renewed by the service.
pub(crate) fn check_chain(
    chain: &CertChain,
    now: SystemTime,
    warn_expiry: bool,
) -> Result<(CertChain, CertificateReport), CertificateError> {
    let leaf = &chain.leaf;
    check_leaf(leaf, now)?;
    SignatureAlgorithm::for_certificate(leaf)?;
    let mut warnings = Vec::new();
    let mut ordered: Vec<Certificate> = Vec::new();
    let mut pool: Vec<&Certificate> = chain.intermediates.iter().collect();
    let mut current = leaf;
    loop {
        let name = &current.tbs_certificate;
        if name.issuer == name.subject {
            break; // self-signed: the root
        }
        let Some(pos) = pool
            .iter()
            .position(|c| c.tbs_certificate.subject == name.issuer)
        else {
            warnings.push(format!(
                "the chain ends at {}; its issuer {} is not carried (Windows must know it)",
                windows_dn(&name.subject),
                windows_dn(&name.issuer)
            ));
            break;
        };
        let issuer = pool.remove(pos);
        check_dates(issuer, now, "chain certificate")?;
        if let Some(note) = check_link(current, issuer)? {
            warnings.push(note);
        }
        ordered.push(issuer.clone());
        current = ordered.last().expect("just pushed");
    }
    let validity = &leaf.tbs_certificate.validity;
    let mut report = CertificateReport {
        subject: windows_dn(&leaf.tbs_certificate.subject),
        issuer: windows_dn(&leaf.tbs_certificate.issuer),
        thumbprint: thumbprint(leaf),
        not_before: validity.not_before.to_string(),
        not_after: validity.not_after.to_string(),
        not_after_unix: validity.not_after.to_unix_duration().as_secs(),
        chain: std::iter::once(leaf)
            .chain(ordered.iter())
            .map(|c| windows_dn(&c.tbs_certificate.subject))
            .collect(),
        warnings,
    };
    let left = report.seconds_left(now);
    if warn_expiry && left < EXPIRY_WARNING.as_secs() as i64 {
        report.warnings.insert(
            0,
            format!(
                "WARNING: the signing certificate {} expires in {} day(s), on {}: renew it",
                report.subject,
                left / 86_400,
                report.not_after
            ),
        );
    }
    Ok((
        CertChain {
            leaf: leaf.clone(),
            intermediates: ordered,
        },
        report,
    ))
}

/// Checks that `issuer` signed `cert`. Returns a note when the algorithm is not one we
/// check (the link then rests on names only), an error when the signature is wrong.
fn check_link(
    cert: &Certificate,
    issuer: &Certificate,
) -> Result<Option<String>, CertificateError> {
    let algorithm = cert.signature_algorithm.oid;
    let subject = windows_dn(&cert.tbs_certificate.subject);
    let ours = match SignatureAlgorithm::for_certificate(issuer) {
        Ok(SignatureAlgorithm::RsaPkcs1Sha256) if algorithm == OID_SHA256_RSA => {
            SignatureAlgorithm::RsaPkcs1Sha256
        }
        Ok(SignatureAlgorithm::EcdsaP256Sha256) if algorithm == OID_ECDSA_SHA256 => {
            SignatureAlgorithm::EcdsaP256Sha256
        }
        _ => {
            return Ok(Some(format!(
                "note: the issuer signature on {subject} ({algorithm}) was not checked here"
            )))
        }
    };
    let tbs = cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let digest: [u8; 32] = sha2::Sha256::digest(&tbs).into();
    let signature = cert
        .signature
        .as_bytes()
        .ok_or_else(|| format!("{subject}: signature is not whole bytes"))?;
    check_digest_signature(issuer, ours, &digest, signature).map_err(|e| {
        format!(
            "the certificate chain is broken: {subject} was not signed by {} ({e})",
            windows_dn(&issuer.tbs_certificate.subject)
        )
    })?;
    Ok(None)
}
