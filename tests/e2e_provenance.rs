//! Build records of hub jobs, against the real engine and toolchain image: with
//! `PERRY_PROVENANCE_UPLOAD=true` a PFX-signed job uploads its signed record just before the
//! artifact; the record names the tarball, the image ID and a full build, and the job log
//! carries its SHA-256. `verify` then rebuilds the project in Docker and matches the signed
//! artifact file by file.

use perry_test_support::docker;
use perry_test_support::e2e;
use perry_test_support::example_project;
use perry_test_support::sign_fixtures as fixtures;

use base64::Engine as _;
use e2e::*;
use example_project::*;
use perry_ship_windows::provenance::{check, inputs, statement};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_job_uploads_its_record_first_and_verify_rebuilds_it_in_docker() {
    if !fixtures::require_tools(&["openssl", "7z"]) {
        return;
    }
    let Some(worker) = start_worker(&[("PERRY_PROVENANCE_UPLOAD", "true")]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = fixtures::Pki::create(&dir.path().join("pki"));
    let pfx = pki.pfx("e2e", "rsa.key", "rsa.crt", "E2e-Passw0rd", &[]);
    let credentials = json!({
        "windows_pfx_base64": base64::engine::general_purpose::STANDARD.encode(pfx),
        "windows_pfx_password": "E2e-Passw0rd",
        "windows_timestamp_url": "none",
    });
    let job = "e2e-provenance";
    let tarball = tarball_of(&example_dir());
    let manifest = example_manifest("portable");
    let complete = run_job(&worker, job, tarball.clone(), manifest.clone(), credentials).await;
    assert_eq!(complete.json["success"], json!(true), "{}", complete.raw);

    let zip_name = "Hello Perry-1.2.0-portable.zip";
    let record_name = format!("{zip_name}.intoto.jsonl");
    let uploads: Vec<_> = worker
        .hub
        .uploads()
        .into_iter()
        .filter(|u| u.job_id == job)
        .collect();
    let names: Vec<&str> = uploads.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        [record_name.as_str(), zip_name],
        "record first, artifact last"
    );
    assert_eq!(
        (uploads[0].target.as_str(), uploads[1].target.as_str()),
        ("windows", "windows"),
        "the record travels under its artifact's target, one the hub contract lists"
    );
    let frames = worker.hub.job_frames(job);
    assert!(
        frames
            .iter()
            .any(|f| f.raw.contains("build record (signed)") && f.raw.contains(&uploads[0].sha256)),
        "the job log names the record's sha256"
    );

    // The record: signed, for this artifact, naming the tarball, the image and a full build.
    let out = tempfile::tempdir().unwrap();
    let zip = out.path().join(zip_name);
    std::fs::copy(worker.hub.upload_path(job, zip_name), &zip).unwrap();
    let record = out.path().join(&record_name);
    std::fs::copy(worker.hub.upload_path(job, &record_name), &record).unwrap();
    let envelope = perry_ship_windows::provenance::read_record(&record).unwrap();
    let checked = check::check_record(&envelope, &zip).unwrap();
    assert_eq!(
        checked.signers.len(),
        1,
        "signed with the job's certificate"
    );
    let tarball_path = out.path().join("project.tar.gz");
    std::fs::write(&tarball_path, &tarball).unwrap();
    assert_eq!(
        statement::dependency_sha256(&checked.statement, inputs::PROJECT_ARCHIVE),
        Some(inputs::sha256_file(&tarball_path).unwrap().as_str())
    );
    assert!(
        statement::dependency_sha256(&checked.statement, "toolchain").is_some(),
        "the image ID is recorded: {}",
        checked.statement
    );
    let def = &checked.statement["predicate"]["buildDefinition"];
    assert_eq!(def["externalParameters"]["buildKind"], "full");
    assert_eq!(def["internalParameters"]["perryVersion"], "0.5.3-standin");

    // A second job on the same image: its record has the same perry version, which was not
    // asked again (one `perry --version` per image ID, not per job).
    let version_probes = || {
        worker
            .runner
            .audit()
            .iter()
            .filter(|record| record.name.contains("perry-version"))
            .count()
    };
    let probes_after_first = version_probes();
    assert!(probes_after_first >= 1);
    let unsigned = run_job(
        &worker,
        "e2e-provenance-2",
        tarball.clone(),
        manifest.clone(),
        json!({}),
    )
    .await;
    assert_eq!(unsigned.json["success"], json!(true), "{}", unsigned.raw);
    let second_dir = tempfile::tempdir().unwrap();
    let (second_zip, second_record) = (
        second_dir.path().join(zip_name),
        second_dir.path().join(&record_name),
    );
    std::fs::copy(
        worker.hub.upload_path("e2e-provenance-2", zip_name),
        &second_zip,
    )
    .unwrap();
    std::fs::copy(
        worker.hub.upload_path("e2e-provenance-2", &record_name),
        &second_record,
    )
    .unwrap();
    let envelope = perry_ship_windows::provenance::read_record(&second_record).unwrap();
    let second = check::check_record(&envelope, &second_zip).unwrap();
    assert_eq!(
        second.statement["predicate"]["buildDefinition"]["internalParameters"]["perryVersion"],
        "0.5.3-standin"
    );
    assert_eq!(
        version_probes(),
        probes_after_first,
        "perry --version ran again"
    );
    worker.stop().await;

    // verify: signatures, record, and a Docker rebuild that matches entry by entry.
    let manifest_path = out.path().join("manifest.json");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_perry-ship-windows"))
        .arg("verify")
        .arg(&zip)
        .arg("--project")
        .arg(&tarball_path)
        .arg("--manifest")
        .arg(&manifest_path)
        .arg("--docker")
        .env("PERRY_DOCKER_IMAGE", docker::toolchain_image())
        .env("PERRY_WORK_DIR", work.path())
        .env("PERRY_MIN_FREE_DISK", "1m")
        .env("PERRY_DOCKER_MEMORY", "1g")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(result.status.success(), "{report}");
    assert!(
        report.contains("unsigned rebuild from the project and manifest matches"),
        "{report}"
    );
}
