//! A small HTTP server standing in for the hub's transfer endpoints in tests (axum on
//! 127.0.0.1): `GET /tarball/{ok|forbidden|cut}` serves generated content as base64 text,
//! `POST /artifact/{ok|flaky|conflict}` checks the headers and decodes and hashes the body
//! as it arrives. Content is generated block by block, never held whole.

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub const TOKEN: &str = "tok-3f1c9a7e5b";
/// Raw bytes per generated block (a multiple of 3, so blocks encode independently).
pub const BLOCK: usize = 768 * 1024;

/// Deterministic content: one pseudo-random block, with the block index stamped into its
/// first bytes so that reordered or repeated blocks change the hash.
pub struct Pattern {
    seed_block: Vec<u8>,
}

impl Default for Pattern {
    fn default() -> Self {
        Self::new()
    }
}

impl Pattern {
    pub fn new() -> Pattern {
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
    pub fn block(&self, index: u64, size: u64) -> Vec<u8> {
        let start = index * BLOCK as u64;
        let len = (size - start).min(BLOCK as u64) as usize;
        let mut block = self.seed_block[..len].to_vec();
        let stamp = index.to_le_bytes();
        let n = stamp.len().min(len);
        block[..n].copy_from_slice(&stamp[..n]);
        block
    }

    pub fn blocks(size: u64) -> u64 {
        size.div_ceil(BLOCK as u64)
    }

    /// Writes the content to `path`; returns its SHA-256.
    pub fn write_file(&self, path: &Path, size: u64) -> String {
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

    pub fn sha256(&self, size: u64) -> String {
        let mut hasher = Sha256::new();
        for i in 0..Pattern::blocks(size) {
            hasher.update(self.block(i, size));
        }
        hex::encode(hasher.finalize())
    }
}

/// What the server saw of one upload.
#[derive(Clone, Debug)]
pub struct SeenUpload {
    pub name: String,
    pub target: String,
    pub content_type: String,
    pub content_length: Option<u64>,
    pub chunked: bool,
    pub sha_header: String,
    pub sha_actual: String,
    pub size: u64,
    pub text_len: u64,
    pub user_agent: String,
}

#[derive(Default)]
pub struct Hub {
    pub pattern: Option<Arc<Pattern>>,
    /// Size of the served tarball content.
    pub tarball_size: AtomicU64,
    pub requests: AtomicU32,
    pub uploads: Mutex<Vec<SeenUpload>>,
}

pub type Shared = Arc<Hub>;

pub fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

pub async fn tarball(
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

pub async fn artifact(
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
pub async fn serve(tarball_size: u64) -> (String, Shared) {
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
