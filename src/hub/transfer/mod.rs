//! The hub's HTTP side (hub-protocol.md §3): the project tarball download and the artifact
//! upload, both base64 bodies handled as streams with bounded memory.
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
mod download;
mod origin;
mod upload;

pub use base64_stream::StreamDecoder;
pub use download::download_tarball;
pub(crate) use origin::{check_transfer_url, hub_origin, parse_origin_list};
pub use upload::upload_artifact;

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `User-Agent` of every request.
pub(crate) const USER_AGENT: &str = concat!("perry-ship-windows/", env!("CARGO_PKG_VERSION"));
/// Longest wait for a TCP/TLS connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for response bytes, or for upload progress.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest decoded tarball accepted (the unpacked limit applies separately).
pub(crate) const MAX_TARBALL_BYTES: u64 = 4 << 30;

/// Redirects followed per request at most.
const MAX_REDIRECTS: usize = 10;

/// Builds the HTTP client; build it once per worker and share clones (they share the
/// connection pool). Connect timeout 10 s, `User-Agent: perry-ship-windows/<version>`; no
/// client-wide read timeout (see the module docs): callers of small API requests should set
/// a per-request `.timeout()`. Redirects are followed only within the request's origin.
pub fn http_client() -> reqwest::Client {
    http_client_allowing(Vec::new())
}

/// [`http_client`] that also follows redirects into the `allowed` origins (the transfer
/// origins of the configuration).
pub(crate) fn http_client_allowing(allowed: Vec<url::Origin>) -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        let first = attempt.previous().first().cloned();
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if first
            .is_some_and(|from| !origin::redirect_allowed(&from, attempt.url(), &allowed))
        {
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(format!("refused a redirect to another origin ({to})"))
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(USER_AGENT)
        .pool_idle_timeout(Duration::from_secs(30))
        .redirect(policy)
        .build()
        .expect("the HTTP client (rustls) could not be initialised")
}

#[derive(Debug, thiserror::Error)]
/// Why a download or upload failed; messages never hold the token or the URL query.
pub enum TransferError {
    /// The artifact exceeds `PERRY_MAX_ARTIFACT_BYTES` (checked before any request).
    #[error("the artifact is {size} bytes, more than the {limit} bytes the hub accepts")]
    TooLarge {
        /// The artifact's size in bytes.
        size: u64,
        /// The largest size accepted.
        limit: u64,
    },
    /// A non-success HTTP status (5xx retried, 4xx not).
    #[error("the hub answered HTTP {status} for {url_path}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The URL's path (never its query).
        url_path: String,
    },
    /// Connection, TLS, timeout or redirect failure.
    #[error("network error: {0}")]
    Network(String),
    /// Reading or writing the local file.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    /// The job was cancelled.
    #[error("the transfer was cancelled")]
    Cancelled,
    /// The downloaded body is not valid base64.
    #[error("the tarball is not valid base64: {0}")]
    Decode(String),
    /// A URL outside the hub's origin and `PERRY_TRANSFER_ORIGINS`.
    #[error(
        "{field} points at {origin}, which is neither the hub's origin nor listed in \
         PERRY_TRANSFER_ORIGINS"
    )]
    ForeignOrigin {
        /// The `job_assign` field that holds the URL.
        field: String,
        /// The URL's origin.
        origin: String,
    },
}

/// How often, and how patiently, a transfer is retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Tries in all (first one included).
    pub attempts: u32,
    /// Wait before the first retry; doubles each time, up to `max_delay`, with jitter
    /// (each wait is a random value between half and all of it).
    pub first_delay: Duration,
    /// Longest wait between tries.
    pub max_delay: Duration,
    /// See `READ_TIMEOUT`.
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
