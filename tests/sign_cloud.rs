//! Cloud KMS (RSA and ECDSA P-256) and Azure Trusted Signing against local stand-ins on
//! 127.0.0.1: the signed files verify with the real `osslsigncode`; 401, 403, 429-then-ok,
//! 500 and timeouts give a SignError naming the method and status, with no secret in it.

use perry_test_support::sign_fixtures as fixtures;
use perry_test_support::sign_servers as servers;

use base64::Engine as _;
use fixtures::*;
use perry_ship_windows::config::SigningEndpoints;
use perry_ship_windows::job::credentials::{
    AzureCredentials, Credentials, KmsCredentials, Secret, SigningMethod,
};
use perry_ship_windows::sign::{verify_pe, HttpPolicy, SignError, SigningSession};
use servers::{Fault, TestKey};
use std::time::Duration;

const TOOLS: &[&str] = &["openssl", "osslsigncode", "x86_64-w64-mingw32-gcc"];
const KMS_KEY: &str =
    "projects/perry/locations/global/keyRings/ring/cryptoKeys/code/cryptoKeyVersions/1";
const AZURE_TENANT: &str = "0f1e2d3c-tenant-4b5a";
const AZURE_CLIENT: &str = "a1b2c3d4-client-id";
const AZURE_SECRET: &str = "Azure~Client~Secret~0123456789";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn policy() -> HttpPolicy {
    fast_http_policy(Duration::from_millis(800))
}

struct Env {
    _tmp: tempfile::TempDir,
    pki: Pki,
    work: std::path::PathBuf,
    tsa: servers::Tsa,
}

async fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let tsa = servers::start_tsa(pki.dir.clone()).await;
    Env {
        _tmp: tmp,
        pki,
        work,
        tsa,
    }
}

fn secrets(creds: &Credentials) -> Vec<String> {
    creds
        .secret_values
        .iter()
        .map(|s| s.expose().to_string())
        .collect()
}

fn assert_error(err: &SignError, method: &str, expect: &[&str], creds: &Credentials) {
    assert_eq!(err.method, method, "{err}");
    let text = err.to_string();
    for e in expect {
        assert!(text.contains(e), "expected {e:?} in {text:?}");
    }
    let secrets = secrets(creds);
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secret("SignError", text.as_bytes(), &refs);
    assert_no_secret("SignError debug", format!("{err:?}").as_bytes(), &refs);
    for token in [servers::KMS_ACCESS_TOKEN, servers::AZURE_ACCESS_TOKEN] {
        assert!(!text.contains(token), "access token in error: {text}");
    }
}

// ------------------------------------------------------------------ KMS

struct KmsSetup {
    creds: Credentials,
    endpoints: SigningEndpoints,
    server: servers::Kms,
}

async fn kms_setup(e: &Env, key_file: &str, cert_file: &str) -> KmsSetup {
    let sa_pem = std::fs::read_to_string(e.pki.path("other.key")).unwrap();
    let sa_pub = String::from_utf8(
        run(std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(e.pki.path("other.key")))
        .stdout,
    )
    .unwrap();
    let server = servers::start_kms(sa_pub, TestKey::from_pem_file(&e.pki.path(key_file))).await;
    let sa_json = serde_json::json!({
        "type": "service_account", "project_id": "perry", "private_key_id": "0123abcd",
        "private_key": sa_pem, "client_email": "signer@perry.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string();
    // leaf + CA as PEM, the way a user pastes a chain
    let mut chain_pem = std::fs::read(e.pki.path(cert_file)).unwrap();
    chain_pem.extend(std::fs::read(e.pki.path("ca.crt")).unwrap());
    let (sa_b64, cert_b64) = (b64(sa_json.as_bytes()), b64(&chain_pem));
    let creds = Credentials {
        kms: Some(KmsCredentials {
            key: KMS_KEY.into(),
            cert_base64: Secret::new(cert_b64.clone()),
            service_account_base64: Secret::new(sa_b64.clone()),
        }),
        timestamp_url: Some(e.tsa.url.clone()),
        secret_values: vec![
            Secret::new(sa_b64),
            Secret::new(sa_pem),
            Secret::new(cert_b64),
        ],
        ..Default::default()
    };
    let endpoints = SigningEndpoints {
        gcloud_kms: server.url.clone(),
        gcloud_token: format!("{}/token", server.url),
        timestamp_fallbacks: vec![],
        ..SigningEndpoints::default()
    };
    KmsSetup {
        creds,
        endpoints,
        server,
    }
}

async fn kms_session(k: &KmsSetup) -> Result<SigningSession, SignError> {
    SigningSession::with_policy(&k.creds, &reqwest::Client::new(), &k.endpoints, policy())
        .await
        .map(Option::unwrap)
}

#[tokio::test]
async fn kms_rsa_and_ecdsa_signatures_verify_with_osslsigncode() {
    if !require_tools(TOOLS) {
        return;
    }
    let e = env().await;
    for (key, cert, subject) in [
        (
            "rsa.key",
            "rsa.crt",
            "CN=Perry Test Signer, O=Perry Test, C=US",
        ),
        ("ec.key", "ec.crt", "CN=Perry EC Signer, O=Perry Test, C=US"),
    ] {
        let k = kms_setup(&e, key, cert).await;
        let s = kms_session(&k).await.unwrap();
        assert_eq!(s.method(), SigningMethod::Kms);
        assert_eq!(s.publisher_dn(), subject);
        let exe = mingw_exe(&e.work, &key.replace('.', "_"));
        s.sign_pe(&exe).await.unwrap();
        assert_osslsigncode_ok(&e.pki, &exe);
        assert_eq!(verify_pe(&exe).unwrap().signer_subject, subject);
        assert_eq!(
            k.server.keys_seen.lock().unwrap().as_slice(),
            &[KMS_KEY.to_string()]
        );
        for file in files_under(&e.work) {
            let s = secrets(&k.creds);
            assert_no_secret(
                &file.display().to_string(),
                &std::fs::read(&file).unwrap(),
                &s.iter().map(String::as_str).collect::<Vec<_>>(),
            );
        }
        flip_byte(&exe);
        assert!(!osslsigncode_verify(&e.pki, &exe).0);
    }
}

/// Opens a session whose tokens live 6 s (the signer renews them at half-life, the test
/// server refuses them after 6 s), signs once at once and once after 6.3 s.
async fn assert_token_renewal(
    e: &Env,
    name: &str,
    lifetime: &std::sync::Mutex<Duration>,
    token_endpoint: &servers::Endpoint,
    session: impl std::future::Future<Output = Result<SigningSession, SignError>>,
) {
    const LIFETIME: Duration = Duration::from_secs(6);
    let first = mingw_exe(&e.work, &format!("{name}_before_expiry"));
    let second = mingw_exe(&e.work, &format!("{name}_after_expiry"));
    *lifetime.lock().unwrap() = LIFETIME;
    let s = session.await.unwrap();
    let hits_at_open = token_endpoint.hits();
    s.sign_pe(&first).await.unwrap();
    assert_eq!(
        token_endpoint.hits(),
        hits_at_open,
        "{name}: a fresh token is reused"
    );

    tokio::time::sleep(LIFETIME + Duration::from_millis(300)).await;
    s.sign_pe(&second)
        .await
        .unwrap_or_else(|err| panic!("{name}: the expired token was sent, not renewed: {err}"));
    assert_eq!(
        token_endpoint.hits(),
        hits_at_open + 1,
        "{name}: one renewal"
    );
    assert_osslsigncode_ok(&e.pki, &second);
}

#[tokio::test]
async fn cloud_access_tokens_are_renewed_before_they_expire() {
    if !require_tools(TOOLS) {
        return;
    }
    let e = env().await;
    let k = kms_setup(&e, "rsa.key", "rsa.crt").await;
    let (lifetime, endpoint) = (&k.server.token_lifetime, &k.server.token);
    assert_token_renewal(&e, "kms", lifetime, endpoint, kms_session(&k)).await;
    let a = azure_setup(&e).await;
    let (lifetime, endpoint) = (&a.server.token_lifetime, &a.server.token);
    assert_token_renewal(&e, "azure", lifetime, endpoint, azure_session(&a)).await;
}

#[tokio::test]
async fn kms_error_paths_name_method_and_status_without_secrets() {
    if !require_tools(TOOLS) {
        return;
    }
    let e = env().await;
    let k = kms_setup(&e, "rsa.key", "rsa.crt").await;
    let exe = mingw_exe(&e.work, "kms_errors");
    const M: &str = "Google Cloud KMS";

    // token endpoint rejects the assertion: fail at once, no retry
    k.server.token.set(Fault::Status(401));
    let err = kms_session(&k).await.err().unwrap();
    assert_error(&err, M, &["OAuth token", "401"], &k.creds);
    assert_eq!(k.server.token.hits(), 1);
    k.server.token.set(Fault::None);

    let s = kms_session(&k).await.unwrap();
    k.server.sign.set(Fault::Status(403));
    let before = k.server.sign.hits();
    assert_error(
        &s.sign_pe(&exe).await.unwrap_err(),
        M,
        &["asymmetricSign", "403"],
        &k.creds,
    );
    assert_eq!(k.server.sign.hits() - before, 1, "403 is not retried");

    k.server.sign.set(Fault::Status(500));
    let before = k.server.sign.hits();
    assert_error(
        &s.sign_pe(&exe).await.unwrap_err(),
        M,
        &["asymmetricSign", "500", "3 attempts"],
        &k.creds,
    );
    assert_eq!(k.server.sign.hits() - before, 3, "500 is retried");

    k.server.sign.set(Fault::Hang);
    let started = std::time::Instant::now();
    assert_error(
        &s.sign_pe(&exe).await.unwrap_err(),
        M,
        &["asymmetricSign", "timed out"],
        &k.creds,
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    k.server.sign.set(Fault::StatusTimes(429, 2));
    let before = k.server.sign.hits();
    s.sign_pe(&exe).await.unwrap();
    assert_eq!(k.server.sign.hits() - before, 3, "two 429s then success");
    assert_osslsigncode_ok(&e.pki, &exe);

    // a certificate that does not belong to the KMS key is caught before embedding
    let wrong = kms_setup(&e, "rsa.key", "ec.crt").await;
    let s = kms_session(&wrong).await.unwrap();
    let exe2 = mingw_exe(&e.work, "kms_wrong_cert");
    assert_error(
        &s.sign_pe(&exe2).await.unwrap_err(),
        M,
        &["does not match the certificate"],
        &wrong.creds,
    );

    // malformed inputs
    let mut bad = kms_setup(&e, "rsa.key", "rsa.crt").await;
    bad.creds.kms.as_mut().unwrap().service_account_base64 =
        Secret::new(b64(b"{\"client_email\":\"x\"}"));
    assert_error(
        &kms_session(&bad).await.err().unwrap(),
        M,
        &["private_key"],
        &bad.creds,
    );
    bad.creds.kms.as_mut().unwrap().cert_base64 = Secret::new(b64(b"not a certificate"));
    assert_error(
        &kms_session(&bad).await.err().unwrap(),
        M,
        &["gcloud_kms_cert_base64"],
        &bad.creds,
    );
}

// ------------------------------------------------------------------ Azure

struct AzureSetup {
    creds: Credentials,
    endpoints: SigningEndpoints,
    server: servers::Azure,
}

async fn azure_setup(e: &Env) -> AzureSetup {
    azure_setup_with(e, &["rsa.crt", "ca.crt"]).await
}

/// Trusted Signing answering with the certificates `certs` (for `rsa.key`).
async fn azure_setup_with(e: &Env, certs: &[&str]) -> AzureSetup {
    let bundle = e.pki.pkcs7_bundle(certs);
    let server = servers::start_azure(
        AZURE_CLIENT.into(),
        AZURE_SECRET.into(),
        TestKey::from_pem_file(&e.pki.path("rsa.key")),
        bundle,
    )
    .await;
    let creds = Credentials {
        azure: Some(AzureCredentials {
            tenant_id: Secret::new(AZURE_TENANT),
            client_id: Secret::new(AZURE_CLIENT),
            client_secret: Secret::new(AZURE_SECRET),
            endpoint: server.url.clone(),
            account: "perry-account".into(),
            profile: "perry-profile".into(),
        }),
        timestamp_url: Some(e.tsa.url.clone()),
        secret_values: vec![
            Secret::new(AZURE_TENANT),
            Secret::new(AZURE_CLIENT),
            Secret::new(AZURE_SECRET),
        ],
        ..Default::default()
    };
    let endpoints = SigningEndpoints {
        azure_authority: server.url.clone(),
        timestamp_fallbacks: vec![],
        ..SigningEndpoints::default()
    };
    AzureSetup {
        creds,
        endpoints,
        server,
    }
}

async fn azure_session(a: &AzureSetup) -> Result<SigningSession, SignError> {
    SigningSession::with_policy(&a.creds, &reqwest::Client::new(), &a.endpoints, policy())
        .await
        .map(Option::unwrap)
}

#[tokio::test]
async fn azure_trusted_signing_signs_exe_and_nsis_installer() {
    if !require_tools(&[
        "openssl",
        "osslsigncode",
        "x86_64-w64-mingw32-gcc",
        "makensis",
    ]) {
        return;
    }
    let e = env().await;
    let a = azure_setup(&e).await;
    a.server
        .polls_before_done
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let s = azure_session(&a).await.unwrap();
    assert_eq!(s.method(), SigningMethod::Azure);
    assert_eq!(s.publisher_dn(), "CN=Perry Test Signer, O=Perry Test, C=US");
    let exe = mingw_exe(&e.work, "azure");
    let setup = nsis_setup(&e.work, &exe);
    for file in [&exe, &setup] {
        s.sign_pe(file).await.unwrap();
        assert_osslsigncode_ok(&e.pki, file);
    }
    assert!(
        a.server.poll.hits() >= 6,
        "operations were polled until Succeeded"
    );
    for file in files_under(&e.work) {
        let s = secrets(&a.creds);
        assert_no_secret(
            &file.display().to_string(),
            &std::fs::read(&file).unwrap(),
            &s.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    flip_byte(&setup);
    assert!(!osslsigncode_verify(&e.pki, &setup).0);
}

#[tokio::test]
async fn azure_error_paths_name_method_and_status_without_secrets() {
    if !require_tools(TOOLS) {
        return;
    }
    let e = env().await;
    let a = azure_setup(&e).await;
    const M: &str = "Azure Trusted Signing";

    a.server.token.set(Fault::Status(401));
    assert_error(
        &azure_session(&a).await.err().unwrap(),
        M,
        &["Entra ID token", "401"],
        &a.creds,
    );
    a.server.token.set(Fault::None);

    let mut wrong_secret = azure_setup(&e).await;
    wrong_secret.creds.azure.as_mut().unwrap().client_secret =
        Secret::new("Not-The-Right-Secret-42");
    wrong_secret
        .creds
        .secret_values
        .push(Secret::new("Not-The-Right-Secret-42"));
    assert_error(
        &azure_session(&wrong_secret).await.err().unwrap(),
        M,
        &["401"],
        &wrong_secret.creds,
    );

    let s = azure_session(&a).await.unwrap();
    let exe = mingw_exe(&e.work, "azure_errors");
    a.server.sign.set(Fault::Status(403));
    assert_error(
        &s.sign_pe(&exe).await.unwrap_err(),
        M,
        &["sign", "403"],
        &a.creds,
    );

    a.server.sign.set(Fault::Status(500));
    let before = a.server.sign.hits();
    assert_error(
        &s.sign_pe(&exe).await.unwrap_err(),
        M,
        &["sign", "500"],
        &a.creds,
    );
    assert_eq!(a.server.sign.hits() - before, 3);

    a.server.sign.set(Fault::None);
    a.server.poll.set(Fault::Hang);
    assert_error(
        &s.sign_pe(&exe).await.unwrap_err(),
        M,
        &["poll", "timed out"],
        &a.creds,
    );

    a.server.poll.set(Fault::None);
    a.server.sign.set(Fault::StatusTimes(429, 1));
    s.sign_pe(&exe).await.unwrap();
    assert_osslsigncode_ok(&e.pki, &exe);
}

#[tokio::test]
async fn cloud_certificates_get_the_same_checks_when_the_session_opens() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let e = env().await;
    const KMS: &str = "Google Cloud KMS";
    for (cert, expect) in [
        ("expired.crt", "expired on 2020-02-01"),
        ("noeku.crt", "no code-signing extended key usage"),
        ("nodigsig.crt", "digitalSignature"),
    ] {
        let k = kms_setup(&e, "rsa.key", cert).await;
        assert_error(
            &kms_session(&k).await.err().unwrap(),
            KMS,
            &[expect],
            &k.creds,
        );
        assert_eq!(k.server.sign.hits(), 0, "{cert}: nothing signed");
    }
    let k = kms_setup(&e, "rsa.key", "soon.crt").await;
    let s = kms_session(&k).await.unwrap();
    assert!(
        s.certificate().warnings[0].contains("WARNING"),
        "{:?}",
        s.certificate().warnings
    );
    assert_eq!(
        s.certificate().chain.len(),
        2,
        "leaf and CA from the PEM chain"
    );

    const AZURE: &str = "Azure Trusted Signing";
    let a = azure_setup_with(&e, &["noeku.crt", "ca.crt"]).await;
    assert_error(
        &azure_session(&a).await.err().unwrap(),
        AZURE,
        &["no code-signing extended key usage"],
        &a.creds,
    );
    let a = azure_setup_with(&e, &["expired.crt", "ca.crt"]).await;
    assert_error(
        &azure_session(&a).await.err().unwrap(),
        AZURE,
        &["expired"],
        &a.creds,
    );
    // short-lived Trusted Signing certificates are renewed by the service: no warning
    let a = azure_setup_with(&e, &["soon.crt", "ca.crt"]).await;
    let s = azure_session(&a).await.unwrap();
    assert!(
        s.certificate().warnings.is_empty(),
        "{:?}",
        s.certificate().warnings
    );
}
