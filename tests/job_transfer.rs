//! Streamed transfers against a small local HTTP server (axum on 127.0.0.1) that checks the
//! headers, decodes and hashes upload bodies, and serves base64 tarballs.
//!
//! The 512 MiB round trip also checks that the test process's peak memory (VmHWM) grows by
//! less than 64 MiB, i.e. neither side holds a whole body.

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::StreamExt;
use perry_ship_windows::job::transfer::{
    download_tarball, download_tarball_with, http_client, upload_artifact, RetryPolicy,
    TransferError,
};
use perry_ship_windows::pipeline::Artifact;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "tok-3f1c9a7e5b";
/// Raw bytes per generated block (a multiple of 3, so blocks encode independently).
const BLOCK: usize = 768 * 1024;

/// Deterministic content: one pseudo-random block, with the block index stamped into its
/// first bytes so that reordered or repeated blocks change the hash.
struct Pattern {
    seed_block: Vec<u8>,
}

impl Pattern {
    fn new() -> Pattern {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let seed_block = (0..BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Pattern { seed_block }
    }

    /// Block `index` of a `size`-byte content (the last one may be short).
    fn block(&self, index: u64, size: u64) -> Vec<u8> {
        let start = index * BLOCK as u64;
        let len = (size - start).min(BLOCK as u64) as usize;
        let mut block = self.seed_block[..len].to_vec();
        let stamp = index.to_le_bytes();
        let n = stamp.len().min(len);
        block[..n].copy_from_slice(&stamp[..n]);
        block
    }

    fn blocks(size: u64) -> u64 {
        size.div_ceil(BLOCK as u64)
    }

    /// Writes the content to `path`; returns its SHA-256.
    fn write_file(&self, path: &Path, size: u64) -> String {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut hasher = Sha256::new();
        for i in 0..Pattern::blocks(size) {
            let block = self.block(i, size);
            hasher.update(&block);
            file.write_all(&block).unwrap();
        }
        file.flush().unwrap();
        hex::encode(hasher.finalize())
    }

    fn sha256(&self, size: u64) -> String {
        let mut hasher = Sha256::new();
        for i in 0..Pattern::blocks(size) {
            hasher.update(self.block(i, size));
        }
        hex::encode(hasher.finalize())
    }
}

/// What the server saw of one upload.
#[derive(Clone, Debug)]
struct SeenUpload {
    name: String,
    target: String,
    content_type: String,
    content_length: Option<u64>,
    chunked: bool,
    sha_header: String,
    sha_actual: String,
    size: u64,
    text_len: u64,
    user_agent: String,
}

#[derive(Default)]
struct Hub {
    pattern: Option<Arc<Pattern>>,
    /// Size of the served tarball content.
    tarball_size: AtomicU64,
    requests: AtomicU32,
    uploads: Mutex<Vec<SeenUpload>>,
}

type Shared = Arc<Hub>;

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn tarball(
    State(hub): State<Shared>,
    UrlPath(mode): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    hub.requests.fetch_add(1, Ordering::SeqCst);
    if !authorised(&headers) || mode == "forbidden" {
        return (StatusCode::FORBIDDEN, "token unknown").into_response();
    }
    let pattern = hub.pattern.clone().unwrap();
    let size = hub.tarball_size.load(Ordering::SeqCst);
    let blocks = Pattern::blocks(size);
    let cut_after = if mode == "cut" { blocks / 2 } else { u64::MAX };
    // Each block's base64 is split by a newline at an odd offset (whitespace inside a
    // quantum), and the body ends with whitespace, as the hub may send it.
    let stream = futures_util::stream::iter(0..=blocks).map(move |i| {
        if i >= cut_after {
            return Err(std::io::Error::other("connection cut by the test"));
        }
        if i == blocks {
            return Ok(bytes::Bytes::from_static(b"\n \n"));
        }
        let text = STANDARD.encode(pattern.block(i, size));
        let split = (text.len() / 2) | 1;
        Ok(bytes::Bytes::from(format!(
            "{}\n{}\r\n",
            &text[..split],
            &text[split..]
        )))
    });
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn artifact(
    State(hub): State<Shared>,
    UrlPath(mode): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let n = hub.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if !authorised(&headers) {
        return (StatusCode::FORBIDDEN, "bad token").into_response();
    }
    match mode.as_str() {
        "conflict" => return (StatusCode::CONFLICT, "job not running").into_response(),
        "flaky" if n <= 2 => return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        _ => {}
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    // Decode the base64 text as it arrives and hash the bytes.
    let mut pending: Vec<u8> = Vec::new();
    let mut decoded = vec![0u8; 0];
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut text_len = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return (StatusCode::BAD_REQUEST, "body error").into_response();
        };
        text_len += chunk.len() as u64;
        if [b' ', b'\n', b'\r', b'\t']
            .iter()
            .any(|w| chunk.contains(w))
        {
            pending.extend(chunk.iter().filter(|b| !b.is_ascii_whitespace()));
        } else {
            pending.extend_from_slice(&chunk);
        }
        let whole = pending.len() / 4 * 4;
        if decoded.len() < whole / 4 * 3 {
            decoded = vec![0u8; whole / 4 * 3];
        }
        let Ok(n) = STANDARD.decode_slice(&pending[..whole], &mut decoded) else {
            return (StatusCode::BAD_REQUEST, "not base64").into_response();
        };
        hasher.update(&decoded[..n]);
        size += n as u64;
        pending.drain(..whole);
    }
    if !pending.is_empty() || text_len == 0 {
        return (StatusCode::BAD_REQUEST, "truncated or empty body").into_response();
    }
    let seen = SeenUpload {
        name: header("x-artifact-name"),
        target: header("x-artifact-target"),
        content_type: header("content-type"),
        content_length: header("content-length").parse().ok(),
        chunked: headers.contains_key("transfer-encoding"),
        sha_header: header("x-artifact-sha256"),
        sha_actual: hex::encode(hasher.finalize()),
        size,
        text_len,
        user_agent: header("user-agent"),
    };
    hub.uploads.lock().unwrap().push(seen);
    axum::Json(
        serde_json::json!({"token": "dl", "download_url": "http://127.0.0.1/dl", "size": size}),
    )
    .into_response()
}

/// Starts the server; returns its base URL and state.
async fn serve(tarball_size: u64) -> (String, Shared) {
    let hub = Arc::new(Hub {
        pattern: Some(Arc::new(Pattern::new())),
        ..Hub::default()
    });
    hub.tarball_size.store(tarball_size, Ordering::SeqCst);
    let app = Router::new()
        .route("/tarball/{mode}", get(tarball))
        .route("/artifact/{mode}", post(artifact))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hub)
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn artifact_at(path: PathBuf) -> Artifact {
    Artifact {
        path,
        name: "MyApp-1.2.0-Setup.exe".into(),
        target: "windows".into(),
    }
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
    let before = vm_hwm_kib();

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

    let growth_mib = (vm_hwm_kib() - before) / 1024;
    println!("peak memory growth over a 512 MiB upload + download: {growth_mib} MiB");
    assert!(growth_mib < 64, "peak memory grew by {growth_mib} MiB");
}

fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

#[tokio::test]
async fn upload_retries_503_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.bin");
    let sha = Pattern::new().write_file(&file, 1_000_001);
    let (base, hub) = serve(0).await;
    let result = upload_artifact(
        &http_client(),
        &format!("{base}/artifact/flaky"),
        TOKEN,
        &artifact_at(file),
        300 << 20,
        &CancellationToken::new(),
        &|_, _| {},
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
    let err = upload_artifact(
        &http_client(),
        &format!("{base}/artifact/conflict?sig=abc"),
        TOKEN,
        &artifact_at(file),
        300 << 20,
        &CancellationToken::new(),
        &|_, _| {},
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
    let err = upload_artifact(
        &http_client(),
        &format!("{base}/artifact/ok"),
        TOKEN,
        &artifact_at(file),
        2 << 20,
        &CancellationToken::new(),
        &|_, _| {},
    )
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
    let err = upload_artifact(
        &http_client(),
        &format!("{base}/artifact/ok"),
        TOKEN,
        &artifact,
        1 << 20,
        &CancellationToken::new(),
        &|_, _| {},
    )
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
    let err = download_tarball(
        &http_client(),
        &format!("{base}/tarball/forbidden"),
        TOKEN,
        &dest,
        &CancellationToken::new(),
        &|_| {},
    )
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
    let err = download_tarball(
        &http_client(),
        &format!("{base}/tarball/ok"),
        "wrong-token-value",
        &dest,
        &CancellationToken::new(),
        &|_| {},
    )
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
    let err = download_tarball_with(
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
    let err = download_tarball(
        &http_client(),
        &format!("http://{addr}/t"),
        TOKEN,
        &dest,
        &CancellationToken::new(),
        &|_| {},
    )
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
    let err = download_tarball_with(
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
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TransferError::Cancelled), "{err:?}");
    assert!(!dest.exists());
}
