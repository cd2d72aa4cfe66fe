//! The project tarball download: base64 text decoded chunk by chunk into the file; the file
//! is removed when the download fails or is cancelled.

use super::base64_stream::StreamDecoder;
use super::{
    network_failure, status_failure, timed_out, with_retries, Failure, RetryPolicy, TransferError,
    MAX_TARBALL_BYTES,
};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Downloads the project tarball to `dest`, decoding base64 as it arrives. Returns the
/// decoded size. `progress` gets the bytes written so far.
/// `policy` says how often and how long to retry.
pub async fn download_tarball(
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
