//! Signing credentials (hub-protocol.md §5): typed, unprintable, zeroed on drop.
//!
//! Precedence when several methods are present: PFX → Azure Trusted Signing → Cloud KMS.

use zeroize::Zeroizing;

/// A secret string: `Debug`/`Display` print `[redacted]`, memory is zeroed on drop.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }
    /// The raw value. Never log it, never put it in a container or on a command line.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Debug)]
pub struct PfxCredentials {
    /// Base64 of the PKCS#12 file.
    pub pfx_base64: Secret,
    pub password: Secret,
}

#[derive(Clone, Debug)]
pub struct AzureCredentials {
    pub tenant_id: Secret,
    pub client_id: Secret,
    pub client_secret: Secret,
    /// e.g. `https://eus.codesigning.azure.net`
    pub endpoint: String,
    pub account: String,
    pub profile: String,
}

#[derive(Clone, Debug)]
pub struct KmsCredentials {
    /// Key-version resource name `projects/…/cryptoKeyVersions/N`.
    pub key: String,
    /// Base64 of the signing certificate (DER or PEM; may hold a chain).
    pub cert_base64: Secret,
    /// Base64 of the service-account JSON.
    pub service_account_base64: Secret,
}

/// Which signing method a job uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningMethod {
    Pfx,
    Azure,
    Kms,
}

impl SigningMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningMethod::Pfx => "PFX",
            SigningMethod::Azure => "Azure Trusted Signing",
            SigningMethod::Kms => "Google Cloud KMS",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub pfx: Option<PfxCredentials>,
    pub azure: Option<AzureCredentials>,
    pub kms: Option<KmsCredentials>,
    /// RFC 3161 URL, default `http://timestamp.digicert.com`.
    pub timestamp_url: Option<String>,
    /// Every secret string of the credentials object (including other platforms' keys),
    /// for masking.
    pub secret_values: Vec<Secret>,
}

pub const DEFAULT_TIMESTAMP_URL: &str = "http://timestamp.digicert.com";

impl Credentials {
    /// The method to use, by precedence; `None` means "ship unsigned".
    pub fn method(&self) -> Option<SigningMethod> {
        if self.pfx.is_some() {
            Some(SigningMethod::Pfx)
        } else if self.azure.is_some() {
            Some(SigningMethod::Azure)
        } else if self.kms.is_some() {
            Some(SigningMethod::Kms)
        } else {
            None
        }
    }

    pub fn timestamp_url(&self) -> &str {
        self.timestamp_url
            .as_deref()
            .unwrap_or(DEFAULT_TIMESTAMP_URL)
    }
}

// ---- STAND-IN (hub branch only): replaced by the job helper's version at merge. ----
#[derive(Debug, thiserror::Error)]
#[error("credentials: {0}")]
pub struct CredentialsError(pub String);

impl Credentials {
    pub fn from_json(v: &serde_json::Value) -> Result<Credentials, CredentialsError> {
        let obj = v
            .as_object()
            .ok_or_else(|| CredentialsError("not an object".into()))?;
        let secret_values = obj
            .values()
            .filter_map(|x| x.as_str())
            .filter(|x| !x.is_empty())
            .map(Secret::new)
            .collect();
        Ok(Credentials {
            secret_values,
            ..Default::default()
        })
    }
}
