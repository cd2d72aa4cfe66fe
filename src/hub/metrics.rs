//! Worker-wide counters shared by the link, the scheduler and the jobs, read by the status
//! server (`/healthz`, `/metrics`). Plain atomics and small maps: cheap to update anywhere.

use crate::error::ErrorCode;
use crate::events::Stage;
use crate::sign::summary::CertificateGauges;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// State of the hub link as shown by `/healthz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Opening the WebSocket and sending `worker_hello` (the starting state).
    Connecting = 0,
    /// The link is up.
    Connected = 1,
    /// The link dropped; waiting for the backoff window before reconnecting.
    WaitingToReconnect = 2,
    /// The hub refused the worker's secret; waiting before trying again.
    AuthFailed = 3,
    /// The link was closed on purpose (stop, pause, idle action or job limit).
    Closed = 4,
}

impl LinkState {
    /// The state's name in `/healthz`, e.g. `waiting_to_reconnect`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::WaitingToReconnect => "waiting_to_reconnect",
            LinkState::AuthFailed => "auth_failed",
            LinkState::Closed => "closed",
        }
    }
    fn from_u8(v: u8) -> Self {
        match v {
            1 => LinkState::Connected,
            2 => LinkState::WaitingToReconnect,
            3 => LinkState::AuthFailed,
            4 => LinkState::Closed,
            _ => LinkState::Connecting,
        }
    }
}

/// How a job ended, for `perry_jobs_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// The job completed and its artifact was delivered.
    Success,
    /// The job failed with an error code.
    Failure,
    /// The job was cancelled (by the hub or by shutdown).
    Cancelled,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Cancelled => "cancelled",
        }
    }
}

#[derive(Default)]
struct StageTotals {
    seconds: f64,
    count: u64,
}

/// Counters of one worker process, served as `/healthz` and `/metrics`.
pub struct WorkerMetrics {
    link_state: AtomicU8,
    /// Concurrent job slots (`PERRY_MAX_CONCURRENT_BUILDS`).
    pub(crate) slots_total: usize,
    /// Jobs running now.
    pub(crate) running: AtomicUsize,
    /// Assigned jobs waiting for a slot.
    pub(crate) queued: AtomicUsize,
    /// Hub reconnect attempts since start.
    pub(crate) reconnects: AtomicU64,
    /// Artifact bytes uploaded since start.
    pub(crate) upload_bytes: AtomicU64,
    /// Job log lines not forwarded (line cap or back-pressure) since start.
    pub(crate) log_lines_dropped: AtomicU64,
    outcomes: Mutex<BTreeMap<Outcome, u64>>,
    error_codes: Mutex<BTreeMap<&'static str, u64>>,
    stages: Mutex<BTreeMap<&'static str, StageTotals>>,
    /// Expiry of the last signing certificate per method; jobs record into it.
    pub certificates: Arc<CertificateGauges>,
}

impl WorkerMetrics {
    /// Zeroed counters for a worker with `slots_total` slots; the link starts as connecting.
    pub fn new(slots_total: usize) -> Self {
        WorkerMetrics {
            link_state: AtomicU8::new(LinkState::Connecting as u8),
            slots_total,
            running: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            reconnects: AtomicU64::new(0),
            upload_bytes: AtomicU64::new(0),
            log_lines_dropped: AtomicU64::new(0),
            outcomes: Mutex::default(),
            error_codes: Mutex::default(),
            stages: Mutex::default(),
            certificates: Arc::default(),
        }
    }

    /// Records the hub link's new state.
    pub(crate) fn set_link_state(&self, state: LinkState) {
        self.link_state.store(state as u8, Ordering::Relaxed);
    }
    /// The hub link's current state.
    pub(crate) fn link_state(&self) -> LinkState {
        LinkState::from_u8(self.link_state.load(Ordering::Relaxed))
    }

    /// Counts one ended job, and its error code when it has one.
    pub(crate) fn record_outcome(&self, outcome: Outcome, code: Option<ErrorCode>) {
        *self.outcomes.lock().unwrap().entry(outcome).or_default() += 1;
        if let Some(code) = code {
            *self
                .error_codes
                .lock()
                .unwrap()
                .entry(code.as_str())
                .or_default() += 1;
        }
    }

    /// Adds one run of `stage` that took `took` to the stage totals.
    pub(crate) fn record_stage(&self, stage: Stage, took: Duration) {
        let mut stages = self.stages.lock().unwrap();
        let t = stages.entry(stage.as_str()).or_default();
        t.seconds += took.as_secs_f64();
        t.count += 1;
    }

    /// `/healthz` body.
    pub(crate) fn health_json(&self) -> serde_json::Value {
        let running = self.running.load(Ordering::Relaxed);
        serde_json::json!({
            "status": "ok",
            "link": self.link_state().as_str(),
            "slots": {
                "total": self.slots_total,
                "busy": running,
                "free": self.slots_total.saturating_sub(running),
            },
            "queued": self.queued.load(Ordering::Relaxed),
            "reconnects": self.reconnects.load(Ordering::Relaxed),
        })
    }

    /// `/metrics` body in the Prometheus text format.
    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let connected = u64::from(self.link_state() == LinkState::Connected);
        gauge(
            &mut out,
            "perry_link_connected",
            "1 when the hub link is up",
            connected,
        );
        gauge(
            &mut out,
            "perry_slots_total",
            "Concurrent job slots",
            self.slots_total as u64,
        );
        gauge(
            &mut out,
            "perry_jobs_running",
            "Jobs running now",
            self.running.load(Ordering::Relaxed) as u64,
        );
        gauge(
            &mut out,
            "perry_queue_length",
            "Assigned jobs waiting for a slot",
            self.queued.load(Ordering::Relaxed) as u64,
        );
        counter(
            &mut out,
            "perry_reconnects_total",
            "Hub reconnect attempts",
            self.reconnects.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "perry_upload_bytes_total",
            "Artifact bytes uploaded",
            self.upload_bytes.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "perry_log_lines_dropped_total",
            "Job log lines not forwarded (cap or back-pressure)",
            self.log_lines_dropped.load(Ordering::Relaxed),
        );

        let _ = writeln!(
            out,
            "# HELP perry_jobs_total Finished jobs by outcome\n# TYPE perry_jobs_total counter"
        );
        let outcomes = self.outcomes.lock().unwrap();
        for o in [Outcome::Success, Outcome::Failure, Outcome::Cancelled] {
            let n = outcomes.get(&o).copied().unwrap_or(0);
            let _ = writeln!(out, "perry_jobs_total{{outcome=\"{}\"}} {n}", o.as_str());
        }
        drop(outcomes);

        let _ = writeln!(out, "# HELP perry_job_errors_total Failed jobs by error code\n# TYPE perry_job_errors_total counter");
        for (code, n) in self.error_codes.lock().unwrap().iter() {
            let _ = writeln!(out, "perry_job_errors_total{{code=\"{code}\"}} {n}");
        }

        let _ = writeln!(out, "# HELP perry_stage_duration_seconds Time spent per job stage\n# TYPE perry_stage_duration_seconds summary");
        for (stage, t) in self.stages.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "perry_stage_duration_seconds_sum{{stage=\"{stage}\"}} {:.3}",
                t.seconds
            );
            let _ = writeln!(
                out,
                "perry_stage_duration_seconds_count{{stage=\"{stage}\"}} {}",
                t.count
            );
        }
        out.push_str(
            &self
                .certificates
                .prometheus_text(std::time::SystemTime::now()),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_lists_outcomes_codes_and_stages() {
        let m = WorkerMetrics::new(2);
        m.record_outcome(Outcome::Success, None);
        m.record_outcome(Outcome::Failure, Some(ErrorCode::CompileFailed));
        m.record_stage(Stage::Compiling, Duration::from_millis(1500));
        let text = m.prometheus_text();
        assert!(
            text.contains("perry_jobs_total{outcome=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("perry_job_errors_total{code=\"COMPILE_FAILED\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("perry_stage_duration_seconds_sum{stage=\"compiling\"} 1.500"),
            "{text}"
        );
        assert_eq!(m.health_json()["slots"]["free"], 2);
    }
}
