//! Google Cloud KMS signer: service-account JWT (RS256) → OAuth access token →
//! `POST {kms}/v1/{key}:asymmetricSign` with only the SHA-256 digest. The certificate (chain)
//! comes from the credentials, since KMS holds only the key. RSA PKCS#1 v1.5 and ECDSA P-256.

use super::http;
use super::pfx::decode_base64;
use super::signer::{parse_certificates, CertChain, DigestSignature, DigestSigner};
use super::token::{RenewingToken, TokenRequest};
use super::{HttpPolicy, SignError};
use crate::config::SigningEndpoints;
use crate::job::credentials::KmsCredentials;
use base64::Engine as _;
use rsa::pkcs8::DecodePrivateKey;
use zeroize::Zeroizing;

const METHOD: &str = "Google Cloud KMS";
const SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn fail(message: impl std::fmt::Display) -> SignError {
    SignError::new(METHOD, message)
}

/// A KMS key version plus an access token and the configured certificate chain.
pub(crate) struct KmsSigner {
    http: reqwest::Client,
    policy: HttpPolicy,
    sign_url: String,
    token: RenewingToken,
    chain: CertChain,
}

impl KmsSigner {
    pub(crate) async fn connect(
        creds: &KmsCredentials,
        http: &reqwest::Client,
        endpoints: &SigningEndpoints,
        policy: &HttpPolicy,
    ) -> Result<KmsSigner, SignError> {
        let key = creds.key.trim();
        let key_ok = key.starts_with("projects/")
            && key.contains("/cryptoKeyVersions/")
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.@".contains(c))
            && !key.contains("..");
        if !key_ok {
            return Err(fail(
                "gcloud_kms_key must be a key version name projects/…/cryptoKeyVersions/N",
            ));
        }
        let cert_der = decode_base64(creds.cert_base64.expose())
            .ok_or_else(|| fail("gcloud_kms_cert_base64 is not valid base64"))?;
        let certs = parse_certificates(&cert_der)
            .map_err(|m| fail(format!("gcloud_kms_cert_base64: {m}")))?;
        let chain = CertChain::from_unordered(certs).map_err(fail)?;

        let sa_json = decode_base64(creds.service_account_base64.expose())
            .ok_or_else(|| fail("gcloud_service_account_base64 is not valid base64"))?;
        let sa: serde_json::Value = serde_json::from_slice(&sa_json)
            .map_err(|_| fail("gcloud_service_account_base64 is not service-account JSON"))?;
        let text = |name: &str| {
            sa.get(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| fail(format!("service-account JSON has no \"{name}\"")))
        };
        let client_email = text("client_email")?.to_string();
        let private_key = Zeroizing::new(text("private_key")?.to_string());
        let default_token_url = SigningEndpoints::default().gcloud_token;
        let token_url = if endpoints.gcloud_token != default_token_url {
            endpoints.gcloud_token.clone()
        } else {
            sa.get("token_uri")
                .and_then(|v| v.as_str())
                .unwrap_or(&default_token_url)
                .to_string()
        };
        drop(sa);

        // Each token request presents a freshly signed JWT (they expire too).
        let audience = token_url.clone();
        let form = move || {
            let assertion = jwt_assertion(&client_email, &private_key, &audience)?;
            Ok(vec![
                ("grant_type", Zeroizing::new(JWT_BEARER.to_string())),
                ("assertion", assertion),
            ])
        };
        let request = TokenRequest {
            method: METHOD,
            step: "OAuth token request",
            token_url,
            form: Box::new(form),
        };
        let token = RenewingToken::fetch(request, http, policy).await?;
        Ok(KmsSigner {
            http: http.clone(),
            policy: policy.clone(),
            sign_url: format!(
                "{}/v1/{key}:asymmetricSign",
                endpoints.gcloud_kms.trim_end_matches('/')
            ),
            token,
            chain,
        })
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signed JWT a service account presents to the token endpoint.
fn jwt_assertion(
    client_email: &str,
    private_key_pem: &str,
    audience: &str,
) -> Result<Zeroizing<String>, SignError> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem)
        .or_else(|_| {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            rsa::RsaPrivateKey::from_pkcs1_pem(private_key_pem)
        })
        .map_err(|_| fail("service-account private_key is not an RSA PEM key"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": client_email, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let digest = <sha2::Sha256 as sha2::Digest>::digest(signing_input.as_bytes());
    let signature = key
        .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
        .map_err(|_| fail("signing the service-account assertion failed"))?;
    Ok(Zeroizing::new(format!(
        "{signing_input}.{}",
        b64url(&signature)
    )))
}

#[async_trait::async_trait]
impl DigestSigner for KmsSigner {
    fn chain(&self) -> &CertChain {
        &self.chain
    }

    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<DigestSignature, SignError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = serde_json::json!({"digest": {"sha256": b64.encode(digest)}});
        let bearer = self.token.bearer().await?;
        let resp = http::send(
            METHOD,
            "asymmetricSign",
            &self.policy,
            self.policy.attempts,
            || {
                self.http
                    .post(&self.sign_url)
                    .bearer_auth(bearer.as_str())
                    .json(&body)
            },
        )
        .await?;
        let json = http::json_body(METHOD, "asymmetricSign", resp).await?;
        let signature = b64
            .decode(http::field(METHOD, "asymmetricSign", &json, "signature")?)
            .map_err(|_| fail("asymmetricSign: signature is not base64"))?;
        Ok(DigestSignature {
            signature,
            chain: self.chain.clone(),
        })
    }
}
