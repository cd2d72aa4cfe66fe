//! One job end to end: inputs → download → extract → pipeline → upload → `complete`.
//!
//! Any failure becomes `error{code,message,stage}` followed by
//! `complete{success:false, artifacts:[], error}`; nothing is uploaded after a failure. Success is
//! every upload answered 200, then `complete{success:true, artifacts}`. The work folder
//! (named by job id and attempt) is removed however the job ends. The whole job is bounded
//! by `PERRY_JOB_TIMEOUT`; a cancel (hub, drain deadline) stops it promptly; a silenced run
//! (an orphan replaced by a re-assignment, or a run whose hub link was lost) ends without
//! sending anything.

use super::gate::FrameGate;
use super::metrics::{Outcome, WorkerMetrics};
use super::protocol::{ArtifactInfo, JobAssign, WorkerFrame};
use super::sink::HubEventSink;
use crate::config::Config;
use crate::error::{ErrorCode, JobError};
use crate::events::{EventSink, Stage};
use crate::job::credentials::{Credentials, Secret};
use crate::job::manifest::Manifest;
use crate::job::mask::Masker;
use crate::job::transfer::{self, RetryPolicy, TransferError};
use crate::job::{extract, workdir};
use crate::pipeline::{JobContext, Pipeline};
use crate::sandbox::Runner;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a cancelled job may take to wind down (kill its step, clean up) before its
/// future is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// The scheduler's handle on a running job.
#[derive(Clone, Default)]
pub struct RunControl {
    cancel: CancellationToken,
    gate: Arc<FrameGate>,
    reason: Arc<Mutex<Option<String>>>,
}

impl RunControl {
    /// Stops the job; it reports `error{message: reason}` + `complete{success:false}`.
    pub fn cancel(&self, reason: &str) {
        self.reason
            .lock()
            .unwrap()
            .get_or_insert_with(|| reason.to_string());
        self.cancel.cancel();
    }

    /// Stops the job without sending anything more for it (its job id now belongs to a
    /// newer assignment, or the hub dropped it with the link). When this returns, no
    /// further frame of the job can enter the outgoing channel.
    pub fn silence_and_cancel(&self, reason: &str) {
        self.gate.close();
        self.cancel(reason);
    }

    pub fn is_silenced(&self) -> bool {
        self.gate.is_closed()
    }

    /// The gate every frame of this run passes (see [`FrameGate`]).
    pub fn gate(&self) -> &FrameGate {
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
pub struct JobEnv {
    pub config: Arc<Config>,
    pub pipeline: Arc<dyn Pipeline>,
    pub runner: Arc<dyn Runner>,
    pub http: reqwest::Client,
    pub out: mpsc::Sender<WorkerFrame>,
    pub metrics: Arc<WorkerMetrics>,
}

/// How the job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobSummary {
    pub outcome: Outcome,
    pub code: Option<ErrorCode>,
}

/// Runs one assignment to its end and reports it.
pub async fn run_job(
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
        Err(_) => Masker::new(&all_strings(&assign.credentials)),
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
    std::fs::create_dir_all(&config.work_dir).map_err(|e| {
        JobError::internal(
            None,
            format!("cannot create work dir {}: {e}", config.work_dir.display()),
        )
    })?;
    workdir::ensure_free_disk(&config.work_dir, config.min_free_disk)
        .map_err(|e| JobError::internal(None, format!("{e:#}")))?;
    let work = workdir::JobWorkDir::create(
        &config.work_dir,
        &config.worker_name,
        &assign.job_id,
        attempt,
    )
    .map_err(|e| JobError::internal(None, format!("cannot create the job folder: {e:#}")))?;

    // Download and extract.
    sink.stage(Stage::Extracting, "downloading the project");
    let archive = work.path().join("project.tar.gz");
    let progress_sink = sink.clone();
    let on_bytes = move |bytes: u64| {
        let msg = format!("{:.1} MiB downloaded", bytes as f64 / (1 << 20) as f64);
        progress_sink.progress(Stage::Extracting, 0, Some(&msg));
    };
    let size = transfer::download_tarball(
        &env.http,
        &assign.tarball_url,
        &assign.auth_token,
        &archive,
        &cancel,
        &on_bytes,
        &RetryPolicy::default(),
    )
    .await
    .map_err(|e| {
        JobError::internal(
            Some(Stage::Extracting),
            format!("downloading the project failed: {e}"),
        )
    })?;
    sink.progress(
        Stage::Extracting,
        50,
        Some(&format!("{size} bytes downloaded")),
    );
    let project_dir = work.project_dir();
    let limits = config.extract_limits;
    let (a, p) = (archive.clone(), project_dir.clone());
    let stats = tokio::task::spawn_blocking(move || extract::extract_tar_gz(&a, &p, &limits))
        .await
        .map_err(|e| {
            JobError::internal(Some(Stage::Extracting), format!("extraction crashed: {e}"))
        })?
        .map_err(|e| {
            JobError::internal(
                Some(Stage::Extracting),
                format!("refused the project tarball: {e}"),
            )
        })?;
    crate::provenance::inputs::remember_archive_digest(&archive, work.path()).map_err(|e| {
        JobError::internal(Some(Stage::Extracting), format!("hashing the tarball: {e}"))
    })?;
    let _ = std::fs::remove_file(&archive);
    sink.info(
        Stage::Extracting,
        &format!(
            "project extracted: {} entries, {} bytes",
            stats.entries, stats.bytes
        ),
    );
    sink.progress(Stage::Extracting, 100, None);

    // The Windows work.
    let ctx = JobContext {
        job_id: assign.job_id.clone(),
        attempt,
        manifest: Arc::new(manifest),
        credentials: Arc::new(credentials),
        project_dir,
        work_dir: work.path().to_path_buf(),
        events: sink.clone(),
        cancel: cancel.clone(),
        runner: env.runner.clone(),
        config: config.clone(),
        http: env.http.clone(),
        certificates: env.metrics.certificates.clone(),
    };
    let artifacts = env.pipeline.run(&ctx).await?;
    if cancel.is_cancelled() {
        return Err(JobError::cancelled(sink.current_stage()));
    }

    // Upload, each artifact in turn; the first failure fails the job.
    sink.stage(
        Stage::Uploading,
        &format!("uploading {} artifact(s)", artifacts.len()),
    );
    let artifacts = crate::provenance::upload::with_records(artifacts, config.provenance_upload);
    let mut uploaded = Vec::with_capacity(artifacts.len());
    for artifact in &artifacts {
        let progress_sink = sink.clone();
        let on_progress = move |sent: u64, total: u64| {
            let percent = sent
                .saturating_mul(100)
                .checked_div(total)
                .map_or(100, |p| p.min(100) as u8);
            progress_sink.progress(Stage::Uploading, percent, None);
        };
        let done = transfer::upload_artifact(
            &env.http,
            &assign.artifact_upload_url,
            &assign.auth_token,
            artifact,
            config.max_artifact_bytes,
            &cancel,
            &on_progress,
            &RetryPolicy::default(),
        )
        .await
        .map_err(|e| upload_error(&artifact.name, e))?;
        env.metrics
            .upload_bytes
            .fetch_add(done.size, Ordering::Relaxed);
        sink.info(
            Stage::Uploading,
            &format!(
                "uploaded {} ({} bytes, sha256 {})",
                done.name, done.size, done.sha256
            ),
        );
        uploaded.push(ArtifactInfo {
            name: done.name,
            size: done.size,
            sha256: done.sha256,
        });
    }
    drop(work);
    Ok(uploaded)
}

fn upload_error(name: &str, err: TransferError) -> JobError {
    let code = match err {
        TransferError::TooLarge { .. } => ErrorCode::UploadTooLarge,
        _ => ErrorCode::InternalError,
    };
    JobError::new(
        code,
        Some(Stage::Uploading),
        format!("uploading {name} failed: {err}"),
    )
}

/// Every string inside a JSON value (for masking credentials that failed to parse).
fn all_strings(value: &serde_json::Value) -> Vec<Secret> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) if !s.is_empty() => out.push(Secret::new(s.clone())),
            serde_json::Value::Array(a) => stack.extend(a.iter()),
            serde_json::Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    out
}
