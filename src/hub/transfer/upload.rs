//! The artifact upload: size and SHA-256 from a first streamed pass, then a base64 body
//! encoded chunk by chunk from the file, re-opened for each try.

use super::base64_stream::{self, encoded_len};
use super::{
    network_failure, status_failure, timed_out, with_retries, Failure, RetryPolicy, TransferError,
};
use crate::hub::protocol::ArtifactInfo;
use crate::pipeline::Artifact;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// Uploads an artifact. Refuses files over `max_bytes` before sending anything.
/// `progress` gets (raw bytes sent, total raw bytes).
/// `policy` says how often and how long to retry.
#[allow(clippy::too_many_arguments)]
pub async fn upload_artifact(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    artifact: &Artifact,
    max_bytes: u64,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
    policy: &RetryPolicy,
) -> Result<ArtifactInfo, TransferError> {
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
    Ok(ArtifactInfo {
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
