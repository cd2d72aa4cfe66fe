//! Credentials parsing (hub-protocol.md §5): methods, precedence, partial methods, masking
//! inputs, and errors that never contain a value.

use perry_ship_windows::job::credentials::{Credentials, CredentialsError, SigningMethod};
use perry_ship_windows::sign::timestamp_servers::TimestampChoice;
use serde_json::{json, Value};

const KMS_KEY: &str =
    "projects/p1/locations/global/keyRings/ring/cryptoKeys/key/cryptoKeyVersions/3";

fn pfx() -> Value {
    json!({"windows_pfx_base64": "TUlJQ0FBQUFB\nQUFBQQ==", "windows_pfx_password": "hunter2-pass"})
}

fn azure() -> Value {
    json!({
        "azure_tenant_id": "11111111-2222-3333-4444-555555555555",
        "azure_client_id": "66666666-7777-8888-9999-000000000000",
        "azure_client_secret": "azure~client~secret",
        "azure_signing_endpoint": "https://eus.codesigning.azure.net",
        "azure_signing_account": "acct",
        "azure_signing_profile": "prof",
    })
}

fn kms() -> Value {
    json!({
        "gcloud_kms_key": KMS_KEY,
        "gcloud_kms_cert_base64": "Q0VSVElGSUNBVEU=",
        "gcloud_service_account_base64": "eyJ0eXBlIjoic2VydmljZV9hY2NvdW50In0=",
    })
}

fn merge(parts: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for p in parts {
        out.extend(p.as_object().unwrap().clone());
    }
    Value::Object(out)
}

fn err(v: Value) -> CredentialsError {
    match Credentials::from_json(&v) {
        Ok(c) => panic!("expected an error, method {:?}", c.method()),
        Err(e) => e,
    }
}

fn secrets(c: &Credentials) -> Vec<String> {
    c.secret_values
        .iter()
        .map(|s| s.expose().to_string())
        .collect()
}

#[test]
fn empty_object_or_null_means_unsigned() {
    for v in [json!({}), json!(null)] {
        let c = Credentials::from_json(&v).unwrap();
        assert_eq!(c.method(), None);
        assert!(c.secret_values.is_empty());
        assert_eq!(c.timestamp_choice(), Ok(TimestampChoice::Servers(vec![])));
    }
    assert_eq!(err(json!("pfx")).field, "credentials");
    assert_eq!(err(json!([1])).field, "credentials");
}

#[test]
fn each_method_parses() {
    let c = Credentials::from_json(&pfx()).unwrap();
    assert_eq!(c.method(), Some(SigningMethod::Pfx));
    assert_eq!(c.pfx.as_ref().unwrap().password.expose(), "hunter2-pass");

    let c = Credentials::from_json(&azure()).unwrap();
    assert_eq!(c.method(), Some(SigningMethod::Azure));
    let a = c.azure.as_ref().unwrap();
    assert_eq!(a.endpoint, "https://eus.codesigning.azure.net");
    assert_eq!((a.account.as_str(), a.profile.as_str()), ("acct", "prof"));
    assert_eq!(a.client_secret.expose(), "azure~client~secret");

    let c = Credentials::from_json(&kms()).unwrap();
    assert_eq!(c.method(), Some(SigningMethod::Kms));
    assert_eq!(c.kms.as_ref().unwrap().key, KMS_KEY);
}

#[test]
fn precedence_is_pfx_then_azure_then_kms() {
    assert_eq!(
        Credentials::from_json(&merge(&[kms(), azure(), pfx()]))
            .unwrap()
            .method(),
        Some(SigningMethod::Pfx)
    );
    assert_eq!(
        Credentials::from_json(&merge(&[kms(), azure()]))
            .unwrap()
            .method(),
        Some(SigningMethod::Azure)
    );
}

#[test]
fn partial_methods_name_the_missing_field() {
    let mut a = azure();
    a.as_object_mut().unwrap().remove("azure_client_secret");
    let e = err(a);
    assert_eq!(e.field, "azure_client_secret");

    let mut a = azure();
    a["azure_signing_profile"] = json!("   ");
    assert_eq!(err(a).field, "azure_signing_profile");

    assert_eq!(
        err(json!({"windows_pfx_password": "pw"})).field,
        "windows_pfx_base64"
    );
    assert_eq!(
        err(json!({"gcloud_kms_key": KMS_KEY})).field,
        "gcloud_kms_cert_base64"
    );

    // A PFX without a password is allowed.
    let c = Credentials::from_json(&json!({"windows_pfx_base64": "QUJD"})).unwrap();
    assert_eq!(c.method(), Some(SigningMethod::Pfx));
    assert!(c.pfx.unwrap().password.is_empty());

    // Blank fields of unused methods are ignored.
    let c = Credentials::from_json(&json!({"azure_client_secret": "", "gcloud_kms_key": null}))
        .unwrap();
    assert_eq!(c.method(), None);
}

#[test]
fn invalid_values_are_refused_without_echoing_them() {
    let mut p = pfx();
    p["windows_pfx_base64"] = json!("not base64! secret-ish-value");
    let e = err(p);
    assert_eq!(e.field, "windows_pfx_base64");
    assert!(!e.to_string().contains("secret-ish-value"), "{e}");

    let mut p = pfx();
    p["windows_pfx_password"] = json!(12345);
    let e = err(p);
    assert_eq!(e.field, "windows_pfx_password");
    assert!(!e.to_string().contains("12345"));

    let mut a = azure();
    a["azure_signing_endpoint"] = json!("http://plain.example");
    assert_eq!(err(a).field, "azure_signing_endpoint");

    let mut k = kms();
    k["gcloud_kms_key"] = json!("projects/p/keys/../../etc");
    assert_eq!(err(k).field, "gcloud_kms_key");

    let mut p = pfx();
    p["windows_timestamp_url"] = json!("file:///etc/passwd");
    assert_eq!(err(p).field, "windows_timestamp_url");
    let mut p = pfx();
    p["windows_timestamp_url"] =
        json!("http://ts.example/rfc3161, https://ts2.example\nhttp://ts3.example");
    assert_eq!(
        Credentials::from_json(&p).unwrap().timestamp_choice(),
        Ok(TimestampChoice::Servers(vec![
            "http://ts.example/rfc3161".into(),
            "https://ts2.example".into(),
            "http://ts3.example".into()
        ]))
    );
    p["windows_timestamp_url"] = json!("none");
    assert_eq!(
        Credentials::from_json(&p).unwrap().timestamp_choice(),
        Ok(TimestampChoice::Off)
    );
    p["windows_timestamp_url"] = json!("http://ts.example none");
    assert_eq!(err(p).field, "windows_timestamp_url");
}

#[test]
fn every_non_public_string_is_collected_for_masking() {
    let v = merge(&[
        pfx(),
        azure(),
        kms(),
        json!({
            "windows_timestamp_url": "http://timestamp.example",
            "apple_api_key": "apple-secret-key",
            "android": {"keystore_password": "android-pw", "aliases": ["alias-secret"]},
            "padded": "  spaced-secret  ",
            "some_number": 42,
        }),
    ]);
    let c = Credentials::from_json(&v).unwrap();
    let s = secrets(&c);
    for expected in [
        "TUlJQ0FBQUFB\nQUFBQQ==",
        "hunter2-pass",
        "azure~client~secret",
        "11111111-2222-3333-4444-555555555555",
        "66666666-7777-8888-9999-000000000000",
        "Q0VSVElGSUNBVEU=",
        "eyJ0eXBlIjoic2VydmljZV9hY2NvdW50In0=",
        "apple-secret-key",
        "android-pw",
        "alias-secret",
        "  spaced-secret  ",
        "spaced-secret",
    ] {
        assert!(
            s.iter().any(|x| x == expected),
            "{expected:?} not collected"
        );
    }
    for public in [
        "http://timestamp.example",
        "https://eus.codesigning.azure.net",
        "acct",
        "prof",
        KMS_KEY,
    ] {
        assert!(
            !s.iter().any(|x| x == public),
            "{public:?} should stay public"
        );
    }
}

#[test]
fn debug_output_never_shows_secrets() {
    let c = Credentials::from_json(&merge(&[pfx(), azure(), kms()])).unwrap();
    let printed = format!("{c:?}");
    for secret in secrets(&c) {
        assert!(
            !printed.contains(secret.as_str()),
            "Debug leaked {secret:?}"
        );
    }
    assert!(printed.contains("[redacted]"));
}
