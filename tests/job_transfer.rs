//! Streamed transfers against a small local HTTP server (axum on 127.0.0.1) that checks the
//! headers, decodes and hashes upload bodies, and serves base64 tarballs.
//!
//! The 512 MiB round trip also checks that the test process's peak memory (VmHWM) grows by
//! less than 64 MiB, i.e. neither side holds a whole body.

use perry_test_support::job_support::transfer_server;
use perry_test_support::measure;

use axum::routing::get;
use axum::Router;
use measure::{sha256_file, status_kib};
use perry_ship_windows::hub::protocol::ArtifactInfo;
use perry_ship_windows::hub::transfer::{
    download_tarball, http_client, upload_artifact, RetryPolicy, TransferError,
};
use perry_ship_windows::pipeline::Artifact;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use transfer_server::{serve, Pattern, TOKEN};

fn artifact_at(path: PathBuf) -> Artifact {
    Artifact {
        path,
        name: "MyApp-1.2.0-Setup.exe".into(),
        target: "windows".into(),
    }
}

/// Uploads with the test token, no cancel and no progress callback.
async fn upload_to(
    url: &str,
    artifact: &Artifact,
    limit: u64,
) -> Result<ArtifactInfo, TransferError> {
    let cancel = CancellationToken::new();
    upload_artifact(
        &http_client(),
        url,
        TOKEN,
        artifact,
        limit,
        &cancel,
        &|_, _| {},
        &RetryPolicy::default(),
    )
    .await
}

/// Downloads with `token`, no cancel and no progress callback.
async fn download_to(url: &str, token: &str, dest: &Path) -> Result<u64, TransferError> {
    let cancel = CancellationToken::new();
    let policy = RetryPolicy::default();
    download_tarball(&http_client(), url, token, dest, &cancel, &|_| {}, &policy).await
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        first_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_of_512_mib_keeps_memory_flat() {
    const SIZE: u64 = 512 << 20;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("artifact.bin");
    let pattern = Pattern::new();
    let expected_sha = pattern.write_file(&source, SIZE);
    let (base, hub) = serve(SIZE).await;
    let client = http_client();
    let cancel = CancellationToken::new();
    let before = status_kib("VmHWM");

    let last_progress = AtomicU64::new(0);
    let uploaded = upload_artifact(
        &client,
        &format!("{base}/artifact/ok?token=secret-query"),
        TOKEN,
        &artifact_at(source.clone()),
        1 << 30,
        &cancel,
        &|sent, total| {
            assert_eq!(total, SIZE);
            last_progress.store(sent, Ordering::SeqCst);
        },
        &RetryPolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!(uploaded.size, SIZE);
    assert_eq!(uploaded.sha256, expected_sha);
    assert_eq!(uploaded.name, "MyApp-1.2.0-Setup.exe");
    assert_eq!(last_progress.load(Ordering::SeqCst), SIZE);
    let seen = hub.uploads.lock().unwrap()[0].clone();
    assert_eq!(
        seen.sha_actual, expected_sha,
        "the server decoded different bytes"
    );
    assert_eq!(seen.sha_header, expected_sha);
    assert_eq!(seen.size, SIZE);
    assert_eq!(seen.name, "MyApp-1.2.0-Setup.exe");
    assert_eq!(seen.target, "windows");
    assert_eq!(seen.content_type, "text/plain");
    assert_eq!(seen.content_length, Some(SIZE.div_ceil(3) * 4));
    assert_eq!(seen.text_len, SIZE.div_ceil(3) * 4);
    assert!(
        !seen.chunked,
        "the body must be sent with Content-Length, not chunked"
    );
    assert!(
        seen.user_agent.starts_with("perry-ship-windows/"),
        "{}",
        seen.user_agent
    );

    let dest = dir.path().join("project.tar.gz");
    let last_progress = AtomicU64::new(0);
    let calls = AtomicU64::new(0);
    let written = download_tarball(
        &client,
        &format!("{base}/tarball/ok"),
        TOKEN,
        &dest,
        &cancel,
        &|n| {
            calls.fetch_add(1, Ordering::SeqCst);
            last_progress.store(n, Ordering::SeqCst)
        },
        &RetryPolicy::default(),
    )
    .await
    .unwrap();
    assert!(
        calls.load(Ordering::SeqCst) > 10,
        "progress is reported while downloading"
    );
    assert_eq!(written, SIZE);
    assert_eq!(last_progress.load(Ordering::SeqCst), SIZE);
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), SIZE);
    assert_eq!(sha256_file(&dest), pattern.sha256(SIZE));

    let growth_mib = (status_kib("VmHWM") - before) / 1024;
    println!("peak memory growth over a 512 MiB upload + download: {growth_mib} MiB");
    assert!(growth_mib < 64, "peak memory grew by {growth_mib} MiB");
}

#[tokio::test]
async fn upload_retries_503_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.bin");
    let sha = Pattern::new().write_file(&file, 1_000_001);
    let (base, hub) = serve(0).await;
    let result = upload_to(
        &format!("{base}/artifact/flaky"),
        &artifact_at(file),
        300 << 20,
    )
    .await
    .unwrap();
    assert_eq!(result.sha256, sha);
    assert_eq!(
        hub.requests.load(Ordering::SeqCst),
        3,
        "two 503s, then the accepted try"
    );
    let seen = hub.uploads.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].sha_actual, sha);
}

#[tokio::test]
async fn upload_409_fails_without_retry() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.bin");
    Pattern::new().write_file(&file, 10_000);
    let (base, hub) = serve(0).await;
    let err = upload_to(
        &format!("{base}/artifact/conflict?sig=abc"),
        &artifact_at(file),
        300 << 20,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TransferError::Status { status: 409, ref url_path } if url_path == "/artifact/conflict"),
        "{err:?}"
    );
    assert_eq!(hub.requests.load(Ordering::SeqCst), 1);
    let message = err.to_string();
    assert!(
        !message.contains(TOKEN) && !message.contains("sig=abc"),
        "{message}"
    );
}

#[tokio::test]
async fn too_large_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    Pattern::new().write_file(&file, (2 << 20) + 1);
    let (base, hub) = serve(0).await;
    let err = upload_to(&format!("{base}/artifact/ok"), &artifact_at(file), 2 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransferError::TooLarge { size, limit } if size == (2 << 20) + 1 && limit == 2 << 20),
        "{err:?}"
    );
    assert_eq!(hub.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn non_ascii_artifact_name_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.bin");
    Pattern::new().write_file(&file, 10);
    let (base, hub) = serve(0).await;
    let mut artifact = artifact_at(file);
    artifact.name = "Café\n.exe".into();
    let err = upload_to(&format!("{base}/artifact/ok"), &artifact, 1 << 20)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ASCII"), "{err}");
    assert_eq!(hub.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn download_403_is_a_status_error_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("project.tar.gz");
    let (base, hub) = serve(1000).await;
    let err = download_to(&format!("{base}/tarball/forbidden"), TOKEN, &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransferError::Status { status: 403, .. }),
        "{err:?}"
    );
    assert!(!dest.exists());
    assert_eq!(
        hub.requests.load(Ordering::SeqCst),
        1,
        "4xx is never retried"
    );

    // A wrong token is refused the same way, and the token is not in the message.
    let err = download_to(&format!("{base}/tarball/ok"), "wrong-token-value", &dest)
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("wrong-token-value"));
    assert!(!dest.exists());
}

#[tokio::test]
async fn download_cut_halfway_fails_and_removes_the_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("project.tar.gz");
    let (base, hub) = serve(8 << 20).await;
    let max_seen = AtomicU64::new(0);
    let policy = fast_retries();
    let err = download_tarball(
        &http_client(),
        &format!("{base}/tarball/cut"),
        TOKEN,
        &dest,
        &CancellationToken::new(),
        &|n| {
            max_seen.fetch_max(n, Ordering::SeqCst);
        },
        &policy,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::Network(_)), "{err:?}");
    assert!(
        max_seen.load(Ordering::SeqCst) > 0,
        "part of the body was written before the cut"
    );
    assert!(!dest.exists(), "the partial file must be removed");
    assert_eq!(
        hub.requests.load(Ordering::SeqCst),
        policy.attempts,
        "a cut connection is retried"
    );
}

#[tokio::test]
async fn download_of_invalid_base64_fails_cleanly() {
    let app = Router::new().route("/t", get(|| async { "this is <html> not base64" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("p.tar.gz");
    let err = download_to(&format!("http://{addr}/t"), TOKEN, &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Decode(_)), "{err:?}");
    assert!(!dest.exists());
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported_without_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("p.tar.gz");
    let started = std::time::Instant::now();
    let err = download_tarball(
        &http_client(),
        &format!("http://{addr}/tarball?token=query-secret"),
        TOKEN,
        &dest,
        &CancellationToken::new(),
        &|_| {},
        &fast_retries(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::Network(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        !message.contains(TOKEN) && !message.contains("query-secret"),
        "{message}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "retries wait between tries"
    );
    assert!(!dest.exists());
}

#[tokio::test]
async fn cancel_stops_a_download() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("p.tar.gz");
    let (base, _hub) = serve(64 << 20).await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let err = download_tarball(
        &http_client(),
        &format!("{base}/tarball/ok"),
        TOKEN,
        &dest,
        &cancel,
        &move |n| {
            if n > 1 << 20 {
                trigger.cancel();
            }
        },
        &RetryPolicy::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::Cancelled), "{err:?}");
    assert!(!dest.exists());
}
