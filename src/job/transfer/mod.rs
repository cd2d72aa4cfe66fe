//! The job's HTTP transfers (hub-protocol.md §3): the project tarball download and the
//! artifact upload, both base64 bodies handled as streams with bounded memory.
//!
//! - Download: `GET` with `Authorization: Bearer`; the base64 text (whitespace allowed) is
//!   decoded chunk by chunk straight into the destination file.
//! - Upload: a first pass streams the file for its size and SHA-256; too big → `TooLarge`
//!   before any request. Then `POST` with `Content-Type: text/plain`, `x-artifact-name`,
//!   `x-artifact-sha256`, `x-artifact-target` and a base64 body encoded chunk by chunk from
//!   the file, with the exact `Content-Length`.
//! - Retries ([`RetryPolicy`]): connect errors, timeouts, cut connections and 5xx are retried
//!   with exponential backoff and jitter, each retry re-opening the file; 4xx never is.
//! - Timeouts: connect 10 s (client). The 60 s read timeout is enforced here, per read of the
//!   response and as "no upload progress" while sending: reqwest's own `read_timeout` runs
//!   from the request start until the response headers, which would cut any upload that takes
//!   longer than 60 s, so the shared client does not set it.
//! - A failed or cancelled download leaves no file behind. Errors name the URL path only
//!   (never the query) and never contain the token.

mod base64_stream;

pub use base64_stream::{encoded_len, StreamDecoder};

use crate::pipeline::Artifact;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("perry-ship-windows/", env!("CARGO_PKG_VERSION"));
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for response bytes, or for upload progress.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest decoded tarball accepted (the unpacked limit applies separately).
pub const MAX_TARBALL_BYTES: u64 = 4 << 30;

/// Builds the HTTP client; build it once per worker and share clones (they share the
/// connection pool). Connect timeout 10 s, `User-Agent: perry-ship-windows/<version>`; no
/// client-wide read timeout (see the module docs): callers of small API requests should set
/// a per-request `.timeout()`.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(USER_AGENT)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("the HTTP client (rustls) could not be initialised")
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("the artifact is {size} bytes, more than the {limit} bytes the hub accepts")]
    TooLarge { size: u64, limit: u64 },
    #[error("the hub answered HTTP {status} for {url_path}")]
    Status { status: u16, url_path: String },
    #[error("network error: {0}")]
    Network(String),
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the transfer was cancelled")]
    Cancelled,
    #[error("the tarball is not valid base64: {0}")]
    Decode(String),
}

/// What the hub was told about an uploaded artifact (and what `complete` reports).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UploadedArtifact {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// How often, and how patiently, a transfer is retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Tries in all (first one included).
    pub attempts: u32,
    /// Wait before the first retry; doubles each time, up to `max_delay`, with jitter
    /// (each wait is a random value between half and all of it).
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// See [`READ_TIMEOUT`].
    pub read_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            read_timeout: READ_TIMEOUT,
        }
    }
}

impl RetryPolicy {
    fn delay(&self, retry: u32) -> Duration {
        let full = self
            .first_delay
            .saturating_mul(1 << retry.min(16))
            .min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// One try's failure: worth retrying or not.
enum Failure {
    Transient(TransferError),
    Final(TransferError),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Final(TransferError::Io(e))
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the tries are used up.
async fn with_retries<T, F, Fut>(
    what: &str,
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    mut attempt: F,
) -> Result<T, TransferError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut retry = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Transient(e)) if retry + 1 >= policy.attempts => return Err(e),
            Err(Failure::Transient(e)) => {
                let wait = policy.delay(retry);
                tracing::warn!(error = %e, retry = retry + 1, wait_ms = wait.as_millis() as u64, "{what} failed, retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(TransferError::Cancelled),
                    _ = tokio::time::sleep(wait) => {}
                }
                retry += 1;
            }
        }
    }
}

/// The path of `url`, for messages (the query may hold a token).
fn url_path(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| "(invalid URL)".into())
}

fn status_failure(status: reqwest::StatusCode, url: &str) -> Failure {
    let e = TransferError::Status {
        status: status.as_u16(),
        url_path: url_path(url),
    };
    if status.is_server_error() {
        Failure::Transient(e)
    } else {
        Failure::Final(e)
    }
}

/// A reqwest error as a message without the URL, with its causes.
fn network_failure(e: reqwest::Error) -> Failure {
    let final_error = e.is_builder() || e.is_redirect();
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if final_error {
        Failure::Final(TransferError::Network(message))
    } else {
        Failure::Transient(TransferError::Network(message))
    }
}

fn timed_out(what: &str, after: Duration) -> Failure {
    Failure::Transient(TransferError::Network(format!(
        "{what}: nothing received for {} s",
        after.as_secs()
    )))
}

/// Downloads the project tarball to `dest`, decoding base64 as it arrives. Returns the
/// decoded size. `progress` gets the bytes written so far.
pub async fn download_tarball(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    dest: &std::path::Path,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, TransferError> {
    download_tarball_with(
        client,
        url,
        token,
        dest,
        cancel,
        progress,
        &RetryPolicy::default(),
    )
    .await
}

/// [`download_tarball`] with an explicit retry policy.
pub async fn download_tarball_with(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    dest: &std::path::Path,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64) + Send + Sync),
    policy: &RetryPolicy,
) -> Result<u64, TransferError> {
    let result = with_retries("tarball download", policy, cancel, || {
        download_once(
            client,
            url,
            token,
            dest,
            cancel,
            progress,
            policy.read_timeout,
        )
    })
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(dest).await;
    }
    result
}

async fn download_once(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    dest: &std::path::Path,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64) + Send + Sync),
    read_timeout: Duration,
) -> Result<u64, Failure> {
    let request = client.get(url).bearer_auth(token).send();
    let response = tokio::select! {
        _ = cancel.cancelled() => return Err(Failure::Final(TransferError::Cancelled)),
        r = tokio::time::timeout(read_timeout, request) => match r {
            Err(_) => return Err(timed_out("waiting for the tarball", read_timeout)),
            Ok(r) => r.map_err(network_failure)?,
        },
    };
    if !response.status().is_success() {
        return Err(status_failure(response.status(), url));
    }
    // Few large writes: each tokio file write is a trip to the blocking thread pool.
    let mut file =
        tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(dest).await?);
    let mut body = response.bytes_stream();
    let mut decoder = StreamDecoder::default();
    let mut written = 0u64;
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return Err(Failure::Final(TransferError::Cancelled)),
            n = tokio::time::timeout(read_timeout, body.next()) => match n {
                Err(_) => return Err(timed_out("reading the tarball", read_timeout)),
                Ok(n) => n,
            },
        };
        let (decoded, last) = match next {
            None => (decoder.finish(), true),
            Some(Err(e)) => return Err(network_failure(e)),
            Some(Ok(chunk)) => (decoder.feed(&chunk), false),
        };
        let decoded = decoded.map_err(|m| Failure::Final(TransferError::Decode(m)))?;
        written += decoded.len() as u64;
        if written > MAX_TARBALL_BYTES {
            return Err(Failure::Final(TransferError::TooLarge {
                size: written,
                limit: MAX_TARBALL_BYTES,
            }));
        }
        file.write_all(decoded).await?;
        progress(written);
        if last {
            break;
        }
    }
    file.flush().await?;
    if written == 0 {
        return Err(Failure::Final(TransferError::Decode(
            "the tarball body is empty".into(),
        )));
    }
    Ok(written)
}

/// Uploads an artifact. Refuses files over `max_bytes` before sending anything.
/// `progress` gets (raw bytes sent, total raw bytes).
pub async fn upload_artifact(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    artifact: &Artifact,
    max_bytes: u64,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<UploadedArtifact, TransferError> {
    upload_artifact_with(
        client,
        url,
        token,
        artifact,
        max_bytes,
        cancel,
        progress,
        &RetryPolicy::default(),
    )
    .await
}

/// [`upload_artifact`] with an explicit retry policy.
#[allow(clippy::too_many_arguments)]
pub async fn upload_artifact_with(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    artifact: &Artifact,
    max_bytes: u64,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
    policy: &RetryPolicy,
) -> Result<UploadedArtifact, TransferError> {
    let header = |name: &str, value: &str| {
        reqwest::header::HeaderValue::from_str(value).map_err(|_| {
            TransferError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the artifact {name} must be printable ASCII for the hub"),
            ))
        })
    };
    let name_header = header("name", &artifact.name)?;
    let target_header = header("target", &artifact.target)?;
    let (size, sha256) = hash_file(&artifact.path, cancel).await?;
    if size > max_bytes {
        return Err(TransferError::TooLarge {
            size,
            limit: max_bytes,
        });
    }
    let sha_header = header("sha256", &sha256)?;
    with_retries("artifact upload", policy, cancel, || {
        let headers = [
            ("x-artifact-name", name_header.clone()),
            ("x-artifact-sha256", sha_header.clone()),
            ("x-artifact-target", target_header.clone()),
        ];
        upload_once(
            client,
            url,
            token,
            &artifact.path,
            size,
            headers,
            cancel,
            progress,
            policy.read_timeout,
        )
    })
    .await?;
    Ok(UploadedArtifact {
        name: artifact.name.clone(),
        size,
        sha256,
    })
}

/// Size and lowercase hex SHA-256 of a file, read in 1 MiB pieces.
async fn hash_file(
    path: &std::path::Path,
    cancel: &CancellationToken,
) -> Result<(u64, String), TransferError> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(TransferError::Cancelled);
        }
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[allow(clippy::too_many_arguments)]
async fn upload_once(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    path: &std::path::Path,
    size: u64,
    headers: [(&'static str, reqwest::header::HeaderValue); 3],
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
    read_timeout: Duration,
) -> Result<(), Failure> {
    let file = tokio::fs::File::open(path).await?;
    let sent = Arc::new(AtomicU64::new(0));
    let file_error = Arc::new(Mutex::new(None));
    let body = reqwest::Body::wrap_stream(encoded_file_stream(
        file,
        size,
        sent.clone(),
        file_error.clone(),
    ));
    let mut request = client
        .post(url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .header(reqwest::header::CONTENT_LENGTH, encoded_len(size))
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let send = request.send();
    tokio::pin!(send);

    // Watch progress while sending: report it, and give up when nothing moves for
    // `read_timeout` (while sending, or while waiting for the answer).
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut last_sent = 0;
    let mut last_change = Instant::now();
    let response = loop {
        tokio::select! {
            _ = cancel.cancelled() => return Err(Failure::Final(TransferError::Cancelled)),
            r = &mut send => break r,
            _ = ticker.tick() => {
                let now_sent = sent.load(Ordering::Relaxed);
                if now_sent != last_sent {
                    last_sent = now_sent;
                    last_change = Instant::now();
                    progress(now_sent, size);
                } else if last_change.elapsed() >= read_timeout {
                    let what = if now_sent < size { "sending the artifact" } else { "waiting for the hub's answer" };
                    return Err(timed_out(what, read_timeout));
                }
            }
        }
    };
    if let Some(e) = file_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(Failure::Final(TransferError::Io(e)));
    }
    let response = response.map_err(network_failure)?;
    if !response.status().is_success() {
        return Err(status_failure(response.status(), url));
    }
    progress(size, size);
    Ok(())
}

/// The file as base64 text in [`base64_stream::ENCODE_CHUNK`]-sized pieces. Counts raw bytes
/// into `sent`; a read error or a size change is stored in `file_error` (and fails the body).
fn encoded_file_stream(
    file: tokio::fs::File,
    size: u64,
    sent: Arc<AtomicU64>,
    file_error: Arc<Mutex<Option<std::io::Error>>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    struct State {
        file: Option<tokio::fs::File>,
        buf: Vec<u8>,
        done: u64,
    }
    let state = State {
        file: Some(file),
        buf: vec![0u8; base64_stream::ENCODE_CHUNK],
        done: 0,
    };
    futures_util::stream::unfold(state, move |mut state| {
        let sent = sent.clone();
        let file_error = file_error.clone();
        async move {
            let file = state.file.as_mut()?;
            let mut filled = 0;
            let failure = loop {
                match file.read(&mut state.buf[filled..]).await {
                    Ok(0) => break None,
                    Ok(n) => {
                        filled += n;
                        if filled == state.buf.len() {
                            break None;
                        }
                    }
                    Err(e) => break Some(e),
                }
            };
            state.done += filled as u64;
            let failure = failure.or_else(|| {
                let changed = state.done > size || (filled < state.buf.len() && state.done != size);
                changed.then(|| {
                    std::io::Error::other("the artifact changed size while it was being uploaded")
                })
            });
            if let Some(e) = failure {
                state.file = None;
                let kind = e.kind();
                *file_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return Some((
                    Err(std::io::Error::new(kind, "reading the artifact failed")),
                    state,
                ));
            }
            if filled == 0 {
                return None;
            }
            sent.store(state.done, Ordering::Relaxed);
            let text = base64_stream::encode_chunk(&state.buf[..filled]);
            Some((Ok(bytes::Bytes::from(text)), state))
        }
    })
}
