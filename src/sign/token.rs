//! OAuth access tokens for the cloud signers (Entra ID for Azure, Google's token endpoint
//! for KMS), renewed before they expire, so a job whose packaging outlasts a token's life
//! (about an hour) still signs its last file.
//!
//! A token is renewed when less than [`RENEW_MARGIN`] of its `expires_in` is left, or at
//! half its life for short-lived tokens. The request form is built anew for each renewal:
//! the KMS form carries a signed JWT that expires too. Tokens are zeroed on drop.

use super::http;
use super::{HttpPolicy, SignError};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Renew a token this long before it expires.
pub(crate) const RENEW_MARGIN: Duration = Duration::from_secs(300);
/// Lifetime assumed when the token endpoint does not say (`expires_in` missing).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The form fields of one token request (values may be secrets, hence zeroed on drop).
pub(crate) type TokenForm = Vec<(&'static str, Zeroizing<String>)>;

/// Builds the form of a token request; called for the first token and each renewal.
pub(crate) type FormBuilder = Box<dyn Fn() -> Result<TokenForm, SignError> + Send + Sync>;

/// Where and how to get a token.
pub(crate) struct TokenRequest {
    /// Signing method, for error messages (`Azure Trusted Signing`, …).
    pub(crate) method: &'static str,
    /// Step name, for error messages (`Entra ID token request`, …).
    pub(crate) step: &'static str,
    pub(crate) token_url: String,
    pub(crate) form: FormBuilder,
}

/// A bearer token that renews itself; see the module docs.
pub(crate) struct RenewingToken {
    request: TokenRequest,
    http: reqwest::Client,
    policy: HttpPolicy,
    current: tokio::sync::Mutex<Issued>,
}

struct Issued {
    token: Zeroizing<String>,
    renew_at: Instant,
}

impl RenewingToken {
    /// Gets the first token now, so bad credentials fail when the session opens.
    pub(crate) async fn fetch(
        request: TokenRequest,
        http: &reqwest::Client,
        policy: &HttpPolicy,
    ) -> Result<RenewingToken, SignError> {
        let first = issue(&request, http, policy).await?;
        Ok(RenewingToken {
            request,
            http: http.clone(),
            policy: policy.clone(),
            current: tokio::sync::Mutex::new(first),
        })
    }

    /// The token to send now, renewed first when it is due.
    pub(crate) async fn bearer(&self) -> Result<Zeroizing<String>, SignError> {
        let mut current = self.current.lock().await;
        if Instant::now() >= current.renew_at {
            tracing::info!(method = self.request.method, "renewing the access token");
            *current = issue(&self.request, &self.http, &self.policy).await?;
        }
        Ok(current.token.clone())
    }
}

async fn issue(
    request: &TokenRequest,
    http: &reqwest::Client,
    policy: &HttpPolicy,
) -> Result<Issued, SignError> {
    let form = (request.form)()?;
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let requested_at = Instant::now();
    let (token, lifetime) = http::fetch_access_token(
        request.method,
        request.step,
        policy,
        http,
        &request.token_url,
        &pairs,
    )
    .await?;
    Ok(Issued {
        token,
        renew_at: requested_at + renew_after(lifetime.unwrap_or(DEFAULT_LIFETIME)),
    })
}

/// How long after issue a token of `lifetime` is renewed.
pub(crate) fn renew_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(RENEW_MARGIN.min(lifetime / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_leaves_a_margin_before_expiry() {
        let s = Duration::from_secs;
        assert_eq!(renew_after(s(3600)), s(3300));
        assert_eq!(renew_after(s(600)), s(300));
        assert_eq!(renew_after(s(2)), s(1));
        assert_eq!(renew_after(s(0)), s(0));
    }
}
