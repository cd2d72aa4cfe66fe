//! Deallocates the Azure VM this worker runs on, through Azure Resource Manager, as the
//! original Windows worker does when it has been idle (the hub starts the VM again when a
//! job is queued).
//!
//! 1. The VM's identity (subscription, resource group, name) from the Instance Metadata
//!    Service: `GET {imds}/metadata/instance/compute` with `Metadata: true` (asked once).
//! 2. A token for `https://management.azure.com/`: from the VM's managed identity
//!    (`GET {imds}/metadata/identity/oauth2/token`), or from a service principal (client
//!    credentials at `{authority}/{tenant}/oauth2/v2.0/token`). Kept and reused until it is
//!    due for renewal; dropped when ARM answers 401.
//! 3. `POST {arm}/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Compute/
//!    virtualMachines/{vm}/deallocate?api-version=…` with the bearer token; 200 or 202 is
//!    success (Azure stops the VM shortly after).
//!
//! Every call uses the signing services' retry rules ([`crate::sign::http`]): 429, 5xx and
//! timeouts are retried with backoff, other errors fail at once. Messages never carry a
//! URL, a token or a response body.

use crate::config::AzureVmSettings;
use crate::sign::http;
use crate::sign::token::renew_after;
use crate::sign::{HttpPolicy, SignError};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const METHOD: &str = "Azure VM deallocation";
/// ARM token audience (managed identity `resource`).
const ARM_RESOURCE: &str = "https://management.azure.com/";
/// ARM token scope (client credentials).
const ARM_SCOPE: &str = "https://management.azure.com/.default";
const IMDS_COMPUTE_API: &str = "2021-02-01";
const IMDS_TOKEN_API: &str = "2018-02-01";
pub(crate) const COMPUTE_API_VERSION: &str = "2024-07-01";
/// Lifetime assumed when a token answer does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Where the VM lives in Azure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VmIdentity {
    pub(crate) subscription_id: String,
    pub(crate) resource_group: String,
    pub(crate) name: String,
}

struct CachedToken {
    token: Zeroizing<String>,
    renew_at: Instant,
}

/// An ARM client for this VM; keeps the VM identity and the token between attempts.
pub(crate) struct AzureVmClient {
    settings: AzureVmSettings,
    authority: String,
    /// For ARM and Entra ID.
    http: reqwest::Client,
    /// For IMDS: link-local, never through a proxy.
    imds_http: reqwest::Client,
    policy: HttpPolicy,
    vm: Option<VmIdentity>,
    token: Option<CachedToken>,
}

fn fail(message: impl std::fmt::Display) -> SignError {
    SignError::new(METHOD, message)
}

/// An ARM path segment: Azure names use letters, digits, `-`, `_`, `.`, `(`, `)`.
fn arm_segment(field: &str, value: &str) -> Result<String, SignError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c));
    if ok {
        Ok(value.to_string())
    } else {
        Err(fail(format!(
            "instance metadata: {field} is not a valid Azure name"
        )))
    }
}

impl AzureVmClient {
    /// `authority` is the Entra ID base URL (`PERRY_AZURE_AUTHORITY_URL`).
    pub(crate) fn new(
        settings: AzureVmSettings,
        authority: &str,
        http: reqwest::Client,
        policy: HttpPolicy,
    ) -> AzureVmClient {
        let imds_http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("the HTTP client (rustls) could not be initialised");
        AzureVmClient {
            settings,
            authority: authority.trim_end_matches('/').to_string(),
            http,
            imds_http,
            policy,
            vm: None,
            token: None,
        }
    }

    /// Asks ARM to deallocate this VM; Ok once ARM accepted the request.
    pub(crate) async fn deallocate(&mut self) -> Result<VmIdentity, SignError> {
        let vm = self.vm_identity().await?;
        let bearer = self.bearer().await?;
        let url = format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}/deallocate?api-version={COMPUTE_API_VERSION}",
            self.settings.arm_url, vm.subscription_id, vm.resource_group, vm.name
        );
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", bearer.as_str()))
            .map_err(|_| fail("the access token is not a valid header value"))?;
        authorization.set_sensitive(true);
        let result = http::send(
            METHOD,
            "ARM deallocate",
            &self.policy,
            self.policy.attempts,
            || {
                self.http
                    .post(&url)
                    .header(AUTHORIZATION, authorization.clone())
                    .header(CONTENT_LENGTH, "0")
            },
        )
        .await;
        if let Err(e) = &result {
            if e.message.contains("HTTP 401") {
                // A revoked or expired token: ask for a new one next time.
                self.token = None;
            }
        }
        result.map(|_| vm)
    }

    async fn vm_identity(&mut self) -> Result<VmIdentity, SignError> {
        if let Some(vm) = &self.vm {
            return Ok(vm.clone());
        }
        let step = "instance metadata";
        let url = format!(
            "{}/metadata/instance/compute?api-version={IMDS_COMPUTE_API}",
            self.settings.imds_url
        );
        let resp = http::send(METHOD, step, &self.policy, self.policy.attempts, || {
            self.imds_http.get(&url).header("Metadata", "true")
        })
        .await?;
        let json = http::json_body(METHOD, step, resp).await?;
        let vm = VmIdentity {
            subscription_id: arm_segment(
                "subscriptionId",
                http::field(METHOD, step, &json, "subscriptionId")?,
            )?,
            resource_group: arm_segment(
                "resourceGroupName",
                http::field(METHOD, step, &json, "resourceGroupName")?,
            )?,
            name: arm_segment("name", http::field(METHOD, step, &json, "name")?)?,
        };
        tracing::info!(
            subscription = %vm.subscription_id,
            resource_group = %vm.resource_group,
            vm = %vm.name,
            "this worker runs on an Azure VM"
        );
        self.vm = Some(vm.clone());
        Ok(vm)
    }

    /// The ARM token, renewed when due.
    async fn bearer(&mut self) -> Result<Zeroizing<String>, SignError> {
        if let Some(cached) = &self.token {
            if Instant::now() < cached.renew_at {
                return Ok(cached.token.clone());
            }
            tracing::info!("renewing the Azure Resource Manager token");
        }
        let requested_at = Instant::now();
        let (token, lifetime) = match &self.settings.service_principal {
            Some(sp) => {
                let token_url = format!("{}/{}/oauth2/v2.0/token", self.authority, sp.tenant_id);
                http::fetch_access_token(
                    METHOD,
                    "Entra ID token request",
                    &self.policy,
                    &self.http,
                    &token_url,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_id", sp.client_id.as_str()),
                        ("client_secret", sp.client_secret.expose()),
                        ("scope", ARM_SCOPE),
                    ],
                )
                .await?
            }
            None => self.managed_identity_token().await?,
        };
        self.token = Some(CachedToken {
            token: token.clone(),
            renew_at: requested_at + renew_after(lifetime.unwrap_or(DEFAULT_LIFETIME)),
        });
        Ok(token)
    }

    async fn managed_identity_token(
        &self,
    ) -> Result<(Zeroizing<String>, Option<Duration>), SignError> {
        let step = "managed identity token request";
        let mut url = url::Url::parse(&format!(
            "{}/metadata/identity/oauth2/token",
            self.settings.imds_url
        ))
        .map_err(|_| fail("PERRY_AZURE_IMDS_URL is not a base URL"))?;
        url.query_pairs_mut()
            .append_pair("api-version", IMDS_TOKEN_API)
            .append_pair("resource", ARM_RESOURCE);
        if let Some(client_id) = &self.settings.managed_identity_client_id {
            url.query_pairs_mut().append_pair("client_id", client_id);
        }
        let resp = http::send(METHOD, step, &self.policy, self.policy.attempts, || {
            self.imds_http.get(url.clone()).header("Metadata", "true")
        })
        .await?;
        let json = http::json_body(METHOD, step, resp).await?;
        let token = Zeroizing::new(http::field(METHOD, step, &json, "access_token")?.to_string());
        // IMDS sends `expires_in` as a string of seconds.
        let expires_in = match &json["expires_in"] {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        Ok((token, expires_in.map(Duration::from_secs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_instance_metadata_are_checked_before_they_reach_a_path() {
        assert_eq!(arm_segment("name", "win-build_01").unwrap(), "win-build_01");
        assert!(arm_segment("resourceGroupName", "rg.(west)").is_ok());
        for bad in ["", "a/b", "../x", "a?b", "a b", "é"] {
            assert!(arm_segment("name", bad).is_err(), "{bad:?}");
        }
    }
}
