//! MSIX signatures: the PKCS#7 made for a package digest blob carries `SpcSipInfo` (APPX class
//! id, version 0x01010000), the whole blob as the indirect digest, a verified signature and an
//! RFC 3161 timestamp; malformed blobs are refused. End to end: the package writer's MSIX
//! signed by our session verifies with the real `osslsigncode verify`, and fails after one
//! byte of the package changes.

use perry_test_support::package_support;
use perry_test_support::sign_servers as servers;

use base64::Engine as _;
use fixtures::*;
use package_support::sign_fixtures as fixtures;
use perry_ship_windows::job::credentials::{Credentials, PfxCredentials, Secret};
use perry_ship_windows::sign::{verify::verify_pkcs7, SigningSession};

const PASSWORD: &str = "appx-pfx-password";

async fn pfx_session(pki: &Pki, tsa_url: &str) -> SigningSession {
    let pfx = pki.pfx("rsa", "rsa.key", "rsa.crt", PASSWORD, &[]);
    let creds = Credentials {
        pfx: Some(PfxCredentials {
            pfx_base64: Secret::new(base64::engine::general_purpose::STANDARD.encode(&pfx)),
            password: Secret::new(PASSWORD),
        }),
        timestamp_url: Some(tsa_url.to_string()),
        ..Default::default()
    };
    SigningSession::from_credentials(&creds, &reqwest::Client::new(), &local_endpoints())
        .await
        .unwrap()
        .unwrap()
}

fn blob() -> Vec<u8> {
    let mut b = b"APPX".to_vec();
    for (i, tag) in [b"AXPC", b"AXCD", b"AXCT", b"AXBM"].into_iter().enumerate() {
        b.extend_from_slice(tag);
        b.extend_from_slice(&[i as u8 + 1; 32]);
    }
    b
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn appx_blob_is_signed_with_spc_sip_info_and_timestamped() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let tsa = servers::start_tsa(pki.dir.clone()).await;
    let pfx = pki.pfx("rsa", "rsa.key", "rsa.crt", PASSWORD, &[]);
    let creds = Credentials {
        pfx: Some(PfxCredentials {
            pfx_base64: Secret::new(base64::engine::general_purpose::STANDARD.encode(&pfx)),
            password: Secret::new(PASSWORD),
        }),
        timestamp_url: Some(tsa.url.clone()),
        ..Default::default()
    };
    let session =
        SigningSession::from_credentials(&creds, &reqwest::Client::new(), &local_endpoints())
            .await
            .unwrap()
            .unwrap();
    let blob = blob();
    let der = session.sign_appx_blob(&blob).await.unwrap();

    let verified = verify_pkcs7(&der, &blob).unwrap();
    assert!(verified.timestamped);
    assert_eq!(verified.signer_subject, session.publisher_dn());
    // SpcSipInfo OID 1.3.6.1.4.1.311.2.1.30, its version and the package class id
    assert!(contains(
        &der,
        &[0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x1e]
    ));
    assert!(contains(
        &der,
        &[0x02, 0x04, 0x01, 0x01, 0x00, 0x00, 0x04, 0x10, 0x4b, 0xdf, 0xc5, 0x0a]
    ));
    assert!(
        contains(&der, &blob),
        "the blob itself is the indirect digest"
    );

    let mut other = blob.clone();
    other[10] ^= 1;
    assert!(verify_pkcs7(&der, &other).is_err());

    for bad in [
        &blob[..blob.len() - 1],
        b"APPX",
        &[b"XPPA".as_slice(), &blob[4..]].concat(),
    ] {
        let err = session.sign_appx_blob(bad).await.unwrap_err();
        assert!(err.message.contains("malformed"), "{err}");
    }
}

#[tokio::test]
async fn msix_from_the_package_writer_signed_by_us_verifies_with_osslsigncode() {
    if !require_tools(&["openssl", "osslsigncode", "x86_64-w64-mingw32-gcc"]) {
        return;
    }
    use perry_ship_windows::package::msix::write_msix;
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let tsa = servers::start_tsa(pki.dir.clone()).await;
    let session = pfx_session(&pki, &tsa.url).await;
    let bundle = package_support::make_bundle(tmp.path());
    let png = tmp.path().join("logo-src.png");
    package_support::write_test_png(&png, 256, 256);
    let out = tmp.path().join("Demo.msix");
    let publisher = session.publisher_dn();
    let pending = write_msix(
        &bundle,
        &package_support::app_info(),
        Some(&publisher),
        &png,
        &out,
        true,
    )
    .unwrap();
    let der = session
        .sign_appx_blob(&pending.digests().to_blob())
        .await
        .unwrap();
    let signed = pending.finish_signed(&der).unwrap();

    assert_osslsigncode_ok(&pki, &signed);
    flip_byte(&signed);
    let (ok, text) = osslsigncode_verify(&pki, &signed);
    assert!(!ok, "osslsigncode accepted a modified MSIX:\n{text}");
}
