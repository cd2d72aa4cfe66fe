//! Azure Trusted Signing (Artifact Signing) signer: Entra ID client-credentials token, then
//! `POST {endpoint}/codesigningaccounts/{account}/certificateprofiles/{profile}:sign` with the
//! digest, polling the operation until it succeeds. Each result carries the signature and
//! the (short-lived) certificate chain; the session learns the chain up front by signing a
//! probe digest, as the certificate subject is needed for the MSIX Publisher.

use super::http;
use super::signer::{parse_certificates, CertChain, DigestSignature, DigestSigner};
use super::token::{RenewingToken, TokenRequest};
use super::{HttpPolicy, SignError};
use crate::config::SigningEndpoints;
use crate::job::credentials::AzureCredentials;
use base64::Engine as _;
use std::time::Instant;
use zeroize::Zeroizing;

const METHOD: &str = "Azure Trusted Signing";
const SCOPE: &str = "https://codesigning.azure.net/.default";
const API_VERSION: &str = "2022-06-15-preview";

fn fail(message: impl std::fmt::Display) -> SignError {
    SignError::new(METHOD, message)
}

/// A certificate profile and the chain it signs with.
pub(crate) struct AzureSigner {
    client: ProfileClient,
    chain: CertChain,
}

/// A certificate profile with a bearer token.
struct ProfileClient {
    http: reqwest::Client,
    policy: HttpPolicy,
    /// `{endpoint}/codesigningaccounts/{account}/certificateprofiles/{profile}`
    profile_url: String,
    origin: String,
    token: RenewingToken,
}

fn same_origin(url: &str, origin: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.origin().ascii_serialization() == origin)
}

fn path_segment(name: &str, value: &str) -> Result<String, SignError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        return Err(fail(format!(
            "{name} must be a plain name (letters, digits, - _ .)"
        )));
    }
    Ok(value.to_string())
}

impl AzureSigner {
    pub(crate) async fn connect(
        creds: &AzureCredentials,
        http: &reqwest::Client,
        endpoints: &SigningEndpoints,
        policy: &HttpPolicy,
    ) -> Result<AzureSigner, SignError> {
        let endpoint = url::Url::parse(creds.endpoint.trim())
            .map_err(|_| fail("azure_signing_endpoint is not a URL"))?;
        if !matches!(endpoint.scheme(), "https" | "http") || endpoint.host_str().is_none() {
            return Err(fail("azure_signing_endpoint must be an https:// URL"));
        }
        let origin = endpoint.origin().ascii_serialization();
        let base = endpoint.as_str().trim_end_matches('/').to_string();
        let account = path_segment("azure_signing_account", creds.account.trim())?;
        let profile = path_segment("azure_signing_profile", creds.profile.trim())?;
        let tenant = creds.tenant_id.expose().trim();
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        {
            return Err(fail("azure_tenant_id must be a tenant id or domain"));
        }
        let token_url = format!(
            "{}/{tenant}/oauth2/v2.0/token",
            endpoints.azure_authority.trim_end_matches('/')
        );
        let client_id = Zeroizing::new(creds.client_id.expose().to_string());
        let client_secret = Zeroizing::new(creds.client_secret.expose().to_string());
        let form = move || {
            Ok(vec![
                (
                    "grant_type",
                    Zeroizing::new("client_credentials".to_string()),
                ),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
                ("scope", Zeroizing::new(SCOPE.to_string())),
            ])
        };
        let request = TokenRequest {
            method: METHOD,
            step: "Entra ID token request",
            token_url,
            form: Box::new(form),
        };
        let token = RenewingToken::fetch(request, http, policy).await?;
        let client = ProfileClient {
            http: http.clone(),
            policy: policy.clone(),
            profile_url: format!(
                "{base}/codesigningaccounts/{account}/certificateprofiles/{profile}"
            ),
            origin,
            token,
        };
        let probe: [u8; 32] =
            <sha2::Sha256 as sha2::Digest>::digest(b"perry-ship-windows certificate probe").into();
        let chain = client.sign(&probe).await?.chain;
        Ok(AzureSigner { client, chain })
    }
}

impl ProfileClient {
    /// Polls until the operation is done; returns the final JSON.
    async fn wait_for(
        &self,
        first: serde_json::Value,
        location: Option<String>,
    ) -> Result<serde_json::Value, SignError> {
        let deadline = Instant::now() + self.policy.operation_deadline;
        let mut json = first;
        let poll_url = match location {
            // the bearer token only goes back to the signing endpoint's own origin
            Some(l) if same_origin(&l, &self.origin) => l,
            _ => {
                let id = http::field(METHOD, "sign", &json, "operationId")?;
                if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return Err(fail("sign: operationId has unexpected characters"));
                }
                format!("{}/sign/{id}?api-version={API_VERSION}", self.profile_url)
            }
        };
        loop {
            match json
                .get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("InProgress")
            {
                "Succeeded" => return Ok(json),
                "Failed" | "TimedOut" | "Canceled" | "Cancelled" => {
                    let status = json["status"].as_str().unwrap_or_default();
                    return Err(fail(format!("sign operation ended with status {status}")));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "sign operation did not finish within {:?}",
                    self.policy.operation_deadline
                )));
            }
            tokio::time::sleep(self.policy.poll_interval).await;
            let bearer = self.token.bearer().await?;
            let resp = http::send(
                METHOD,
                "sign operation poll",
                &self.policy,
                self.policy.attempts,
                || self.http.get(&poll_url).bearer_auth(bearer.as_str()),
            )
            .await?;
            json = http::json_body(METHOD, "sign operation poll", resp).await?;
        }
    }
}

#[async_trait::async_trait]
impl DigestSigner for AzureSigner {
    fn chain(&self) -> &CertChain {
        &self.chain
    }

    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<DigestSignature, SignError> {
        self.client.sign(digest).await
    }
}

impl ProfileClient {
    async fn sign(&self, digest: &[u8; 32]) -> Result<DigestSignature, SignError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = serde_json::json!({"signatureAlgorithm": "RS256", "digest": b64.encode(digest)});
        let url = format!("{}:sign?api-version={API_VERSION}", self.profile_url);
        let bearer = self.token.bearer().await?;
        let resp = http::send(METHOD, "sign", &self.policy, self.policy.attempts, || {
            self.http
                .post(&url)
                .bearer_auth(bearer.as_str())
                .json(&body)
        })
        .await?;
        let location = resp
            .headers()
            .get("operation-location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let first = http::json_body(METHOD, "sign", resp).await?;
        let done = self.wait_for(first, location).await?;
        let signature = b64
            .decode(http::field(METHOD, "sign result", &done, "signature")?)
            .map_err(|_| fail("sign result: signature is not base64"))?;
        let cert_bytes = b64
            .decode(http::field(
                METHOD,
                "sign result",
                &done,
                "signingCertificate",
            )?)
            .map_err(|_| fail("sign result: signingCertificate is not base64"))?;
        let certs =
            parse_certificates(&cert_bytes).map_err(|m| fail(format!("sign result: {m}")))?;
        let chain = CertChain::from_unordered(certs).map_err(fail)?;
        Ok(DigestSignature { signature, chain })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_location_must_share_the_endpoint_origin() {
        let origin = "https://eus.codesigning.azure.net";
        assert!(same_origin(
            "https://eus.codesigning.azure.net/a/sign/1?x=y",
            origin
        ));
        assert!(!same_origin(
            "https://eus.codesigning.azure.net.evil.example/a",
            origin
        ));
        assert!(!same_origin("http://eus.codesigning.azure.net/a", origin));
        assert!(!same_origin("not a url", origin));
        assert!(same_origin(
            "http://127.0.0.1:1234/x",
            "http://127.0.0.1:1234"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:12345/x",
            "http://127.0.0.1:1234"
        ));
    }

    #[test]
    fn path_segments_reject_traversal_and_separators() {
        assert!(path_segment("a", "perry-profile_1.x").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a b", "a:sign"] {
            assert!(path_segment("a", bad).is_err(), "{bad}");
        }
    }
}
