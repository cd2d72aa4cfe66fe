//! `perry-ship-windows doctor --credentials FILE`: opens a signing session from a credentials
//! JSON file (the hub's `credentials` object) the way a job does, and reports what a job
//! would check up front: the certificate (subject, thumbprint, dates, chain, warnings) and
//! whether each timestamp server answers. Nothing is signed.

use crate::config::Config;
use crate::job::credentials::Credentials;
use crate::sign::summary::certificate_lines;
use crate::sign::timestamp::TimestampClient;
use crate::sign::{HttpPolicy, SigningSession};
use std::path::Path;

/// Prints the report; returns false when the credentials cannot sign.
pub(crate) async fn check_credentials(config: &Config, file: &Path) -> bool {
    let json = match super::project::read_json_file(file) {
        Ok(j) => j,
        Err(e) => return fail("credentials file", &format!("{e:#}")),
    };
    let creds = match Credentials::from_json(&json) {
        Ok(c) => c,
        Err(e) => return fail("credentials", &e.to_string()),
    };
    let http = crate::hub::transfer::http_client();
    let session = match SigningSession::from_credentials(&creds, &http, &config.signing).await {
        Ok(Some(s)) => s,
        Ok(None) => return fail("credentials", "no signing method: jobs would ship UNSIGNED"),
        Err(e) => return fail("signing certificate", &e.to_string()),
    };
    println!("✓ signing method: {}", session.method().as_str());
    let report = session.certificate();
    let days_left = report.seconds_left(std::time::SystemTime::now()) / 86_400;
    println!("✓ signing certificate: usable for code signing, {days_left} day(s) left");
    for line in certificate_lines(report) {
        println!("    {line}");
    }
    match session.timestamp_servers() {
        None => println!("- timestamp: OFF (windows_timestamp_url: none)"),
        Some(urls) => probe_timestamp_servers(&http, &urls).await,
    }
    true
}

/// Asks each server for a timestamp of a dummy signature; the first that answers is enough
/// for a job, so a failing server is reported but is not a failure.
async fn probe_timestamp_servers(http: &reqwest::Client, urls: &[String]) {
    if urls.is_empty() {
        println!("✗ timestamp servers: none configured (every signing would fail)\n    hint: set windows_timestamp_url or PERRY_TIMESTAMP_URLS");
        return;
    }
    let policy = HttpPolicy {
        timestamp_attempts: 1,
        request_timeout: std::time::Duration::from_secs(10),
        ..HttpPolicy::default()
    };
    for url in urls {
        let client = TimestampClient::new(http.clone(), url, policy.clone());
        match client
            .stamp("doctor", b"perry-ship-windows doctor probe")
            .await
        {
            Ok(_) => println!("✓ timestamp server {url}: answers"),
            Err(e) => println!("- timestamp server {url}: {}", e.message),
        }
    }
}

fn fail(what: &str, detail: &str) -> bool {
    println!("✗ {what}: {detail}");
    false
}
