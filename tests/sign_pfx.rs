//! PFX signing end to end, checked with the real `osslsigncode verify`: a mingw exe and a
//! makensis Setup.exe, RSA (OpenSSL 3 default AES/PBES2 PFX) and ECDSA P-256 (legacy
//! RC2/3DES PFX), tamper detection, bad PFX inputs, timestamp failures and failover over
//! several servers (and `none`), certificate checks when the session opens (dates, EKU,
//! key usage, an impostor CA, near expiry) and a secret scan.

use perry_test_support::sign_fixtures as fixtures;
use perry_test_support::sign_servers as servers;

use base64::Engine as _;
use fixtures::*;
use perry_ship_windows::job::credentials::{Credentials, PfxCredentials, Secret, SigningMethod};
use perry_ship_windows::sign::{verify_pe, HttpPolicy, SignError, SigningSession};
use std::time::Duration;

const TOOLS: &[&str] = &[
    "openssl",
    "osslsigncode",
    "x86_64-w64-mingw32-gcc",
    "makensis",
];
const PASSWORD: &str = "Pfx-Secret-pa55word!";

fn fast_policy() -> HttpPolicy {
    fast_http_policy(Duration::from_secs(5))
}

fn pfx_creds(pfx: &[u8], password: &str, tsa_url: &str) -> Credentials {
    let b64 = base64::engine::general_purpose::STANDARD.encode(pfx);
    Credentials {
        pfx: Some(PfxCredentials {
            pfx_base64: Secret::new(b64.clone()),
            password: Secret::new(password),
        }),
        timestamp_url: Some(tsa_url.to_string()),
        secret_values: vec![Secret::new(b64), Secret::new(password)],
        ..Default::default()
    }
}

async fn session(creds: &Credentials) -> Result<SigningSession, SignError> {
    SigningSession::with_policy(
        creds,
        &reqwest::Client::new(),
        &local_endpoints(),
        fast_policy(),
    )
    .await
    .map(|s| s.expect("credentials carry a method"))
}

fn secrets_of(creds: &Credentials) -> Vec<String> {
    creds
        .secret_values
        .iter()
        .map(|s| s.expose().to_string())
        .collect()
}

#[tokio::test]
async fn pfx_signs_mingw_exe_and_nsis_installer_and_osslsigncode_verifies() {
    if !require_tools(TOOLS) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let exe = mingw_exe(&work, "hello");
    let setup = nsis_setup(&work, &exe);
    let tsa = servers::start_tsa(pki.dir.clone()).await;

    // our streaming digest equals the authenticode crate's on the padded image
    let mut padded = std::fs::read(&exe).unwrap();
    padded.resize(padded.len().div_ceil(8) * 8, 0);
    let mut reference = sha2::Sha256::default();
    let pe = object::read::pe::PeFile64::parse(&*padded).unwrap();
    authenticode::authenticode_digest(&pe, &mut reference).unwrap();
    let mut f = std::fs::File::open(&exe).unwrap();
    let layout = perry_ship_windows::sign::pe::read_layout(&mut f).unwrap();
    let ours = perry_ship_windows::sign::pe::authenticode_digest(&mut f, &layout).unwrap();
    assert_eq!(
        ours.as_slice(),
        sha2::Digest::finalize(reference).as_slice()
    );

    let creds = pfx_creds(
        &pki.pfx("rsa", "rsa.key", "rsa.crt", PASSWORD, &[]),
        PASSWORD,
        &tsa.url,
    );
    let s = session(&creds).await.unwrap();
    assert_eq!(s.method(), SigningMethod::Pfx);
    assert_eq!(s.publisher_dn(), "CN=Perry Test Signer, O=Perry Test, C=US");

    for file in [&exe, &setup] {
        s.sign_pe(file).await.unwrap();
        assert_osslsigncode_ok(&pki, file);
        let v = verify_pe(file).unwrap();
        assert_eq!(v.signer_subject, "CN=Perry Test Signer, O=Perry Test, C=US");
        assert!(v.timestamped && v.timestamp_time.is_some());
    }
    assert_eq!(tsa.endpoint.hits(), 2);

    // signing again replaces the signature rather than stacking a second table
    let len_before = std::fs::metadata(&exe).unwrap().len();
    s.sign_pe(&exe).await.unwrap();
    assert_osslsigncode_ok(&pki, &exe);
    let len_after = std::fs::metadata(&exe).unwrap().len();
    assert!(
        len_after.abs_diff(len_before) < 64,
        "{len_before} -> {len_after}"
    );

    // no credential value in any file left in the work dir
    for file in files_under(&work) {
        assert_no_secret(
            &file.display().to_string(),
            &std::fs::read(&file).unwrap(),
            &secrets_of(&creds)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
    }

    // one flipped byte: osslsigncode and our verifier both reject the file
    for file in [&exe, &setup] {
        flip_byte(file);
        let (ok, text) = osslsigncode_verify(&pki, file);
        assert!(!ok, "osslsigncode accepted a modified file:\n{text}");
        let err = verify_pe(file).unwrap_err();
        assert!(
            err.message.contains("digest") || err.message.contains("checksum"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn ecdsa_key_in_legacy_rc2_3des_pfx_signs_and_verifies() {
    if !require_tools(TOOLS) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let exe = mingw_exe(tmp.path(), "ec");
    let tsa = servers::start_tsa(pki.dir.clone()).await;
    let creds = pfx_creds(
        &pki.pfx("ec", "ec.key", "ec.crt", PASSWORD, &["-legacy"]),
        PASSWORD,
        &tsa.url,
    );
    let s = session(&creds).await.unwrap();
    assert_eq!(s.publisher_dn(), "CN=Perry EC Signer, O=Perry Test, C=US");
    s.sign_pe(&exe).await.unwrap();
    assert_osslsigncode_ok(&pki, &exe);
}

fn assert_clean_error(err: &SignError, expect: &str, creds: &Credentials) {
    assert_eq!(err.method, "PFX");
    let text = err.to_string();
    assert!(
        text.to_lowercase().contains(expect),
        "expected {expect:?} in {text:?}"
    );
    assert_no_secret(
        "SignError",
        text.as_bytes(),
        &secrets_of(creds)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_no_secret(
        "SignError debug",
        format!("{err:?}").as_bytes(),
        &secrets_of(creds)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
}

#[tokio::test]
async fn corrupt_wrong_password_mismatched_and_expired_pfx_fail_clearly() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let url = "http://127.0.0.1:9/unused";
    let good = pki.pfx("rsa", "rsa.key", "rsa.crt", PASSWORD, &[]);

    let mut corrupt = good.clone();
    corrupt.truncate(good.len() / 2);
    let creds = pfx_creds(&corrupt, PASSWORD, url);
    assert_clean_error(&session(&creds).await.err().unwrap(), "corrupt pfx", &creds);

    let creds = pfx_creds(b"definitely not a pkcs12 file", PASSWORD, url);
    assert_clean_error(&session(&creds).await.err().unwrap(), "corrupt pfx", &creds);

    let mut creds = pfx_creds(&good, PASSWORD, url);
    creds.pfx.as_mut().unwrap().pfx_base64 = Secret::new("%%% not base64 %%%");
    assert_clean_error(
        &session(&creds).await.err().unwrap(),
        "not valid base64",
        &creds,
    );

    let creds = pfx_creds(&good, "Wrong-password-123", url);
    assert_clean_error(
        &session(&creds).await.err().unwrap(),
        "wrong pfx password",
        &creds,
    );

    // a PFX whose certificate belongs to another key (openssl refuses to build one)
    let other_der = run(std::process::Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(pki.path("other.key")))
    .stdout;
    let cert_der = run(std::process::Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(pki.path("rsa.crt")))
    .stdout;
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "mismatch",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            vec![1u8, 2, 3],
            p12_keystore::PrivateKey::from_der(&other_der).unwrap(),
            [p12_keystore::Certificate::from_der(&cert_der).unwrap()],
        )),
    );
    let mismatched = store.writer(PASSWORD).write().unwrap();
    let creds = pfx_creds(&mismatched, PASSWORD, url);
    assert_clean_error(
        &session(&creds).await.err().unwrap(),
        "does not match its private key",
        &creds,
    );

    let creds = pfx_creds(
        &pki.pfx("expired", "rsa.key", "expired.crt", PASSWORD, &[]),
        PASSWORD,
        url,
    );
    assert_clean_error(&session(&creds).await.err().unwrap(), "expired", &creds);

    // no credentials: ship unsigned
    let none = SigningSession::from_credentials(
        &Credentials::default(),
        &reqwest::Client::new(),
        &local_endpoints(),
    )
    .await
    .unwrap();
    assert!(none.is_none());
}

#[tokio::test]
async fn timestamp_failures_are_retried_then_fail_the_signing() {
    if !require_tools(&["openssl", "x86_64-w64-mingw32-gcc", "osslsigncode"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let exe = mingw_exe(tmp.path(), "ts");
    let original = std::fs::read(&exe).unwrap();
    let tsa = servers::start_tsa(pki.dir.clone()).await;
    let creds = pfx_creds(
        &pki.pfx("rsa", "rsa.key", "rsa.crt", PASSWORD, &[]),
        PASSWORD,
        &tsa.url,
    );
    let s = session(&creds).await.unwrap();

    tsa.endpoint.set(servers::Fault::Status(500));
    let err = s.sign_pe(&exe).await.unwrap_err();
    assert!(
        err.to_string().contains("timestamp") && err.to_string().contains("500"),
        "{err}"
    );
    assert_eq!(tsa.endpoint.hits(), 3, "three attempts");
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        original,
        "a failed signing leaves the file untouched"
    );

    tsa.endpoint.set(servers::Fault::StatusTimes(503, 2));
    s.sign_pe(&exe).await.unwrap();
    assert_osslsigncode_ok(&pki, &exe);

    // an unreachable TSA fails too
    let mut dead = creds.clone();
    dead.timestamp_url = Some("http://127.0.0.1:9/".into());
    let err = session(&dead)
        .await
        .unwrap()
        .sign_pe(&exe)
        .await
        .unwrap_err();
    assert!(err.message.contains("timestamp"), "{err}");
}

#[tokio::test]
async fn certificate_problems_fail_when_the_session_opens() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let url = "http://127.0.0.1:9/unused";
    let open = |cert: &str| {
        let creds = pfx_creds(
            &pki.pfx(cert, "rsa.key", &format!("{cert}.crt"), PASSWORD, &[]),
            PASSWORD,
            url,
        );
        async move { session(&creds).await }
    };
    let expired = open("expired").await.err().unwrap().to_string();
    assert!(
        expired.contains("expired on 2020-02-01") && expired.contains("valid from 2020-01-01"),
        "{expired}"
    );
    let notyet = open("notyet").await.err().unwrap().to_string();
    assert!(
        notyet.contains("not valid yet") && notyet.contains("2099-12-01"),
        "{notyet}"
    );
    let noeku = open("noeku").await.err().unwrap().to_string();
    assert!(
        noeku.contains("no code-signing extended key usage"),
        "{noeku}"
    );
    let nodigsig = open("nodigsig").await.err().unwrap().to_string();
    assert!(nodigsig.contains("digitalSignature"), "{nodigsig}");

    // a good certificate: the report carries the thumbprint Windows shows and the chain
    let good = open("rsa").await.unwrap();
    let report = good.certificate().clone();
    let fingerprint = String::from_utf8(
        run(std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
            .arg(pki.path("rsa.crt")))
        .stdout,
    )
    .unwrap();
    let expected = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "");
    assert_eq!(report.thumbprint, expected);
    assert_eq!(
        report.chain,
        [
            "CN=Perry Test Signer, O=Perry Test, C=US",
            "CN=Perry Test Code Signing CA"
        ]
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let left = report.seconds_left(std::time::SystemTime::now());
    assert!((363 * 86_400..=366 * 86_400).contains(&left), "{left}");

    // a PFX carrying an impostor CA (same name, other key): the chain check catches it
    run(std::process::Command::new("openssl")
        .current_dir(&pki.dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "fake-ca.key",
            "-out",
            "fake-ca.crt",
            "-subj",
            "/CN=Perry Test Code Signing CA",
            "-days",
            "30",
        ]));
    run(std::process::Command::new("openssl")
        .current_dir(&pki.dir)
        .env("PFX_PASS", PASSWORD)
        .args([
            "pkcs12",
            "-export",
            "-inkey",
            "rsa.key",
            "-in",
            "rsa.crt",
            "-certfile",
            "fake-ca.crt",
            "-passout",
            "env:PFX_PASS",
            "-out",
            "impostor.pfx",
        ]));
    let creds = pfx_creds(&pki.read("impostor.pfx"), PASSWORD, url);
    let broken = session(&creds).await.err().unwrap().to_string();
    assert!(broken.contains("chain is broken"), "{broken}");

    // 10 days left: signing works, with a warning naming the date
    let soon = open("soon").await.unwrap();
    let warning = &soon.certificate().warnings[0];
    assert!(
        warning.contains("WARNING")
            && (warning.contains("expires in 9 day") || warning.contains("expires in 10 day")),
        "{warning}"
    );
}

#[tokio::test]
async fn a_dead_first_timestamp_server_fails_over_to_the_next() {
    if !require_tools(&["openssl", "x86_64-w64-mingw32-gcc", "osslsigncode"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let exe = mingw_exe(tmp.path(), "failover");
    let broken = servers::start_tsa(pki.dir.clone()).await;
    broken.endpoint.set(servers::Fault::Status(503));
    let good = servers::start_tsa(pki.dir.clone()).await;
    let pfx = pki.pfx("rsa", "rsa.key", "rsa.crt", PASSWORD, &[]);

    // dead (nothing listens), then broken (503), then good: comma and whitespace separated
    let list = format!("http://127.0.0.1:9/dead, {}\n{}", broken.url, good.url);
    let s = session(&pfx_creds(&pfx, PASSWORD, &list)).await.unwrap();
    s.sign_pe(&exe).await.unwrap();
    assert_osslsigncode_ok(&pki, &exe);
    assert_eq!(broken.endpoint.hits(), 3, "each server gets its attempts");
    assert_eq!(good.endpoint.hits(), 1);
    assert_eq!(s.timestamp_servers_used(), [format!("{}/", good.url)]);
    // the server that answered is tried first for the next file
    s.sign_pe(&exe).await.unwrap();
    assert_eq!(broken.endpoint.hits(), 3);
    assert_eq!(good.endpoint.hits(), 2);
    assert_eq!(s.files_signed(), 2);

    // the worker's fallbacks come after the job's list
    let endpoints = perry_ship_windows::config::SigningEndpoints {
        timestamp_fallbacks: vec![good.url.clone()],
        ..Default::default()
    };
    let s = SigningSession::with_policy(
        &pfx_creds(&pfx, PASSWORD, "http://127.0.0.1:9/dead"),
        &reqwest::Client::new(),
        &endpoints,
        fast_policy(),
    )
    .await
    .unwrap()
    .unwrap();
    s.sign_pe(&exe).await.unwrap();
    assert_eq!(good.endpoint.hits(), 3);

    // every server failing: SIGNING error listing each server and its error
    let all_bad = format!("http://127.0.0.1:9/dead {}", broken.url);
    let err = session(&pfx_creds(&pfx, PASSWORD, &all_bad))
        .await
        .unwrap()
        .sign_pe(&exe)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("all 2 server(s) failed"), "{err}");
    assert!(
        err.contains("http://127.0.0.1:9/dead (") && err.contains("cannot connect"),
        "{err}"
    );
    assert!(err.contains(&broken.url) && err.contains("503"), "{err}");

    // "none": signed on purpose without a timestamp
    let s = session(&pfx_creds(&pfx, PASSWORD, "none")).await.unwrap();
    assert!(s.timestamp_servers().is_none());
    s.sign_pe(&exe).await.unwrap();
    let v = verify_pe(&exe).unwrap();
    assert!(!v.timestamped);
    let (ok, text) = osslsigncode_verify(&pki, &exe);
    assert!(ok, "{text}");
}
