//! End to end against the real engine, makensis and osslsigncode: a test hub assigns jobs to
//! a worker running the real pipeline in Docker containers with the stand-in compiler.
//!
//! Covers: installer + PFX (signed exe inside, icon, version info, 7z listing, protocol
//! sequence, no credential in any container), portable and MSIX, a sign-only bundle with
//! KMS credentials, a compile failure followed by a good job, and cancel during compile.

use perry_test_support::e2e;
use perry_test_support::example_project;
use perry_test_support::measure;
use perry_test_support::sign_fixtures as fixtures;
use perry_test_support::sign_servers as servers;

use base64::Engine as _;
use e2e::*;
use example_project::*;
use measure::sha256_file;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOOLS: &[&str] = &["openssl", "osslsigncode", "7z", "x86_64-w64-mingw32-gcc"];
const PFX_PASSWORD: &str = "e2e-Pfx-Passw0rd!";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

struct Signing {
    pki: fixtures::Pki,
    tsa_url: String,
    _tsa: servers::Tsa,
    credentials: Value,
    secrets: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A Docker-backed worker and PFX credentials; `None` (a SKIP, or a panic under CI) when
/// a tool or the engine is missing.
async fn worker_with_pfx() -> Option<(Worker, Signing)> {
    if !fixtures::require_tools(TOOLS) {
        return None;
    }
    let worker = start_worker(&[]).await?;
    Some((worker, pfx_signing().await))
}

async fn pfx_signing() -> Signing {
    let dir = tempfile::tempdir().unwrap();
    let pki = fixtures::Pki::create(&dir.path().join("pki"));
    let pfx = pki.pfx("e2e", "rsa.key", "rsa.crt", PFX_PASSWORD, &[]);
    let tsa = servers::start_tsa(pki.dir.clone()).await;
    let pfx_b64 = b64(&pfx);
    let credentials = json!({
        "windows_pfx_base64": pfx_b64,
        "windows_pfx_password": PFX_PASSWORD,
        "windows_timestamp_url": tsa.url,
        "apple_api_key": "other-platform-secret-must-not-leak",
    });
    Signing {
        pki,
        tsa_url: tsa.url.clone(),
        _tsa: tsa,
        credentials,
        secrets: vec![
            pfx_b64,
            PFX_PASSWORD.into(),
            "other-platform-secret-must-not-leak".into(),
        ],
        _dir: dir,
    }
}

fn assert_no_secret_in_frames(worker: &Worker, secrets: &[String]) {
    for frame in worker.hub.frames() {
        for secret in secrets {
            assert!(
                !frame.raw.contains(secret.as_str()),
                "secret leaked in frame {}",
                frame.raw
            );
            let encoded = b64(secret.as_bytes());
            assert!(
                !frame.raw.contains(&encoded),
                "base64 secret leaked in frame {}",
                frame.raw
            );
        }
    }
}

/// Every container the runner created: nothing of the credentials in env, cmd, labels, mounts.
async fn assert_no_secret_in_containers(worker: &Worker, secrets: &[String]) {
    let audit = worker.runner.audit();
    assert!(!audit.is_empty(), "the runner created no container");
    for record in audit {
        for secret in secrets {
            let json = record.inspect_json();
            assert!(
                !json.contains(secret.as_str()),
                "secret inside container {}: {json}",
                record.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installer_with_pfx_is_signed_listed_and_follows_the_protocol() {
    let Some((worker, signing)) = worker_with_pfx().await else {
        return;
    };
    let job = "e2e-installer";
    let complete = run_job(
        &worker,
        job,
        tarball_of(&example_dir()),
        example_manifest("installer"),
        signing.credentials.clone(),
    )
    .await;
    let frames = worker.hub.job_frames(job);
    assert_protocol_sequence(&frames, job, true);

    let uploads = worker.hub.uploads();
    assert_eq!(uploads.len(), 1, "one artifact uploaded");
    let up = &uploads[0];
    assert_eq!(up.name, "Hello Perry-1.2.0-Setup.exe");
    assert_eq!(up.target, "windows");
    assert_eq!(complete.json["artifacts"][0]["sha256"], json!(up.sha256));
    let setup = worker.hub.upload_path(job, &up.name);
    assert_eq!(sha256_file(&setup), up.sha256);

    fixtures::assert_osslsigncode_ok(&signing.pki, &setup);
    let listing = seven_zip_paths(&setup);
    for wanted in [
        "Hello Perry.exe",
        "perry_runtime.dll",
        "app.ico",
        "assets/strings.json",
        "assets/fonts/README.txt",
    ] {
        assert!(
            listing.iter().any(|p| p.ends_with(wanted)),
            "{wanted} missing from {listing:?}"
        );
    }
    assert!(
        listing
            .iter()
            .any(|p| p.to_ascii_lowercase().contains("uninst")),
        "no uninstaller in {listing:?}"
    );

    // The exe inside the installer is signed and carries icon + version info.
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("7z")
        .args(["x", "-y"])
        .arg(format!("-o{}", out.path().display()))
        .arg(&setup)
        .output()
        .unwrap();
    assert!(status.status.success());
    let exe = walk(out.path())
        .into_iter()
        .find(|p| p.ends_with("Hello Perry.exe"))
        .expect("exe extracted");
    fixtures::assert_osslsigncode_ok(&signing.pki, &exe);
    let uninstaller = walk(out.path())
        .into_iter()
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .to_ascii_lowercase()
                    .starts_with("uninst")
            })
        })
        .expect("uninstaller extracted");
    fixtures::assert_osslsigncode_ok(&signing.pki, &uninstaller);
    // Every PE in the payload, the plugin DLLs under $PLUGINSDIR included, is signed and
    // timestamped with the test CA.
    let pes: Vec<_> = walk(out.path())
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.starts_with(b"MZ")))
        .collect();
    let plugins = pes
        .iter()
        .filter(|p| p.to_string_lossy().contains("$PLUGINSDIR"))
        .count();
    assert!(plugins >= 2, "System.dll and nsDialogs.dll: {pes:?}");
    for pe in &pes {
        fixtures::assert_osslsigncode_ok(&signing.pki, pe);
    }
    // The job log ends with the artifact check and the signing summary.
    let log: Vec<String> = frames
        .iter()
        .filter(|f| f.kind() == "log")
        .filter_map(|f| f.json["line"].as_str().map(str::to_string))
        .collect();
    for wanted in [
        "artifact check: ".to_string(),
        "signing summary: 6 file(s) signed with PFX".to_string(),
        format!("signing summary: timestamp server {}/", signing.tsa_url),
        "signing summary: certificate CN=Perry Test Signer, O=Perry Test, C=US".to_string(),
        "signing summary: thumbprint ".to_string(),
        "signing summary: certificate expires ".to_string(),
        "certificate chain: CN=Perry Test Signer, O=Perry Test, C=US <- CN=Perry Test Code Signing CA".to_string(),
    ] {
        assert!(
            log.iter().any(|l| l.starts_with(&wanted)),
            "no log line starting with {wanted:?}: {log:#?}"
        );
    }
    let resources = perry_ship_windows::package::resources::read_resources(&exe).unwrap();
    assert_eq!(
        resources
            .version_strings
            .get("ProductName")
            .map(String::as_str),
        Some("Hello Perry")
    );
    assert_eq!(
        resources
            .version_strings
            .get("FileVersion")
            .map(String::as_str),
        Some("1.2.0.0")
    );
    assert!(!resources.icon_sizes.is_empty(), "no icon in the exe");

    assert_no_secret_in_frames(&worker, &signing.secrets);
    assert_no_secret_in_containers(&worker, &signing.secrets).await;
    assert!(
        containers_of_job(job).await.is_empty(),
        "containers left behind"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portable_and_msix_are_built_and_the_msix_is_signed() {
    let Some((worker, signing)) = worker_with_pfx().await else {
        return;
    };

    let complete = run_example_job(&worker, "e2e-portable", "portable", json!({})).await;
    assert_eq!(complete.json["success"], json!(true), "{}", complete.raw);
    let frames = worker.hub.job_frames("e2e-portable");
    assert_protocol_sequence(&frames, "e2e-portable", true);
    assert!(
        frames.iter().any(|f| f.raw.contains("UNSIGNED")),
        "an unsigned build must say so"
    );
    let zip_path = worker
        .hub
        .upload_path("e2e-portable", "Hello Perry-1.2.0-portable.zip");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    for wanted in [
        "Hello Perry/Hello Perry.exe",
        "Hello Perry/perry_runtime.dll",
        "Hello Perry/assets/fonts/README.txt",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }

    let complete = run_example_job(&worker, "e2e-msix", "msix", signing.credentials.clone()).await;
    assert_eq!(complete.json["success"], json!(true), "{}", complete.raw);
    let msix = worker.hub.upload_path("e2e-msix", "Hello Perry-1.2.0.msix");
    fixtures::assert_osslsigncode_ok(&signing.pki, &msix);
    assert_no_secret_in_frames(&worker, &signing.secrets);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_only_bundle_with_kms_gives_a_signed_installer() {
    if !fixtures::require_tools(TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = fixtures::Pki::create(&dir.path().join("pki"));
    let tsa = servers::start_tsa(pki.dir.clone()).await;
    let sa_pem = std::fs::read_to_string(pki.path("other.key")).unwrap();
    let sa_pub = String::from_utf8(
        fixtures::run(
            std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(pki.path("other.key")),
        )
        .stdout,
    )
    .unwrap();
    let kms = servers::start_kms(
        sa_pub,
        servers::TestKey::from_pem_file(&pki.path("rsa.key")),
    )
    .await;
    let token_url = format!("{}/token", kms.url);
    let Some(worker) = start_worker(&[
        ("PERRY_GCLOUD_KMS_URL", kms.url.as_str()),
        ("PERRY_GCLOUD_TOKEN_URL", token_url.as_str()),
    ])
    .await
    else {
        return;
    };

    // A precompiled hand-off bundle as the Linux worker uploads it.
    let bundle = dir.path().join("bundle");
    let pre = bundle.join("perry-precompiled");
    std::fs::create_dir_all(pre.join("assets")).unwrap();
    let exe = fixtures::mingw_exe(dir.path(), "hello");
    std::fs::copy(&exe, pre.join("Hello Perry.exe")).unwrap();
    std::fs::write(pre.join("assets/readme.txt"), "bundled asset").unwrap();
    std::fs::write(
        pre.join("metadata.json"),
        r#"{"perry_version":"0.5.3","compiled_by":"linux-01","compile_timestamp":"2026-11-25T12:00:00Z"}"#,
    )
    .unwrap();
    let mut manifest = example_manifest("installer");
    manifest["targets"] = json!(["windows-sign"]);
    manifest["icon"] = Value::Null;
    std::fs::write(pre.join("manifest.json"), manifest.to_string()).unwrap();

    let sa_json = json!({
        "type": "service_account", "project_id": "perry", "private_key_id": "k1",
        "private_key": sa_pem, "client_email": "signer@perry.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string();
    let cert_b64 = b64(&std::fs::read(pki.path("rsa.crt")).unwrap());
    let sa_b64 = b64(sa_json.as_bytes());
    let credentials = json!({
        "gcloud_kms_key": "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
        "gcloud_kms_cert_base64": cert_b64,
        "gcloud_service_account_base64": sa_b64,
        "windows_timestamp_url": tsa.url,
    });
    let job = "e2e-sign-only";
    let complete = run_job(&worker, job, tarball_of(&bundle), manifest, credentials).await;
    assert_eq!(complete.json["success"], json!(true), "{}", complete.raw);
    let frames = worker.hub.job_frames(job);
    assert_protocol_sequence(&frames, job, true);
    assert!(
        frames.iter().any(|f| f.raw.contains("Precompiled")),
        "sign-only path not taken"
    );
    assert!(
        frames.iter().any(|f| f
            .raw
            .contains("bundle compiled by linux-01 with perry 0.5.3 at 2026-11-25T12:00:00Z")),
        "the job log says where the bundle comes from"
    );
    let setup = worker.hub.upload_path(job, "Hello Perry-1.2.0-Setup.exe");
    fixtures::assert_osslsigncode_ok(&pki, &setup);
    assert!(kms.sign.hits() >= 2, "KMS signed the exe and the installer");
    assert_no_secret_in_frames(&worker, &[sa_b64, sa_pem]);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compile_failure_reports_compile_failed_then_the_next_job_succeeds() {
    let Some(worker) = start_worker(&[]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bad = example_with_marker(&dir.path().join("project"), "perry-standin: fail");
    let job = "e2e-compile-fail";
    let complete = run_job(
        &worker,
        job,
        tarball_of(&bad),
        example_manifest("portable"),
        json!({}),
    )
    .await;
    let frames = worker.hub.job_frames(job);
    assert_protocol_sequence(&frames, job, false);
    let error = frames.iter().find(|f| f.kind() == "error").unwrap();
    assert_eq!(error.json["code"], json!("COMPILE_FAILED"), "{}", error.raw);
    assert_eq!(error.json["stage"], json!("compiling"));
    assert_eq!(complete.json["artifacts"], json!([]));
    assert!(
        frames
            .iter()
            .any(|f| f.kind() == "log" && f.json["stream"] == json!("stderr")),
        "the compiler's stderr reached the hub"
    );
    assert!(
        worker.hub.uploads().is_empty(),
        "nothing uploaded after a failure"
    );
    assert!(
        containers_of_job(job).await.is_empty(),
        "containers left behind"
    );

    let next = run_example_job(&worker, "e2e-after-fail", "portable", json!({})).await;
    assert_eq!(next.json["success"], json!(true), "{}", next.raw);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_compile_removes_the_container_within_two_seconds() {
    let Some(worker) = start_worker(&[]).await else {
        return;
    };
    let job = "e2e-cancel";
    let _project = assign_long_compile(&worker, job).await;
    let sent = Instant::now();
    worker
        .hub
        .send_json(&json!({"type": "cancel", "job_id": job}))
        .unwrap();
    while !containers_of_job(job).await.is_empty() {
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "container still there 2 s after cancel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let complete = worker
        .hub
        .wait_for_complete(job, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(complete.json["success"], json!(false));
    let frames = worker.hub.job_frames(job);
    assert!(
        frames.iter().any(|f| f.kind() == "error"),
        "cancel reports an error"
    );
    assert!(worker.hub.uploads().is_empty());
    worker.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
