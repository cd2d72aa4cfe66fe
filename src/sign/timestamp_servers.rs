//! Timestamp servers with failover: the job's `windows_timestamp_url` (one or several URLs,
//! comma or whitespace separated, or `none`) followed by the worker's own fallbacks
//! (`PERRY_TIMESTAMP_URLS`). Servers are tried in order; the one that answered last is tried
//! first for the next file. When every server fails, the error lists each one with its error.

use super::timestamp::TimestampClient;
use super::{HttpPolicy, SignError};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Well-known public RFC 3161 servers: the default of `PERRY_TIMESTAMP_URLS`.
pub(crate) const DEFAULT_FALLBACKS: &[&str] = &[
    "http://timestamp.digicert.com",
    "http://timestamp.sectigo.com",
    "http://timestamp.globalsign.com/tsa/r6advanced1",
    "http://timestamp.acs.microsoft.com",
];

/// The value that turns timestamping off on purpose (offline hosts).
pub(crate) const NO_TIMESTAMP: &str = "none";

/// What a `windows_timestamp_url` value asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimestampChoice {
    /// Sign without a timestamp (`none`).
    Off,
    /// These servers first, then the worker's fallbacks.
    Servers(Vec<String>),
}

/// A `windows_timestamp_url` / `PERRY_TIMESTAMP_URLS` value that cannot be used. Names
/// the offending entry's position, never its text (it may hold a credential).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "entry {position} is not an http or https URL with a host (or use \"{NO_TIMESTAMP}\" alone)"
)]
pub(crate) struct TimestampUrlError {
    /// 1-based position of the entry in the list.
    pub(crate) position: usize,
}

/// Parses a list of http(s) URLs separated by commas and/or whitespace, or `none`.
pub(crate) fn parse_url_list(text: &str) -> Result<TimestampChoice, TimestampUrlError> {
    let entries: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .collect();
    if entries.len() == 1 && entries[0].eq_ignore_ascii_case(NO_TIMESTAMP) {
        return Ok(TimestampChoice::Off);
    }
    let mut urls: Vec<String> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let ok = url::Url::parse(entry).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        if !ok {
            return Err(TimestampUrlError { position: i + 1 });
        }
        if !urls.iter().any(|u| u == entry) {
            urls.push(entry.to_string());
        }
    }
    Ok(TimestampChoice::Servers(urls))
}

/// A URL as it may appear in a log line or error: without user info, query or fragment.
pub(crate) fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

/// The ordered server list of one job: the job's own servers, then the fallbacks not
/// already listed.
pub(crate) fn job_servers(job: &[String], fallbacks: &[String]) -> Vec<String> {
    let mut all: Vec<String> = job.to_vec();
    for f in fallbacks {
        if !all.contains(f) {
            all.push(f.clone());
        }
    }
    all
}

/// Timestamps with failover over an ordered list of servers.
pub(crate) struct TimestampServers {
    clients: Vec<(String, TimestampClient)>,
    /// Index of the server that answered last; tried first.
    preferred: AtomicUsize,
    /// Servers that issued at least one token in this session (for the summary).
    used: Mutex<BTreeSet<String>>,
}

impl TimestampServers {
    /// Clients for the RFC 3161 servers `urls`, tried in order under `policy`.
    pub(crate) fn new(http: &reqwest::Client, urls: &[String], policy: &HttpPolicy) -> Self {
        TimestampServers {
            clients: urls
                .iter()
                .map(|u| {
                    (
                        u.clone(),
                        TimestampClient::new(http.clone(), u, policy.clone()),
                    )
                })
                .collect(),
            preferred: AtomicUsize::new(0),
            used: Mutex::default(),
        }
    }

    /// The servers in the order they are tried, for the job log.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.clients.iter().map(|(u, _)| display_url(u)).collect()
    }

    /// Servers that issued a token so far.
    pub(crate) fn used(&self) -> Vec<String> {
        self.used.lock().unwrap().iter().cloned().collect()
    }

    /// Timestamps `signature`, trying each server in turn from the preferred one.
    pub(crate) async fn stamp(
        &self,
        method: &'static str,
        signature: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        if self.clients.is_empty() {
            return Err(SignError::new(
                method,
                "timestamp: no timestamp server is configured (set windows_timestamp_url or PERRY_TIMESTAMP_URLS, or \"none\" to sign without)",
            ));
        }
        let n = self.clients.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for k in 0..n {
            let index = (first + k) % n;
            let (url, client) = &self.clients[index];
            match client.stamp(method, signature).await {
                Ok(token) => {
                    if k > 0 {
                        tracing::warn!(server = %display_url(url), "timestamp server failover");
                    }
                    self.preferred.store(index, Ordering::Relaxed);
                    self.used.lock().unwrap().insert(display_url(url));
                    return Ok(token);
                }
                Err(e) => {
                    tracing::warn!(server = %display_url(url), error = %e.message, "timestamp server failed");
                    failures.push(format!("{} ({})", display_url(url), e.message));
                }
            }
        }
        Err(SignError::new(
            method,
            format!(
                "timestamp: all {n} server(s) failed: {}",
                failures.join("; ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_whitespace_and_dedupe() {
        assert_eq!(
            parse_url_list(" http://a.example/ts, https://b.example\nhttp://a.example/ts ")
                .unwrap(),
            TimestampChoice::Servers(vec![
                "http://a.example/ts".into(),
                "https://b.example".into()
            ])
        );
        assert_eq!(parse_url_list("NONE").unwrap(), TimestampChoice::Off);
        assert!(parse_url_list("http://a.example none").is_err());
        assert!(parse_url_list("file:///etc/passwd").is_err());
        assert!(parse_url_list("http://a.example,ftp://b")
            .unwrap_err()
            .to_string()
            .contains("entry 2"));
    }

    #[test]
    fn fallbacks_follow_the_job_servers_without_repeats() {
        let job = vec!["http://a".to_string(), "http://b".to_string()];
        let fb = vec!["http://b".to_string(), "http://c".to_string()];
        assert_eq!(job_servers(&job, &fb), ["http://a", "http://b", "http://c"]);
    }

    #[test]
    fn displayed_urls_drop_user_info_and_query() {
        assert_eq!(
            display_url("https://user:pw@ts.example/x?key=secret#f"),
            "https://ts.example/x"
        );
    }
}
