//! Signing credentials (hub-protocol.md §5): typed, unprintable, zeroed on drop.
//!
//! Precedence when several methods are present: PFX → Azure Trusted Signing → Cloud KMS.
//!
//! [`Credentials::from_json`] rules:
//! - `{}` or `null` means "ship unsigned" ([`Credentials::method`] is `None`).
//! - A method counts when its required fields are all non-empty strings. A method with some
//!   but not all of them is an error naming the first missing field (a typo must not silently
//!   ship an unsigned build). The PFX password may be empty or absent: PFX files exported
//!   without a password exist.
//! - Every string in the object, nested ones and other platforms' keys included, goes into
//!   `secret_values` for masking, except these public values: `windows_timestamp_url`,
//!   `azure_signing_endpoint`, `azure_signing_account`, `azure_signing_profile`,
//!   `gcloud_kms_key` (a resource name, not key material).
//! - Errors name the field and the rule, never the value.

use crate::sign::timestamp_servers::{parse_url_list, TimestampChoice};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// A secret string: `Debug`/`Display` print `[redacted]`, memory is zeroed on drop.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`; from now on it prints as `[redacted]`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }
    /// The raw value. Never log it, never put it in a container or on a command line.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether the secret is the empty string.
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

/// A PKCS#12 certificate and key (`windows_pfx_base64`, `windows_pfx_password`).
#[derive(Clone, Debug)]
pub struct PfxCredentials {
    /// Base64 of the PKCS#12 file.
    pub pfx_base64: Secret,
    /// `windows_pfx_password`; empty when the file has none.
    pub password: Secret,
}

/// An Azure Trusted Signing account and the Entra ID app that may use it (`azure_*`).
#[derive(Clone, Debug)]
pub struct AzureCredentials {
    /// `azure_tenant_id`: the Entra ID tenant.
    pub tenant_id: Secret,
    /// `azure_client_id`: the app's client id.
    pub client_id: Secret,
    /// `azure_client_secret`: the app's secret.
    pub client_secret: Secret,
    /// e.g. `https://eus.codesigning.azure.net`
    pub endpoint: String,
    /// `azure_signing_account`: the Trusted Signing account name.
    pub account: String,
    /// `azure_signing_profile`: the certificate profile in that account.
    pub profile: String,
}

/// A Google Cloud KMS key and its certificate (`gcloud_*`).
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SigningMethod {
    /// A PFX file sent with the job.
    Pfx,
    /// Azure Trusted Signing.
    Azure,
    /// A Google Cloud KMS key.
    Kms,
}

impl SigningMethod {
    /// The method's name for logs and reports, e.g. `Azure Trusted Signing`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SigningMethod::Pfx => "PFX",
            SigningMethod::Azure => "Azure Trusted Signing",
            SigningMethod::Kms => "Google Cloud KMS",
        }
    }
}

/// A job's signing credentials, read by [`Credentials::from_json`]; at most one method is used.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// PFX credentials, when all their fields are present.
    pub pfx: Option<PfxCredentials>,
    /// Azure Trusted Signing credentials, when all their fields are present.
    pub azure: Option<AzureCredentials>,
    /// Cloud KMS credentials, when all their fields are present.
    pub kms: Option<KmsCredentials>,
    /// `windows_timestamp_url` as given: RFC 3161 URLs separated by commas or whitespace,
    /// or `none`; see [`Credentials::timestamp_choice`].
    pub timestamp_url: Option<String>,
    /// Every secret string of the credentials object (including other platforms' keys),
    /// for masking.
    pub secret_values: Vec<Secret>,
}

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

    /// The job's timestamp servers (tried before the worker's `PERRY_TIMESTAMP_URLS`), or
    /// `Off` for `none`. Unset means "only the worker's servers".
    pub fn timestamp_choice(&self) -> Result<TimestampChoice, String> {
        match self.timestamp_url.as_deref() {
            None => Ok(TimestampChoice::Servers(Vec::new())),
            Some(text) => parse_url_list(text).map_err(|e| e.to_string()),
        }
    }
}

/// A credentials rule that failed. `problem` never contains the value.
#[derive(Debug, thiserror::Error)]
#[error("credentials field `{field}`: {problem}")]
pub struct CredentialsError {
    /// The credentials field at fault.
    pub field: String,
    /// The rule it breaks.
    pub(crate) problem: String,
}

fn fail(field: &str, problem: impl Into<String>) -> CredentialsError {
    CredentialsError {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// Keys whose values are public identifiers and are not masked.
pub(crate) const PUBLIC_KEYS: &[&str] = &[
    "windows_timestamp_url",
    "azure_signing_endpoint",
    "azure_signing_account",
    "azure_signing_profile",
    "gcloud_kms_key",
];

const PFX_FIELDS: &[&str] = &["windows_pfx_base64", "windows_pfx_password"];
const AZURE_FIELDS: &[&str] = &[
    "azure_tenant_id",
    "azure_client_id",
    "azure_client_secret",
    "azure_signing_endpoint",
    "azure_signing_account",
    "azure_signing_profile",
];
const KMS_FIELDS: &[&str] = &[
    "gcloud_kms_key",
    "gcloud_kms_cert_base64",
    "gcloud_service_account_base64",
];

/// Longest accepted public value (URLs, account names, key names).
const MAX_PUBLIC_LEN: usize = 2048;

impl Credentials {
    /// Parses the `credentials` object of a `job_assign` frame.
    pub fn from_json(value: &Value) -> Result<Credentials, CredentialsError> {
        let empty = Map::new();
        let obj = match value {
            Value::Null => &empty,
            Value::Object(obj) => obj,
            _ => return Err(fail("credentials", "must be an object")),
        };
        let fields = Fields { obj };

        let mut secret_values = Vec::new();
        for (key, value) in obj {
            if !PUBLIC_KEYS.contains(&key.as_str()) {
                collect_strings(value, &mut secret_values);
            }
        }

        let pfx = match fields.method(PFX_FIELDS, &["windows_pfx_base64"])? {
            false => None,
            true => Some(PfxCredentials {
                pfx_base64: fields.base64("windows_pfx_base64")?,
                password: Secret::new(fields.string("windows_pfx_password")?.unwrap_or_default()),
            }),
        };
        let azure = match fields.method(AZURE_FIELDS, AZURE_FIELDS)? {
            false => None,
            true => Some(AzureCredentials {
                tenant_id: fields.secret("azure_tenant_id")?,
                client_id: fields.secret("azure_client_id")?,
                client_secret: fields.secret("azure_client_secret")?,
                endpoint: fields.https_url("azure_signing_endpoint")?,
                account: fields.public_name("azure_signing_account")?,
                profile: fields.public_name("azure_signing_profile")?,
            }),
        };
        let kms = match fields.method(KMS_FIELDS, KMS_FIELDS)? {
            false => None,
            true => Some(KmsCredentials {
                key: fields.kms_key("gcloud_kms_key")?,
                cert_base64: fields.base64("gcloud_kms_cert_base64")?,
                service_account_base64: fields.base64("gcloud_service_account_base64")?,
            }),
        };
        let timestamp_url = match fields.string("windows_timestamp_url")? {
            None => None,
            Some(text) => {
                // a list may be split over lines: whitespace is a separator, not a control
                let printable = text
                    .chars()
                    .all(|c| !c.is_control() || c.is_ascii_whitespace());
                if text.len() > MAX_PUBLIC_LEN || !printable {
                    return Err(fail(
                        "windows_timestamp_url",
                        format!("must be at most {MAX_PUBLIC_LEN} printable characters"),
                    ));
                }
                parse_url_list(text).map_err(|p| fail("windows_timestamp_url", p.to_string()))?;
                Some(text.to_string())
            }
        };

        Ok(Credentials {
            pfx,
            azure,
            kms,
            timestamp_url,
            secret_values,
        })
    }
}

/// Every string inside `value` (each also trimmed), for masking: the secret values of the
/// credentials, or the whole credentials object when it does not parse.
pub(crate) fn secret_strings(value: &Value) -> Vec<Secret> {
    let mut out = Vec::new();
    collect_strings(value, &mut out);
    out
}

/// Every string inside `value`, recursively.
fn collect_strings(value: &Value, out: &mut Vec<Secret>) {
    match value {
        Value::String(s) if !s.is_empty() => {
            out.push(Secret::new(s.as_str()));
            if s.trim() != s && !s.trim().is_empty() {
                out.push(Secret::new(s.trim()));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

struct Fields<'a> {
    obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    /// The field as a trimmed string; `None` when absent, null or blank.
    fn string(&self, field: &str) -> Result<Option<&str>, CredentialsError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim())),
            Some(_) => Err(fail(field, "must be a string")),
        }
    }

    fn required(&self, field: &str) -> Result<&str, CredentialsError> {
        self.string(field)?.ok_or_else(|| {
            fail(
                field,
                "is required by the signing method but missing or empty",
            )
        })
    }

    /// Whether a method is in use: `false` when none of `all` is set, `true` when every one of
    /// `required` is set, an error naming the first missing one otherwise.
    fn method(&self, all: &[&str], required: &[&str]) -> Result<bool, CredentialsError> {
        let mut any = false;
        for field in all {
            any |= self.string(field)?.is_some();
        }
        if !any {
            return Ok(false);
        }
        for field in required {
            self.required(field)?;
        }
        Ok(true)
    }

    fn secret(&self, field: &str) -> Result<Secret, CredentialsError> {
        Ok(Secret::new(self.required(field)?))
    }

    /// A base64 secret: only base64 characters and whitespace.
    fn base64(&self, field: &str) -> Result<Secret, CredentialsError> {
        let v = self.required(field)?;
        let valid = v.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
                || b.is_ascii_whitespace()
        });
        if !valid {
            return Err(fail(field, "is not base64 text"));
        }
        Ok(Secret::new(v))
    }

    fn public_name(&self, field: &str) -> Result<String, CredentialsError> {
        let v = self.required(field)?;
        if v.len() > MAX_PUBLIC_LEN || v.chars().any(char::is_control) {
            return Err(fail(
                field,
                format!("must be at most {MAX_PUBLIC_LEN} printable characters"),
            ));
        }
        Ok(v.to_string())
    }

    fn https_url(&self, field: &str) -> Result<String, CredentialsError> {
        self.url(field, &["https"])
    }

    fn url(&self, field: &str, schemes: &[&str]) -> Result<String, CredentialsError> {
        let v = self.public_name(field)?;
        let parsed = url::Url::parse(&v).map_err(|_| fail(field, "is not a URL"))?;
        if !schemes.contains(&parsed.scheme()) || parsed.host_str().is_none_or(str::is_empty) {
            return Err(fail(
                field,
                format!("must be a {} URL with a host", schemes.join(" or ")),
            ));
        }
        Ok(v)
    }

    /// `projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`.
    fn kms_key(&self, field: &str) -> Result<String, CredentialsError> {
        let v = self.public_name(field)?;
        let parts: Vec<&str> = v.split('/').collect();
        let labels = [
            "projects",
            "locations",
            "keyRings",
            "cryptoKeys",
            "cryptoKeyVersions",
        ];
        let shape_ok = parts.len() == 10
            && parts.iter().step_by(2).zip(labels).all(|(p, l)| *p == l)
            && parts.iter().skip(1).step_by(2).all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            })
            && parts[9].bytes().all(|b| b.is_ascii_digit());
        if !shape_ok {
            return Err(fail(
                field,
                "must be a key-version resource name projects/…/locations/…/keyRings/…/cryptoKeys/…/cryptoKeyVersions/N",
            ));
        }
        Ok(v)
    }
}
