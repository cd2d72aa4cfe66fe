//! One hub job end to end: inputs → [`lifecycle::run_job`] (download, extract, pipeline,
//! upload) → `complete`.
//!
//! Any failure becomes `error{code,message,stage}` followed by
//! `complete{success:false, artifacts:[], error}`; nothing is uploaded after a failure. Success is
//! every upload answered 200, then `complete{success:true, artifacts}`. The work folder
//! (named by job id and attempt) is removed however the job ends. The whole job is bounded
//! by `PERRY_JOB_TIMEOUT`; a cancel (hub, drain deadline) stops it promptly; a silenced run
//! (an orphan replaced by a re-assignment, or a run whose hub link was lost) ends without
//! sending anything.

use super::gate::FrameGate;
use super::job_io::{HubProject, HubUpload};
use super::metrics::{Outcome, WorkerMetrics};
use super::protocol::{ArtifactInfo, JobAssign, WorkerFrame};
use super::sink::HubEventSink;
use super::transfer;
use crate::config::Config;
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use crate::job::credentials::{secret_strings, Credentials};
use crate::job::lifecycle::{self, JobRequest, JobTools};
use crate::job::manifest::Manifest;
use crate::job::mask::Masker;
use crate::pipeline::Pipeline;
use crate::sandbox::Runner;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a cancelled job may take to wind down (kill its step, clean up) before its
/// future is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// The scheduler's handle on a running job.
#[derive(Clone, Default)]
pub(crate) struct RunControl {
    cancel: CancellationToken,
    gate: Arc<FrameGate>,
    reason: Arc<Mutex<Option<String>>>,
}

impl RunControl {
    /// Stops the job; it reports `error{message: reason}` + `complete{success:false}`.
    pub(crate) fn cancel(&self, reason: &str) {
        self.reason
            .lock()
            .unwrap()
            .get_or_insert_with(|| reason.to_string());
        self.cancel.cancel();
    }

    /// Stops the job without sending anything more for it (its job id now belongs to a
    /// newer assignment, or the hub dropped it with the link). When this returns, no
    /// further frame of the job can enter the outgoing channel.
    pub(crate) fn silence_and_cancel(&self, reason: &str) {
        self.gate.close();
        self.cancel(reason);
    }

    /// The gate every frame of this run passes (see [`FrameGate`]).
    pub(crate) fn gate(&self) -> &FrameGate {
        &self.gate
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "job cancelled".into())
    }
}

/// What the job needs from the worker.
pub(crate) struct JobEnv {
    pub(crate) config: Arc<Config>,
    pub(crate) pipeline: Arc<dyn Pipeline>,
    pub(crate) runner: Arc<dyn Runner>,
    pub(crate) http: reqwest::Client,
    pub(crate) out: mpsc::Sender<WorkerFrame>,
    pub(crate) metrics: Arc<WorkerMetrics>,
}

impl JobEnv {
    /// What the job lifecycle needs of this worker.
    fn tools(&self) -> JobTools {
        JobTools {
            config: self.config.clone(),
            pipeline: self.pipeline.clone(),
            runner: self.runner.clone(),
            http: self.http.clone(),
            certificates: self.metrics.certificates.clone(),
        }
    }
}

/// How the job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobSummary {
    pub(crate) outcome: Outcome,
    pub(crate) code: Option<ErrorCode>,
}

/// Runs one assignment to its end and reports it.
pub(crate) async fn run_job(
    env: &JobEnv,
    assign: &JobAssign,
    attempt: u32,
    control: RunControl,
) -> JobSummary {
    let started = Instant::now();
    let credentials = Credentials::from_json(&assign.credentials);
    let masker = match &credentials {
        Ok(c) => Masker::new(&c.secret_values),
        // Unparseable credentials: mask every string in them, to be safe.
        Err(_) => Masker::new(&secret_strings(&assign.credentials)),
    };
    let sink = Arc::new(HubEventSink::new(
        &assign.job_id,
        masker,
        env.out.clone(),
        env.config.log_limits,
        env.metrics.clone(),
        control.gate.clone(),
    ));

    // Boxed so that dropping it below really drops the job (and its work folder) now.
    let mut job = Box::pin(run_stages(
        env,
        assign,
        attempt,
        credentials,
        sink.clone(),
        control.cancel.clone(),
    ));
    let timeout = env.config.job_timeout;
    let result = tokio::select! {
        // Cancel first: a job that stopped because it saw the token is reported with the
        // reason it was cancelled for (hub cancel, drain deadline, timeout), not its own
        // generic "job cancelled".
        biased;
        _ = control.cancel.cancelled() => {
            let _ = tokio::time::timeout(CANCEL_GRACE, &mut job).await;
            Err(JobError::new(ErrorCode::InternalError, sink.current_stage(), control.reason()))
        }
        r = &mut job => r,
        _ = tokio::time::sleep(timeout) => {
            control.cancel(&format!("job timed out after {} s (PERRY_JOB_TIMEOUT)", timeout.as_secs()));
            let _ = tokio::time::timeout(CANCEL_GRACE, &mut job).await;
            Err(JobError::new(ErrorCode::InternalError, sink.current_stage(), control.reason()))
        }
    };
    drop(job); // removes the work folder if the job future still held it

    sink.finish().await;
    let duration_secs = started.elapsed().as_secs_f64();
    let frames = sink.frames().clone();
    let summary = match result {
        Ok(artifacts) => {
            sink.send_reliably(frames.complete_success(duration_secs, artifacts))
                .await;
            JobSummary {
                outcome: Outcome::Success,
                code: None,
            }
        }
        Err(err) => {
            tracing::warn!(job_id = %assign.job_id, "job failed: {}", sink.mask(&err.to_string()));
            sink.send_failure(&err, duration_secs).await;
            let outcome = if control.cancel.is_cancelled() {
                Outcome::Cancelled
            } else {
                Outcome::Failure
            };
            JobSummary {
                outcome,
                code: Some(err.code),
            }
        }
    };
    env.metrics.record_outcome(summary.outcome, summary.code);
    summary
}

async fn run_stages(
    env: &JobEnv,
    assign: &JobAssign,
    attempt: u32,
    credentials: Result<Credentials, crate::job::credentials::CredentialsError>,
    sink: Arc<HubEventSink>,
    cancel: CancellationToken,
) -> Result<Vec<ArtifactInfo>, JobError> {
    let config = &env.config;
    let manifest = Manifest::from_json(&assign.manifest)
        .map_err(|e| JobError::internal(None, format!("invalid manifest: {e}")))?;
    let credentials =
        credentials.map_err(|e| JobError::internal(None, format!("invalid credentials: {e}")))?;

    for (field, url) in [
        ("tarball_url", &assign.tarball_url),
        ("artifact_upload_url", &assign.artifact_upload_url),
    ] {
        transfer::check_transfer_url(field, url, &config.transfer_origins).map_err(|e| {
            JobError::internal(Some(Stage::Extracting), format!("refused the job: {e}"))
        })?;
    }
    let request = JobRequest {
        job_id: assign.job_id.clone(),
        attempt,
        owner: config.worker_name.clone(),
        credentials,
        events: sink,
        cancel,
    };
    let input = HubProject {
        http: &env.http,
        assign,
        manifest,
        config,
    };
    let delivery = HubUpload {
        http: &env.http,
        assign,
        config,
        metrics: &env.metrics,
    };
    lifecycle::run_job(&env.tools(), request, &input, &delivery).await
}
