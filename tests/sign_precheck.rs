//! The certificate is checked when signing opens, before any compile step: expired,
//! not-yet-valid and no-code-signing certificates fail the job with `SIGNING_FAILED` while
//! the runner has seen no step. A good certificate is recorded for `/metrics`, and
//! `doctor --credentials FILE` reports the same facts. The artifact check refuses an
//! unsigned PE and one signed by another certificate, naming the file.

use perry_test_support::sign_fixtures as fixtures;
use perry_test_support::sign_servers as servers;

use base64::Engine as _;
use fixtures::*;
use perry_ship_windows::config::Config;
use perry_ship_windows::error::ErrorCode;
use perry_ship_windows::events::CollectingSink;
use perry_ship_windows::hub::metrics::WorkerMetrics;
use perry_ship_windows::job::credentials::Credentials;
use perry_ship_windows::job::manifest::Manifest;
use perry_ship_windows::pipeline::windows::WindowsPipeline;
use perry_ship_windows::pipeline::{JobContext, Pipeline};
use perry_ship_windows::sandbox::{Runner, Step, StepContext, StepError, StepOutcome};
use serde_json::json;
use std::sync::{Arc, Mutex};

const PASSWORD: &str = "Precheck-pa55word!";

/// Records the steps it is asked to run and fails each one.
#[derive(Default)]
struct RecordingRunner {
    steps: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Runner for RecordingRunner {
    async fn run(&self, step: &Step, _ctx: &StepContext) -> Result<StepOutcome, StepError> {
        self.steps.lock().unwrap().push(step.name.clone());
        Ok(StepOutcome { exit_code: 1 })
    }
    fn describe(&self) -> String {
        "recording".into()
    }
}

fn credentials_json(pki: &Pki, cert: &str) -> serde_json::Value {
    let pfx = pki.pfx(cert, "rsa.key", &format!("{cert}.crt"), PASSWORD, &[]);
    json!({
        "windows_pfx_base64": base64::engine::general_purpose::STANDARD.encode(pfx),
        "windows_pfx_password": PASSWORD,
        "windows_timestamp_url": "http://127.0.0.1:9/unused",
    })
}

fn job_context(
    work: &std::path::Path,
    creds: &serde_json::Value,
    metrics: &WorkerMetrics,
    runner: Arc<RecordingRunner>,
    events: Arc<CollectingSink>,
) -> JobContext {
    let project = work.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("main.ts"), "console.log('hi')\n").unwrap();
    JobContext {
        job_id: "precheck".into(),
        attempt: 1,
        manifest: Arc::new(
            Manifest::from_json(&json!({
                "app_name": "Precheck", "bundle_id": "com.example.precheck",
                "version": "1.0.0", "entry": "main.ts",
            }))
            .unwrap(),
        ),
        credentials: Arc::new(Credentials::from_json(creds).unwrap()),
        project_dir: project,
        work_dir: work.to_path_buf(),
        events,
        cancel: Default::default(),
        runner: runner.clone(),
        config: Arc::new(Config::for_tests(&[("PERRY_TIMESTAMP_URLS", "none")])),
        http: reqwest::Client::new(),
        certificates: metrics.certificates.clone(),
    }
}

async fn run_pipeline(
    work: &std::path::Path,
    creds: &serde_json::Value,
    metrics: &WorkerMetrics,
) -> (perry_ship_windows::error::JobError, Vec<String>) {
    let runner = Arc::new(RecordingRunner::default());
    let job = job_context(work, creds, metrics, runner.clone(), CollectingSink::new());
    let err = WindowsPipeline.run(&job).await.unwrap_err();
    let steps = runner.steps.lock().unwrap().clone();
    (err, steps)
}

#[tokio::test]
async fn bad_certificates_fail_before_any_compile_step_and_good_ones_reach_metrics() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let metrics = WorkerMetrics::new(1);
    for (cert, expect) in [
        ("expired", "expired on 2020-02-01"),
        ("notyet", "not valid yet"),
        ("noeku", "no code-signing extended key usage"),
        ("nodigsig", "digitalSignature"),
    ] {
        let work = tmp.path().join(cert);
        let (err, steps) = run_pipeline(&work, &credentials_json(&pki, cert), &metrics).await;
        assert_eq!(err.code, ErrorCode::SigningFailed, "{cert}: {err:?}");
        assert!(err.message.contains(expect), "{cert}: {}", err.message);
        assert!(
            steps.is_empty(),
            "{cert}: steps ran before the check: {steps:?}"
        );
    }
    assert!(
        !metrics
            .prometheus_text()
            .contains("perry_signing_cert_expiry_seconds{"),
        "no certificate was used yet"
    );

    // a good certificate passes the check; the job then reaches the compile step
    let work = tmp.path().join("good");
    let (err, steps) = run_pipeline(&work, &credentials_json(&pki, "rsa"), &metrics).await;
    assert_ne!(err.code, ErrorCode::SigningFailed, "{err:?}");
    assert!(!steps.is_empty(), "compile ran after the check");
    let text = metrics.prometheus_text();
    let thumb = perry_ship_windows::sign::certificate::thumbprint(
        &<x509_cert::Certificate as der::DecodePem>::from_pem(pki.read("rsa.crt")).unwrap(),
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("perry_signing_cert_expiry_seconds{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with(&format!(
            "perry_signing_cert_expiry_seconds{{method=\"pfx\",thumbprint=\"{thumb}\"}} "
        )),
        "{line}"
    );
    let seconds: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (363 * 86_400..=366 * 86_400).contains(&seconds),
        "{seconds}"
    );
    assert!(
        text.contains("perry_signing_cert_expiry_timestamp_seconds{method=\"pfx\""),
        "{text}"
    );
}

#[tokio::test]
async fn doctor_credentials_reports_the_certificate_and_the_timestamp_servers() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let tsa = servers::start_tsa(pki.dir.clone()).await;
    let doctor = |creds: serde_json::Value| {
        let file = tmp.path().join("creds.json");
        std::fs::write(&file, creds.to_string()).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_perry-ship-windows"))
            .args(["doctor", "--credentials"])
            .arg(&file)
            .env("PERRY_TIMESTAMP_URLS", "none")
            .output();
        async move {
            let out = out.await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    };
    let mut good = credentials_json(&pki, "soon");
    good["windows_timestamp_url"] = json!(format!("http://127.0.0.1:9/dead {}", tsa.url));
    let (ok, text) = doctor(good.clone()).await;
    assert!(ok, "{text}");
    let thumb = perry_ship_windows::sign::certificate::thumbprint(
        &<x509_cert::Certificate as der::DecodePem>::from_pem(pki.read("soon.crt")).unwrap(),
    );
    assert!(
        text.contains(&format!("certificate thumbprint: {thumb}")),
        "{text}"
    );
    assert!(
        text.contains("certificate subject: CN=Perry Test Signer"),
        "{text}"
    );
    assert!(
        text.contains("WARNING") && text.contains("expires in"),
        "{text}"
    );
    assert!(
        text.contains(&format!("✓ timestamp server {}/: answers", tsa.url)),
        "{text}"
    );
    assert!(
        text.contains("- timestamp server http://127.0.0.1:9/dead"),
        "{text}"
    );

    let (ok, text) = doctor(credentials_json(&pki, "expired")).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("✗ signing certificate") && text.contains("expired"),
        "{text}"
    );
}

#[tokio::test]
async fn the_artifact_check_names_an_unsigned_or_foreign_signed_pe() {
    if !require_tools(&["openssl", "x86_64-w64-mingw32-gcc"]) {
        return;
    }
    use perry_ship_windows::pipeline::signature_audit::check_signed;
    use perry_ship_windows::sign::SigningSession;
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let mut creds = credentials_json(&pki, "rsa");
    creds["windows_timestamp_url"] = json!("none");
    let job = job_context(
        &tmp.path().join("job"),
        &creds,
        &WorkerMetrics::new(1),
        Arc::default(),
        CollectingSink::new(),
    );
    let open = |creds: serde_json::Value| async move {
        SigningSession::from_credentials(
            &Credentials::from_json(&creds).unwrap(),
            &reqwest::Client::new(),
            &local_endpoints(),
        )
        .await
        .unwrap()
        .unwrap()
    };
    let session = open(creds).await;
    let signed = mingw_exe(tmp.path(), "signed");
    session.sign_pe(&signed).await.unwrap();
    let unsigned = mingw_exe(tmp.path(), "unsigned");
    let file = |name: &str, path: &std::path::Path| (name.to_string(), path.to_path_buf());

    check_signed(&job, &session, &[file("app.exe", &signed)]).unwrap();

    let err = check_signed(
        &job,
        &session,
        &[
            file("app.exe", &signed),
            file("$PLUGINSDIR\\System.dll", &unsigned),
        ],
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::SigningFailed);
    assert!(
        err.message
            .contains("$PLUGINSDIR\\System.dll is not signed"),
        "{}",
        err.message
    );

    // same subject, another certificate (the one that expires soon): not this job's identity
    let mut other = credentials_json(&pki, "soon");
    other["windows_timestamp_url"] = json!("none");
    let foreign = mingw_exe(tmp.path(), "foreign");
    open(other).await.sign_pe(&foreign).await.unwrap();
    let err = check_signed(&job, &session, &[file("helper.dll", &foreign)]).unwrap_err();
    assert!(
        err.message.contains("helper.dll is signed by")
            && err.message.contains("not by this job's certificate"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn none_signs_without_timestamps_and_the_job_log_says_so_with_a_summary() {
    if !require_tools(&["openssl", "x86_64-w64-mingw32-gcc"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let mut creds = credentials_json(&pki, "rsa");
    creds["windows_timestamp_url"] = json!("none");
    let work = tmp.path().join("job");
    let runner = Arc::new(RecordingRunner::default());
    let sink = CollectingSink::new();
    let mut job = job_context(
        &work,
        &creds,
        &WorkerMetrics::new(1),
        runner.clone(),
        sink.clone(),
    );
    // a precompiled sign-only bundle packaged as a portable ZIP: no step runs at all
    let bundle = job.project_dir.join("perry-precompiled");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("metadata.json"), "{}").unwrap();
    std::fs::copy(mingw_exe(tmp.path(), "app"), bundle.join("Precheck.exe")).unwrap();
    let manifest = json!({
        "app_name": "Precheck", "bundle_id": "com.example.precheck",
        "version": "1.0.0", "entry": "main.ts", "windows_distribute": "portable",
    });
    job.manifest = Arc::new(Manifest::from_json(&manifest).unwrap());

    let artifacts = WindowsPipeline.run(&job).await.unwrap();
    assert_eq!(artifacts.len(), 1);
    assert!(runner.steps.lock().unwrap().is_empty());
    let lines = sink.lines();
    for wanted in [
        "NOTE: timestamping is OFF (windows_timestamp_url: none)",
        "artifact check: 1 PE file(s) signed by this job's certificate and verified",
        "signing summary: 1 file(s) signed with PFX",
        "signing summary: timestamp server none (timestamping turned off",
        "signing summary: certificate CN=Perry Test Signer, O=Perry Test, C=US",
        "signing summary: thumbprint ",
        "signing summary: certificate expires ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(wanted)),
            "no line starting with {wanted:?}: {lines:#?}"
        );
    }
}
