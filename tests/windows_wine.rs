//! The Windows build of the worker (`--target x86_64-pc-windows-gnu`), run for real under
//! wine (tests/support/wine.rs): local `build`s of a hand-off bundle into a signed portable
//! ZIP and a signed MSIX (verified with osslsigncode on Linux, and by a signtool double found
//! through PERRY_BUILD_WINDOWS_SDK_PATH), a signtool rejection failing the build, a
//! `windows-sign` job from the test hub, `doctor`, and the Windows service (install, start,
//! SCM stop drains it to STOPPED with exit code 0, uninstall).
//! The installer format is not covered: it needs Windows NSIS, which no registry here has.
//! Under `CI=true` a missing wine (or mingw, or the Windows Rust target) fails these tests.

use perry_test_support::example_project;
use perry_test_support::sign_fixtures as fixtures;
use perry_test_support::wine;
use perry_test_support::wine_setup;

use perry_test_support::testhub::TestHub;
use serde_json::json;
use std::time::Duration;
use wine::win_path;
use wine_setup::{prerequisites, unzip_entry, Setup, RUN_LIMIT, SDK_VERSION};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_builds_under_wine_give_a_signed_portable_zip_and_a_signed_msix() {
    let Some(wine) = prerequisites().await else {
        return;
    };
    let setup = Setup::new(wine).await;

    let out = setup.local_build(wine, "portable", &[]).await;
    let log = wine::text(&out);
    assert!(out.status.success(), "portable build failed:\n{log}");
    let zip = setup.path("out/Hello Perry-1.2.0-portable.zip");
    assert!(zip.is_file(), "no portable ZIP:\n{log}");
    let exe = unzip_entry(&zip, "Hello Perry/Hello Perry.exe", setup.dir.path());
    fixtures::assert_osslsigncode_ok(&setup.pki, &exe);
    unzip_entry(&zip, "Hello Perry/assets/readme.txt", setup.dir.path());

    let out = setup.local_build(wine, "msix", &[]).await;
    let log = wine::text(&out);
    assert!(out.status.success(), "MSIX build failed:\n{log}");
    let msix = setup.path("out/Hello Perry-1.2.0.msix");
    fixtures::assert_osslsigncode_ok(&setup.pki, &msix);

    // The SDK's signtool (a double here) checked every signed file a second time.
    let calls = setup.signtool_calls();
    let exe_checks = calls
        .iter()
        .filter(|c| c.starts_with("verify /pa /v ") && c.ends_with("Hello Perry.exe"))
        .count();
    assert_eq!(exe_checks, 2, "one exe check per build: {calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("verify /pa /v ") && c.ends_with("Hello Perry-1.2.0.msix")),
        "the MSIX was not checked: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_signtool_rejects_fails_the_build_with_signing_failed() {
    let Some(wine) = prerequisites().await else {
        return;
    };
    let setup = Setup::new(wine).await;
    let reject =
        "A certificate chain processed, but terminated in a root certificate which is not trusted";
    setup.reject_signatures(reject);
    let out = setup.local_build(wine, "portable", &[]).await;
    let log = wine::text(&out);
    assert!(!out.status.success(), "the build must fail:\n{log}");
    assert!(log.contains("SIGNING_FAILED"), "{log}");
    assert!(log.contains(reject), "signtool's reason is shown:\n{log}");
    assert!(
        !setup.path("out/Hello Perry-1.2.0-portable.zip").exists(),
        "no artifact after a rejected signature"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windows_sign_job_from_the_hub_is_signed_and_uploaded_by_the_wine_worker() {
    let Some(wine) = prerequisites().await else {
        return;
    };
    let setup = Setup::new(wine).await;
    let hub = TestHub::start().await.expect("test hub");
    let mut env = setup.env();
    env.push(("PERRY_HUB_URL", hub.ws_url()));
    env.push(("PERRY_WORKER_NAME", "wine-worker".to_string()));
    env.push(("PERRY_WORKER_CAPABILITIES", "windows-sign".to_string()));
    let mut worker = wine
        .worker(&["run"], &env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the worker under wine");

    let hello = hub
        .wait_for_hello(1, Duration::from_secs(120))
        .await
        .expect("the wine worker says hello");
    assert_eq!(
        hello.json["capabilities"],
        json!(["windows-sign"]),
        "{}",
        hello.raw
    );

    let job = "wine-sign-only";
    hub.assign(
        job,
        "tok-wine",
        example_project::tarball_of(&setup.bundle),
        Setup::manifest("msix"),
        setup.credentials.clone(),
    )
    .unwrap();
    let complete = hub.wait_for_complete(job, RUN_LIMIT).await.unwrap();
    let _ = worker.kill().await;
    let frames: Vec<String> = hub.job_frames(job).into_iter().map(|f| f.raw).collect();
    assert_eq!(
        complete.json["success"],
        json!(true),
        "{}\n{frames:#?}",
        complete.raw
    );
    assert!(
        frames
            .iter()
            .any(|f| f.contains("bundle compiled by linux-01")),
        "sign-only path not taken: {frames:#?}"
    );
    let msix = hub.upload_path(job, "Hello Perry-1.2.0.msix");
    fixtures::assert_osslsigncode_ok(&setup.pki, &msix);
    assert!(
        setup
            .signtool_calls()
            .iter()
            .any(|c| c.ends_with("Hello Perry-1.2.0.msix")),
        "signtool checked the uploaded MSIX"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_under_wine_reports_signtool_free_space_and_windows_hints() {
    let Some(wine) = prerequisites().await else {
        return;
    };
    let setup = Setup::new(wine).await;
    let out = wine
        .run(&["doctor"], &setup.env(), Duration::from_secs(120))
        .await;
    let report = wine::text(&out);
    assert!(
        report.contains(&format!("(version {SDK_VERSION})")) && report.contains("signtool.exe"),
        "signtool found with its version:\n{report}"
    );
    assert!(
        report.contains("GiB free"),
        "free space read through the OS API:\n{report}"
    );
    assert!(report.contains("winget install NSIS.NSIS"), "{report}");
    assert!(
        report.contains("✓ job processes: start under their limits"),
        "a job process starts in its Job Object:\n{report}"
    );
    assert!(
        !report.contains("apt-get"),
        "Linux hints on Windows:\n{report}"
    );

    let missing = setup.path("empty-sdk");
    std::fs::create_dir_all(&missing).unwrap();
    let mut env = setup.env();
    env.retain(|(k, _)| *k != "PERRY_BUILD_WINDOWS_SDK_PATH");
    env.push(("PERRY_BUILD_WINDOWS_SDK_PATH", win_path(&missing)));
    let out = wine.run(&["doctor"], &env, Duration::from_secs(120)).await;
    let report = wine::text(&out);
    assert!(!out.status.success());
    assert!(
        report.contains("✗ signtool: not found under"),
        "a configured SDK without signtool is a failure:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_service_runs_under_the_scm_and_a_stop_drains_it_to_stopped() {
    if wine::require_wine().is_none() {
        return;
    }
    // Wine starts automatic services whenever a session starts: keep this one away from the
    // other tests' prefix, and keep its session alive while we talk to the SCM.
    let Some(wine) = wine::require_own_prefix("service") else {
        return;
    };
    let sc = |args: &'static [&'static str]| {
        let mut cmd = wine.wine(&["sc.exe"]);
        cmd.args(args);
        async move { cmd.output().await.expect("running wine sc.exe") }
    };
    let work = tempfile::tempdir().unwrap();
    // No hub answers here: the service keeps reconnecting until the SCM stops it.
    let env = [
        ("PERRY_HUB_URL", "ws://127.0.0.1:9/ws".to_string()),
        ("PERRY_WORKER_NAME", "wine-service".to_string()),
        ("PERRY_WORK_DIR", win_path(work.path())),
    ];
    // A fresh session whose first process starts the SCM with this environment (services
    // inherit it) and with no output pipes (the SCM outlives the process).
    wine.wineserver(&["-k"]);
    wine.wineserver(&["-p", "120"]);
    let session = wine
        .worker(&["--version"], &env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(session.success());
    // A registration left by an interrupted earlier run would make install fail.
    let _ = wine
        .run(&["service", "uninstall"], &[], Duration::from_secs(60))
        .await;

    let out = wine
        .run(&["service", "install"], &env, Duration::from_secs(60))
        .await;
    let text = wine::text(&out);
    assert!(out.status.success(), "service install failed:\n{text}");
    let registry = wine
        .wine(&[
            "reg.exe",
            "query",
            r"HKLM\System\CurrentControlSet\Services\perry-ship-windows",
        ])
        .output()
        .await
        .unwrap();
    let registry = wine::text(&registry);
    assert!(
        registry.contains("perry-ship-windows.exe service run"),
        "registered command line:\n{registry}"
    );
    assert!(
        registry.contains("Start    REG_DWORD    0x2"),
        "automatic start:\n{registry}"
    );

    let started = sc(&["start", "perry-ship-windows"]).await;
    assert!(started.status.success(), "{}", wine::text(&started));
    let running = wine::text(&sc(&["query", "perry-ship-windows"]).await);
    assert!(running.contains("RUNNING"), "{running}");

    let stop = sc(&["stop", "perry-ship-windows"]).await;
    assert!(stop.status.success(), "{}", wine::text(&stop));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let query = wine::text(&sc(&["query", "perry-ship-windows"]).await);
        if query.contains("STOPPED") {
            assert!(query.contains("WIN32_EXIT_CODE    : 0"), "{query}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not stop:\n{query}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let out = wine
        .run(&["service", "uninstall"], &[], Duration::from_secs(60))
        .await;
    assert!(out.status.success(), "{}", wine::text(&out));
    let query = sc(&["query", "perry-ship-windows"]).await;
    assert!(
        !wine::text(&query).contains("SERVICE_NAME"),
        "still registered after uninstall:\n{}",
        wine::text(&query)
    );
    wine.wineserver(&["-k"]);
}

#[test]
fn service_is_windows_only_on_other_hosts() {
    if cfg!(windows) {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perry-ship-windows"))
        .args(["service", "install"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Windows-only"), "{text}");
}
