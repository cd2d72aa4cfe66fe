//! Fuzz targets for the JSON the worker receives: hub frames, the manifest, the credentials
//! object (all three arrive in `job_assign`) and a hand-off bundle's `metadata.json`.

use super::engine::{self, class, Target};
use super::mutate;
use crate::hub::protocol::{parse_hub_frame, HubFrame};
use crate::job::credentials::Credentials;
use crate::job::manifest::{Manifest, MAX_APP_NAME_CHARS};
use crate::package::{resources, AppInfo};
use crate::pipeline::precompiled::BundleMetadata;
use serde_json::{json, Value};
use std::time::Duration;

const MANIFEST_KEYS: &[&str] = &[
    "app_name",
    "bundle_id",
    "version",
    "short_version",
    "minimum_os_version",
    "entry",
    "icon",
    "targets",
    "features",
    "windows_distribute",
    "windows_uac_level",
    "windows_dpi_aware",
    "windows_file_description",
    "windows_company_name",
    "windows_copyright",
];

const CREDENTIAL_KEYS: &[&str] = &[
    "windows_pfx_base64",
    "windows_pfx_password",
    "windows_timestamp_url",
    "azure_tenant_id",
    "azure_client_id",
    "azure_client_secret",
    "azure_signing_endpoint",
    "azure_signing_account",
    "azure_signing_profile",
    "gcloud_kms_key",
    "gcloud_kms_cert_base64",
    "gcloud_service_account_base64",
    "apple_p12",
];

fn manifest_seed() -> Value {
    json!({
        "app_name": "Demo App", "bundle_id": "com.example.demo", "version": "1.2.3",
        "short_version": "1.2", "entry": "src/main.ts", "icon": "assets/icon.png",
        "targets": ["windows"], "features": ["net"], "windows_distribute": "msix",
        "windows_uac_level": "highestAvailable", "windows_dpi_aware": "true/pm",
        "windows_file_description": "A demo", "windows_company_name": "Example Co",
        "windows_copyright": "(c) 2026"
    })
}

fn credentials_seeds() -> Vec<Value> {
    vec![
        json!({"windows_pfx_base64": "TUlJ", "windows_pfx_password": "pa55", "windows_timestamp_url": "http://ts"}),
        json!({"azure_tenant_id": "t", "azure_client_id": "c", "azure_client_secret": "s3cret",
               "azure_signing_endpoint": "https://eus.codesigning.azure.net",
               "azure_signing_account": "a", "azure_signing_profile": "p"}),
        json!({"gcloud_kms_key": "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
               "gcloud_kms_cert_base64": "TUlJ", "gcloud_service_account_base64": "e30="}),
        json!({}),
    ]
}

fn to_bytes(values: impl IntoIterator<Item = Value>) -> Vec<Vec<u8>> {
    values
        .into_iter()
        .map(|v| v.to_string().into_bytes())
        .collect()
}

/// A manifest that parses must honour its documented bounds and feed packaging without panic.
fn check_manifest(value: &Value) -> Result<String, String> {
    match Manifest::from_json(value) {
        Ok(m) => {
            if m.app_name.chars().count() > MAX_APP_NAME_CHARS || m.app_name.is_empty() {
                return Err(format!("accepted app_name {:?}", m.app_name));
            }
            if m.entry.split(['/', '\\']).any(|c| c == "..") || m.entry.starts_with('/') {
                return Err(format!("accepted entry {:?}", m.entry));
            }
            let ascii = m.ascii_app_name();
            if ascii.is_empty() || !ascii.is_ascii() {
                return Err(format!("ascii name {ascii:?}"));
            }
            let app = AppInfo::from_manifest(&m);
            let _ = resources::app_manifest(&app);
            let _ = resources::version_strings(&app, &format!("{ascii}.exe"));
            Ok("valid".into())
        }
        Err(e) => Ok(class(&e.to_string())),
    }
}

/// No secret value may show up in an error message or in the Debug form.
fn check_credentials(value: &Value) -> Result<String, String> {
    match Credentials::from_json(value) {
        Ok(c) => {
            let shown = format!("{c:?}");
            // Public values are shown as they are; a secret may happen to be part of one.
            let public: String = match value {
                Value::Object(obj) => obj
                    .iter()
                    .filter(|(k, _)| crate::job::credentials::PUBLIC_KEYS.contains(&k.as_str()))
                    .map(|(_, v)| format!("{v:?}\n"))
                    .collect(),
                _ => String::new(),
            };
            for secret in &c.secret_values {
                let s = secret.expose();
                if s.len() >= 4 && shown.matches(s).count() > public.matches(s).count() {
                    return Err(format!("Debug output shows a secret: {shown}"));
                }
            }
            Ok(format!("{:?}", c.method()))
        }
        Err(e) => {
            let message = e.to_string();
            let mut secrets = Vec::new();
            if let Value::Object(obj) = value {
                for (k, v) in obj {
                    if let (false, Some(s)) = (
                        crate::job::credentials::PUBLIC_KEYS.contains(&k.as_str()),
                        v.as_str(),
                    ) {
                        secrets.push(s.to_string());
                    }
                }
            }
            if let Some(s) = secrets
                .iter()
                .find(|s| s.len() >= 6 && message.contains(*s))
            {
                return Err(format!("error message shows the secret {s:?}: {message}"));
            }
            Ok(class(&message))
        }
    }
}

#[test]
fn fuzz_hub_frames() {
    let assign = json!({"type": "job_assign", "job_id": "j-1", "auth_token": "tok",
        "manifest": manifest_seed(), "credentials": credentials_seeds()[0],
        "tarball_url": "http://127.0.0.1:1/t", "artifact_upload_url": "http://127.0.0.1:1/u"});
    let seeds = to_bytes([
        assign,
        json!({"type": "cancel", "job_id": "j-1"}),
        json!({"type": "update_perry"}),
        json!({"type": "error", "code": "X", "message": "m"}),
        json!({"type": "proceed_distribute", "job_id": "j-1"}),
    ]);
    let mut keys = MANIFEST_KEYS.to_vec();
    keys.extend([
        "type",
        "job_id",
        "auth_token",
        "manifest",
        "credentials",
        "tarball_url",
    ]);
    engine::run(Target {
        name: "hub_frames",
        seeds,
        mutate: &|data, rng| mutate::json(data, &keys, rng),
        check: &|input| {
            let text = String::from_utf8_lossy(input);
            match parse_hub_frame(&text) {
                Ok(HubFrame::JobAssign(a)) => {
                    check_manifest(&a.manifest)?;
                    check_credentials(&a.credentials)?;
                    Ok("job_assign".into())
                }
                Ok(other) => Ok(class(&format!("{other:?}"))),
                Err(e) => Ok(class(&e.to_string())),
            }
        },
        max_time: Duration::from_secs(2),
        max_memory: 64 << 20,
    });
}

#[test]
fn fuzz_manifest() {
    let mut minimal = manifest_seed();
    minimal
        .as_object_mut()
        .unwrap()
        .retain(|k, _| ["app_name", "bundle_id", "version", "entry"].contains(&k.as_str()));
    engine::run(Target {
        name: "manifest",
        seeds: to_bytes([manifest_seed(), minimal]),
        mutate: &|data, rng| mutate::json(data, MANIFEST_KEYS, rng),
        check: &|input| match serde_json::from_slice::<Value>(input) {
            Ok(value) => check_manifest(&value),
            Err(_) => Ok("not json".into()),
        },
        max_time: Duration::from_secs(2),
        max_memory: 64 << 20,
    });
}

#[test]
fn fuzz_credentials() {
    engine::run(Target {
        name: "credentials",
        seeds: to_bytes(credentials_seeds()),
        mutate: &|data, rng| mutate::json(data, CREDENTIAL_KEYS, rng),
        check: &|input| match serde_json::from_slice::<Value>(input) {
            Ok(value) => check_credentials(&value),
            Err(_) => Ok("not json".into()),
        },
        max_time: Duration::from_secs(2),
        max_memory: 64 << 20,
    });
}

#[test]
fn fuzz_metadata_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.json");
    let seeds = to_bytes([
        json!({"perry_version": "0.5.3", "compiled_by": "mac-worker-2",
               "compile_timestamp": "2026-11-25T10:00:00Z"}),
        json!({}),
    ]);
    engine::run(Target {
        name: "metadata_json",
        seeds,
        mutate: &|data, rng| {
            mutate::json(
                data,
                &["perry_version", "compiled_by", "compile_timestamp"],
                rng,
            )
        },
        check: &|input| {
            std::fs::write(&path, input).map_err(|e| e.to_string())?;
            match BundleMetadata::read(&path) {
                Ok(meta) => {
                    let line = meta.describe();
                    if line.chars().any(char::is_control) || line.chars().count() > 500 {
                        return Err(format!("log line {line:?}"));
                    }
                    Ok("valid".into())
                }
                Err(e) => Ok(class(&e)),
            }
        },
        max_time: Duration::from_secs(2),
        max_memory: 64 << 20,
    });
}
