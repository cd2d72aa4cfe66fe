//! One HTTP call to a signing service with the retry rules every method shares: 429 and 5xx
//! and timeouts are retried with exponential backoff (honouring `Retry-After` up to a cap),
//! 401/403 and other 4xx fail at once. Error messages name the step and the HTTP status and
//! never carry a URL (the Azure token URL holds the tenant id) or a response body.

use super::{HttpPolicy, SignError};
use reqwest::{RequestBuilder, Response, StatusCode};
use std::time::Duration;

/// Sends the request built by `build` (called again for each attempt).
pub(crate) async fn send(
    method: &'static str,
    step: &str,
    policy: &HttpPolicy,
    attempts: u32,
    build: impl Fn() -> RequestBuilder,
) -> Result<Response, SignError> {
    let attempts = attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= attempts;
        let backoff = policy.initial_backoff * 2u32.saturating_pow(attempt - 1);
        match build().timeout(policy.request_timeout).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(resp),
            Ok(resp) => {
                let status = resp.status();
                let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                if !retryable {
                    let hint = match status.as_u16() {
                        401 => " (credentials rejected)",
                        403 => " (permission denied)",
                        _ => "",
                    };
                    return Err(SignError::new(
                        method,
                        format!("{step}: HTTP {status}{hint}"),
                    ));
                }
                if last {
                    return Err(SignError::new(
                        method,
                        format!("{step}: HTTP {status} after {attempts} attempts"),
                    ));
                }
                let wait = retry_after(&resp)
                    .map(|d| d.min(policy.max_retry_after))
                    .unwrap_or(backoff);
                tracing::warn!(method, step, %status, attempt, "signing service busy; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                let retryable = e.is_timeout() || e.is_connect();
                let what = if e.is_timeout() {
                    format!("timed out after {:?}", policy.request_timeout)
                } else if e.is_connect() {
                    "cannot connect".to_string()
                } else {
                    format!("request failed ({})", strip_url(e))
                };
                if last || !retryable {
                    return Err(SignError::new(
                        method,
                        format!("{step}: {what} ({attempt} attempts)"),
                    ));
                }
                tracing::warn!(
                    method,
                    step,
                    attempt,
                    "signing service unreachable; retrying"
                );
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

fn strip_url(e: reqwest::Error) -> reqwest::Error {
    e.without_url()
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let value = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Reads a JSON body, mapping failures to a clear message without echoing the body.
pub(crate) async fn json_body(
    method: &'static str,
    step: &str,
    resp: Response,
) -> Result<serde_json::Value, SignError> {
    let bytes = resp.bytes().await.map_err(|e| {
        SignError::new(
            method,
            format!("{step}: reading response failed ({})", e.without_url()),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|_| SignError::new(method, format!("{step}: response is not JSON")))
}

/// A string field of a JSON object, or a clear error naming the field.
pub(crate) fn field<'a>(
    method: &'static str,
    step: &str,
    json: &'a serde_json::Value,
    name: &str,
) -> Result<&'a str, SignError> {
    json.get(name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| SignError::new(method, format!("{step}: response has no \"{name}\"")))
}

/// `application/x-www-form-urlencoded` body.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// POSTs a form to an OAuth token endpoint (with the shared retry rules) and returns its
/// `access_token` (zeroed on drop) and `expires_in`, when given.
pub(crate) async fn fetch_access_token(
    method: &'static str,
    step: &str,
    policy: &HttpPolicy,
    http: &reqwest::Client,
    token_url: &str,
    pairs: &[(&str, &str)],
) -> Result<(zeroize::Zeroizing<String>, Option<Duration>), SignError> {
    let body = zeroize::Zeroizing::new(form(pairs));
    let resp = send(method, step, policy, policy.attempts, || {
        http.post(token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.to_string())
    })
    .await?;
    let json = json_body(method, step, resp).await?;
    let token = zeroize::Zeroizing::new(field(method, step, &json, "access_token")?.to_string());
    // Entra ID and Google send a number; some endpoints send it as a string.
    let expires_in = match &json["expires_in"] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Ok((token, expires_in.map(Duration::from_secs)))
}
