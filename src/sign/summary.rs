//! What a signing session reports: the job-log summary (files signed, method, timestamp
//! servers, certificate) and [`CertificateGauges`], the per-method expiry of the last
//! certificate used, which `/metrics` exports.

use super::certificate::CertificateReport;
use super::SigningSession;
use crate::job::credentials::SigningMethod;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::SystemTime;

/// Lines describing a certificate (for the job log and `doctor --credentials`).
pub(crate) fn certificate_lines(report: &CertificateReport) -> Vec<String> {
    let mut lines = vec![
        format!("certificate subject: {}", report.subject),
        format!("certificate thumbprint: {}", report.thumbprint),
        format!(
            "certificate valid from {} to {}",
            report.not_before, report.not_after
        ),
        format!("certificate chain: {}", report.chain.join(" <- ")),
    ];
    lines.extend(report.warnings.iter().cloned());
    lines
}

/// The signing summary for the job log, once the artifact is done.
pub(crate) fn summary_lines(session: &SigningSession) -> Vec<String> {
    let cert = session.certificate();
    let timestamp = match session.timestamp_servers() {
        None => "none (timestamping turned off by windows_timestamp_url: none)".to_string(),
        Some(_) => {
            let used = session.timestamp_servers_used();
            if used.is_empty() {
                "not used".into()
            } else {
                used.join(", ")
            }
        }
    };
    vec![
        format!(
            "signing summary: {} file(s) signed with {}",
            session.files_signed(),
            session.method().as_str()
        ),
        format!("signing summary: timestamp server {timestamp}"),
        format!("signing summary: certificate {}", cert.subject),
        format!("signing summary: thumbprint {}", cert.thumbprint),
        format!("signing summary: certificate expires {}", cert.not_after),
    ]
}

/// Short label value of a method for metrics.
pub(crate) fn method_label(method: SigningMethod) -> &'static str {
    match method {
        SigningMethod::Pfx => "pfx",
        SigningMethod::Azure => "azure",
        SigningMethod::Kms => "kms",
    }
}

/// The last certificate each signing method used: thumbprint and `notAfter` (Unix seconds).
#[derive(Default)]
pub struct CertificateGauges {
    last: Mutex<BTreeMap<&'static str, (String, u64)>>,
}

impl CertificateGauges {
    pub(crate) fn record(&self, method: SigningMethod, report: &CertificateReport) {
        self.last.lock().unwrap().insert(
            method_label(method),
            (report.thumbprint.clone(), report.not_after_unix),
        );
    }

    /// `(method, thumbprint, notAfter)` of each method used so far.
    pub(crate) fn snapshot(&self) -> Vec<(&'static str, String, u64)> {
        self.last
            .lock()
            .unwrap()
            .iter()
            .map(|(m, (t, e))| (*m, t.clone(), *e))
            .collect()
    }

    /// Prometheus text: the expiry as a timestamp and as seconds left at `now`.
    pub(crate) fn prometheus_text(&self, now: SystemTime) -> String {
        let now = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let mut out = String::new();
        let snapshot = self.snapshot();
        let _ = writeln!(out, "# HELP perry_signing_cert_expiry_timestamp_seconds notAfter (Unix time) of the last certificate used, per signing method\n# TYPE perry_signing_cert_expiry_timestamp_seconds gauge");
        for (method, thumb, not_after) in &snapshot {
            let _ = writeln!(out, "perry_signing_cert_expiry_timestamp_seconds{{method=\"{method}\",thumbprint=\"{thumb}\"}} {not_after}");
        }
        let _ = writeln!(out, "# HELP perry_signing_cert_expiry_seconds Seconds until the last certificate used expires (negative: expired), per signing method\n# TYPE perry_signing_cert_expiry_seconds gauge");
        for (method, thumb, not_after) in &snapshot {
            let left = *not_after as i64 - now;
            let _ = writeln!(
                out,
                "perry_signing_cert_expiry_seconds{{method=\"{method}\",thumbprint=\"{thumb}\"}} {left}"
            );
        }
        out
    }
}
