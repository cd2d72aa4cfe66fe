//! Local stand-ins for the services the signer talks to, on 127.0.0.1 random ports:
//! an RFC 3161 TSA (wrapping `openssl ts -reply`), a Google OAuth token endpoint + Cloud KMS
//! `asymmetricSign`, and an Entra ID token endpoint + the Trusted Signing sign/poll API.
//! Each signs with a test key and can inject faults (HTTP status, N failures, hang).

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A fault to inject on one endpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    None,
    /// Always answer with this status.
    Status(u16),
    /// Answer with this status the next `n` times, then normally.
    StatusTimes(u16, u32),
    /// Never answer (until the client gives up).
    Hang,
}

/// Shared fault switch and hit counter of one endpoint.
#[derive(Default)]
pub struct Endpoint {
    fault: Mutex<Option<Fault>>,
    pub hits: AtomicU32,
}

impl Endpoint {
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = Some(fault);
    }

    pub fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Counts the hit and returns the response to send instead of the normal one, if any.
    async fn injected(&self) -> Option<Response> {
        self.hits.fetch_add(1, Ordering::SeqCst);
        let fault = {
            let mut guard = self.fault.lock().unwrap();
            let current = guard.unwrap_or(Fault::None);
            if let Fault::StatusTimes(code, n) = current {
                *guard = Some(if n <= 1 {
                    Fault::None
                } else {
                    Fault::StatusTimes(code, n - 1)
                });
            }
            current
        };
        match fault {
            Fault::None => None,
            Fault::Status(code) | Fault::StatusTimes(code, _) => {
                let mut r = (StatusCode::from_u16(code).unwrap(), "injected fault").into_response();
                if code == 429 {
                    r.headers_mut().insert("retry-after", "0".parse().unwrap());
                }
                Some(r)
            }
            Fault::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                None
            }
        }
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A key that signs SHA-256 digests like KMS / Trusted Signing do.
#[derive(Clone)]
pub enum TestKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
}

impl TestKey {
    pub fn from_pem_file(path: &std::path::Path) -> TestKey {
        let pem = std::fs::read_to_string(path).unwrap();
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(&pem) {
            return TestKey::Rsa(Box::new(k));
        }
        TestKey::P256(
            p256::ecdsa::SigningKey::from_pkcs8_pem(&pem).expect("RSA or P-256 PKCS#8 key"),
        )
    }

    pub fn sign(&self, digest: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Rsa(k) => k
                .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest)
                .unwrap(),
            TestKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(digest).unwrap();
                s.to_der().as_bytes().to_vec()
            }
        }
    }
}

// ---------------------------------------------------------------- TSA

pub struct Tsa {
    pub url: String,
    pub endpoint: Arc<Endpoint>,
}

/// An RFC 3161 server answering through `openssl ts -reply -config {pki}/tsa.cnf`.
pub async fn start_tsa(pki_dir: PathBuf) -> Tsa {
    let endpoint = Arc::new(Endpoint::default());
    let lock = Arc::new(tokio::sync::Mutex::new(0u64));
    let ep = endpoint.clone();
    let router = Router::new().fallback(move |body: Bytes| {
        let (ep, lock, dir) = (ep.clone(), lock.clone(), pki_dir.clone());
        async move {
            if let Some(r) = ep.injected().await {
                return r;
            }
            let mut n = lock.lock().await;
            *n += 1;
            let query = dir.join(format!("q{n}.tsq"));
            let reply = dir.join(format!("r{n}.tsr"));
            std::fs::write(&query, &body).unwrap();
            let out = tokio::process::Command::new("openssl")
                .args(["ts", "-reply", "-config"])
                .arg(dir.join("tsa.cnf"))
                .arg("-queryfile")
                .arg(&query)
                .arg("-out")
                .arg(&reply)
                .output()
                .await
                .unwrap();
            let data = std::fs::read(&reply).unwrap_or_default();
            let _ = std::fs::remove_file(&query);
            let _ = std::fs::remove_file(&reply);
            if !out.status.success() || data.is_empty() {
                return (StatusCode::INTERNAL_SERVER_ERROR, "openssl ts failed").into_response();
            }
            ([("content-type", "application/timestamp-reply")], data).into_response()
        }
    });
    Tsa {
        url: serve(router).await,
        endpoint,
    }
}

// ---------------------------------------------------------------- Google

pub const KMS_ACCESS_TOKEN: &str = "ya29.kms-test-access-token";

pub struct Kms {
    pub url: String,
    pub token: Arc<Endpoint>,
    pub sign: Arc<Endpoint>,
    /// Key names seen in asymmetricSign calls.
    pub keys_seen: Arc<Mutex<Vec<String>>>,
    /// `expires_in` of the tokens issued from now on (default 3600 s).
    pub token_lifetime: Arc<Mutex<Duration>>,
}

/// Access tokens a test server issued, each `{prefix}-{n}` valid for its lifetime.
#[derive(Clone, Default)]
struct IssuedTokens(Arc<Mutex<HashMap<String, std::time::Instant>>>);

impl IssuedTokens {
    fn issue(&self, prefix: &str, lifetime: Duration) -> String {
        let mut tokens = self.0.lock().unwrap();
        let token = format!("{prefix}-{}", tokens.len() + 1);
        tokens.insert(token.clone(), std::time::Instant::now() + lifetime);
        token
    }

    /// The `Authorization` header carries a token we issued that has not expired.
    fn accepts(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        bearer.is_some_and(|t| {
            self.0
                .lock()
                .unwrap()
                .get(t)
                .is_some_and(|expiry| std::time::Instant::now() < *expiry)
        })
    }
}

/// Token endpoint at `{url}/token` (checks the RS256 JWT with the service account's public
/// key) and KMS at `{url}/v1/{key}:asymmetricSign` (signs with `key`).
pub async fn start_kms(sa_public_pem: String, key: TestKey) -> Kms {
    let token = Arc::new(Endpoint::default());
    let sign = Arc::new(Endpoint::default());
    let keys_seen = Arc::new(Mutex::new(Vec::new()));
    let token_lifetime = Arc::new(Mutex::new(Duration::from_secs(3600)));
    let issued = IssuedTokens::default();
    let sa_key = rsa::RsaPublicKey::from_public_key_pem(&sa_public_pem).unwrap();
    let (t, s, seen, life) = (
        token.clone(),
        sign.clone(),
        keys_seen.clone(),
        token_lifetime.clone(),
    );
    let router = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (t, s, seen, sa_key, key) = (t.clone(), s.clone(), seen.clone(), sa_key.clone(), key.clone());
        let (life, issued) = (life.clone(), issued.clone());
        async move {
            let path = uri.path().to_string();
            if method == Method::POST && path == "/token" {
                if let Some(r) = t.injected().await {
                    return r;
                }
                let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
                if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
                    return (StatusCode::BAD_REQUEST, "bad grant_type").into_response();
                }
                if !jwt_is_valid(form.get("assertion").map(String::as_str).unwrap_or(""), &sa_key) {
                    return (StatusCode::UNAUTHORIZED, "invalid assertion").into_response();
                }
                let lifetime = *life.lock().unwrap();
                let token = issued.issue(KMS_ACCESS_TOKEN, lifetime);
                return axum::Json(serde_json::json!({"access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer"})).into_response();
            }
            if method == Method::POST && path.starts_with("/v1/") && path.ends_with(":asymmetricSign") {
                if let Some(r) = s.injected().await {
                    return r;
                }
                if !issued.accepts(&headers) {
                    return (StatusCode::UNAUTHORIZED, "no valid token").into_response();
                }
                seen.lock().unwrap().push(path["/v1/".len()..path.len() - ":asymmetricSign".len()].to_string());
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let Some(digest) = json["digest"]["sha256"].as_str().and_then(|d| B64.decode(d).ok()) else {
                    return (StatusCode::BAD_REQUEST, "no digest").into_response();
                };
                if digest.len() != 32 {
                    return (StatusCode::BAD_REQUEST, "digest is not SHA-256").into_response();
                }
                return axum::Json(serde_json::json!({"signature": B64.encode(key.sign(&digest))})).into_response();
            }
            (StatusCode::NOT_FOUND, "no such endpoint").into_response()
        }
    });
    Kms {
        url: serve(router).await,
        token,
        sign,
        keys_seen,
        token_lifetime,
    }
}

fn jwt_is_valid(jwt: &str, key: &rsa::RsaPublicKey) -> bool {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return false;
    }
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Ok(sig) = url.decode(parts[2]) else {
        return false;
    };
    let digest =
        <sha2::Sha256 as sha2::Digest>::digest(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let claims: serde_json::Value = url
        .decode(parts[1])
        .ok()
        .and_then(|c| serde_json::from_slice(&c).ok())
        .unwrap_or_default();
    claims["iss"].is_string()
        && claims["aud"].is_string()
        && key
            .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig)
            .is_ok()
}

// ---------------------------------------------------------------- Azure

pub const AZURE_ACCESS_TOKEN: &str = "eyJ0eXAi.azure-test-access-token";

pub struct Azure {
    pub url: String,
    pub token: Arc<Endpoint>,
    pub sign: Arc<Endpoint>,
    pub poll: Arc<Endpoint>,
    /// Polls answered "InProgress" before an operation succeeds.
    pub polls_before_done: Arc<AtomicU32>,
    /// `expires_in` of the tokens issued from now on (default 3600 s).
    pub token_lifetime: Arc<Mutex<Duration>>,
}

/// Entra ID token at `{url}/{tenant}/oauth2/v2.0/token` (checks client id + secret) and the
/// Trusted Signing API at `{url}/codesigningaccounts/…` returning `cert_bundle` (base64 as
/// the service does) with each signature.
pub async fn start_azure(
    client_id: String,
    client_secret: String,
    key: TestKey,
    cert_bundle: Vec<u8>,
) -> Azure {
    let token = Arc::new(Endpoint::default());
    let sign = Arc::new(Endpoint::default());
    let poll = Arc::new(Endpoint::default());
    let polls_before_done = Arc::new(AtomicU32::new(1));
    let token_lifetime = Arc::new(Mutex::new(Duration::from_secs(3600)));
    let issued = IssuedTokens::default();
    // operation id → (signature, polls answered so far)
    type Operations = Arc<Mutex<HashMap<String, (Vec<u8>, u32)>>>;
    let ops: Operations = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (t, s, p, before) = (
        token.clone(),
        sign.clone(),
        poll.clone(),
        polls_before_done.clone(),
    );
    let base2 = base.clone();
    let life = token_lifetime.clone();
    let router = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (life, issued) = (life.clone(), issued.clone());
            let (t, s, p, before, ops, key, bundle, id, secret, base) = (
                t.clone(),
                s.clone(),
                p.clone(),
                before.clone(),
                ops.clone(),
                key.clone(),
                cert_bundle.clone(),
                client_id.clone(),
                client_secret.clone(),
                base2.clone(),
            );
            async move {
                let path = uri.path().to_string();
                let authorized = issued.accepts(&headers);
                if method == Method::POST && path.ends_with("/oauth2/v2.0/token") {
                    if let Some(r) = t.injected().await {
                        return r;
                    }
                    let form: HashMap<String, String> =
                        url::form_urlencoded::parse(&body).into_owned().collect();
                    let ok = form.get("grant_type").map(String::as_str)
                        == Some("client_credentials")
                        && form.get("client_id") == Some(&id)
                        && form.get("client_secret") == Some(&secret)
                        && form.get("scope").map(String::as_str)
                            == Some("https://codesigning.azure.net/.default");
                    if !ok {
                        return (StatusCode::UNAUTHORIZED, "invalid_client").into_response();
                    }
                    let lifetime = *life.lock().unwrap();
                    let token = issued.issue(AZURE_ACCESS_TOKEN, lifetime);
                    return axum::Json(
                        serde_json::json!({"access_token": token, "expires_in": lifetime.as_secs()}),
                    )
                    .into_response();
                }
                if method == Method::POST
                    && path.starts_with("/codesigningaccounts/")
                    && path.ends_with(":sign")
                {
                    if let Some(r) = s.injected().await {
                        return r;
                    }
                    if !authorized {
                        return (StatusCode::UNAUTHORIZED, "no token").into_response();
                    }
                    if !uri.query().unwrap_or("").contains("api-version=") {
                        return (StatusCode::BAD_REQUEST, "no api-version").into_response();
                    }
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let Some(digest) = json["digest"].as_str().and_then(|d| B64.decode(d).ok())
                    else {
                        return (StatusCode::BAD_REQUEST, "no digest").into_response();
                    };
                    if json["signatureAlgorithm"] != "RS256"
                        && json["signatureAlgorithm"] != "ES256"
                    {
                        return (StatusCode::BAD_REQUEST, "bad signatureAlgorithm").into_response();
                    }
                    let op = uuid::Uuid::new_v4().to_string();
                    ops.lock().unwrap().insert(
                        op.clone(),
                        (key.sign(&digest), before.load(Ordering::SeqCst)),
                    );
                    let profile_path = path.trim_end_matches(":sign");
                    let location =
                        format!("{base}{profile_path}/sign/{op}?api-version=2022-06-15-preview");
                    return (
                        StatusCode::ACCEPTED,
                        [("operation-location", location)],
                        axum::Json(serde_json::json!({"operationId": op, "status": "InProgress"})),
                    )
                        .into_response();
                }
                if method == Method::GET
                    && path.starts_with("/codesigningaccounts/")
                    && path.contains("/sign/")
                {
                    if let Some(r) = p.injected().await {
                        return r;
                    }
                    if !authorized {
                        return (StatusCode::UNAUTHORIZED, "no token").into_response();
                    }
                    let op = path.rsplit('/').next().unwrap_or_default().to_string();
                    let mut ops = ops.lock().unwrap();
                    let Some((sig, remaining)) = ops.get_mut(&op) else {
                        return (StatusCode::NOT_FOUND, "no such operation").into_response();
                    };
                    if *remaining > 0 {
                        *remaining -= 1;
                        return axum::Json(
                            serde_json::json!({"operationId": op, "status": "InProgress"}),
                        )
                        .into_response();
                    }
                    return axum::Json(serde_json::json!({
                        "operationId": op, "status": "Succeeded",
                        "signature": B64.encode(&*sig), "signingCertificate": B64.encode(&bundle),
                    }))
                    .into_response();
                }
                (StatusCode::NOT_FOUND, "no such endpoint").into_response()
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Azure {
        url: base,
        token,
        sign,
        poll,
        polls_before_done,
        token_lifetime,
    }
}
