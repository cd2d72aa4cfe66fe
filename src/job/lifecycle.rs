//! One job's life, the same for a hub job (`run`) and a local build (`build`):
//! prepare → pipeline → deliver.
//!
//! - Prepare: the work root exists and has the free disk `PERRY_MIN_FREE_DISK` asks for; a
//!   fresh work folder (named by job id and attempt) is created; the [`ProjectInput`] puts
//!   the project on disk (hub: download + extraction; command line: a folder in place or an
//!   extracted tarball) and names its manifest.
//! - Pipeline: the one place a [`JobContext`] is built; the [`Pipeline`] turns the project
//!   into [`Artifact`]s. A cancel seen after it fails the job before anything is delivered.
//! - Deliver: the [`Delivery`] hands the artifacts over (hub: upload; command line: copy to
//!   `--out`).
//!
//! The work folder is removed however the job ends (its guard is dropped on return or when
//! the job's future is dropped). Where the input comes from and where the artifacts go are
//! the only differences between the two commands; everything else lives here, so they
//! cannot drift.

use super::credentials::Credentials;
use super::manifest::Manifest;
use super::workdir;
use crate::config::Config;
use crate::error::JobError;
use crate::events::{SharedSink, Stage};
use crate::isolation::unpack::{ArchiveKind, ArchiveSource, UnpackLimits};
use crate::pipeline::{Artifact, JobContext, Pipeline};
use crate::sandbox::Runner;
use crate::sign::summary::CertificateGauges;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What every job of one process shares: configuration, tools and the HTTP client.
#[derive(Clone)]
pub(crate) struct JobTools {
    /// The validated `PERRY_*` configuration.
    pub(crate) config: Arc<Config>,
    /// The stages after extraction (the Windows pipeline, or a test's stand-in).
    pub(crate) pipeline: Arc<dyn Pipeline>,
    /// Where the pipeline's tools run: Docker containers or host processes.
    pub(crate) runner: Arc<dyn Runner>,
    /// The shared HTTP client (signing services, timestamp servers).
    pub(crate) http: reqwest::Client,
    /// Where jobs record the signing certificate they used (`/metrics`).
    pub(crate) certificates: Arc<CertificateGauges>,
}

/// One job to run.
pub(crate) struct JobRequest {
    /// The hub's job id, or `local-<uuid>` for a local build.
    pub(crate) job_id: String,
    /// 1 for the first assignment of `job_id`, 2 after a re-queue, ….
    pub(crate) attempt: u32,
    /// Written into the work folder as its owner (see [`workdir::remove_leftovers`]).
    pub(crate) owner: String,
    /// Signing credentials (empty: the build ships unsigned).
    pub(crate) credentials: Credentials,
    /// Where the job's stage, log and progress events go.
    pub(crate) events: SharedSink,
    /// Stops the job (hub cancel, drain deadline, timeout, Ctrl-C).
    pub(crate) cancel: CancellationToken,
}

/// The project on disk and its manifest.
pub(crate) struct Project {
    /// The project folder the pipeline builds.
    pub(crate) dir: PathBuf,
    /// What to build and how to package it.
    pub(crate) manifest: Manifest,
}

/// Where a job's project comes from.
#[async_trait::async_trait]
pub(crate) trait ProjectInput: Send + Sync {
    /// Puts the project on disk (inside `work` when it must be unpacked) and returns it with
    /// its manifest.
    async fn fetch(
        &self,
        work: &workdir::JobWorkDir,
        events: &SharedSink,
        cancel: &CancellationToken,
    ) -> Result<Project, JobError>;
}

/// Where a job's artifacts go.
#[async_trait::async_trait]
pub(crate) trait Delivery: Send + Sync {
    /// What a successful delivery reports (hub: the uploaded artifacts; command line: the
    /// copied files).
    type Receipt: Send;

    /// Hands `artifacts` over; the first failure fails the job.
    async fn deliver(
        &self,
        artifacts: &[Artifact],
        events: &SharedSink,
        cancel: &CancellationToken,
    ) -> Result<Self::Receipt, JobError>;
}

/// Runs one job through prepare → pipeline → deliver.
pub(crate) async fn run_job<D: Delivery>(
    tools: &JobTools,
    request: JobRequest,
    input: &dyn ProjectInput,
    delivery: &D,
) -> Result<D::Receipt, JobError> {
    let config = &tools.config;
    let JobRequest {
        job_id,
        attempt,
        owner,
        credentials,
        events,
        cancel,
    } = request;

    // Prepare.
    std::fs::create_dir_all(&config.work_dir).map_err(|e| {
        JobError::internal(
            None,
            format!("cannot create work dir {}: {e}", config.work_dir.display()),
        )
    })?;
    workdir::ensure_free_disk(&config.work_dir, config.min_free_disk)
        .map_err(|e| JobError::internal(None, format!("{e:#}")))?;
    let work = workdir::JobWorkDir::create(&config.work_dir, &owner, &job_id, attempt)
        .map_err(|e| JobError::internal(None, format!("cannot create the job folder: {e:#}")))?;
    let project = input.fetch(&work, &events, &cancel).await?;

    // The Windows work.
    let ctx = JobContext {
        job_id,
        attempt,
        manifest: Arc::new(project.manifest),
        credentials: Arc::new(credentials),
        project_dir: project.dir,
        work_dir: work.path().to_path_buf(),
        events: events.clone(),
        cancel: cancel.clone(),
        runner: tools.runner.clone(),
        config: config.clone(),
        http: tools.http.clone(),
        certificates: tools.certificates.clone(),
    };
    let artifacts = tools.pipeline.run(&ctx).await?;
    if cancel.is_cancelled() {
        return Err(JobError::cancelled(events.current_stage()));
    }

    // Deliver.
    let receipt = delivery.deliver(&artifacts, &events, &cancel).await?;
    drop(work);
    Ok(receipt)
}

/// Extracts the project tarball `archive` into `dest` with the configured limits (in the
/// unpacking child process), reporting the result as `extracting` events.
pub(crate) async fn unpack_project(
    archive: &Path,
    dest: &Path,
    config: &Config,
    events: &SharedSink,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    // The build record names the tarball by its digest; the tarball itself is gone by then.
    if let Some(work_dir) = dest.parent() {
        crate::provenance::inputs::remember_archive_digest(archive, work_dir).map_err(|e| {
            JobError::internal(Some(Stage::Extracting), format!("hashing the tarball: {e}"))
        })?;
    }
    let stats = crate::isolation::unpack::unpack(
        ArchiveSource::File(archive.to_path_buf()),
        dest,
        ArchiveKind::ProjectTarball,
        UnpackLimits::of(config),
        cancel,
    )
    .await
    .map_err(|e| {
        JobError::internal(
            Some(Stage::Extracting),
            format!("refused the project tarball: {e}"),
        )
    })?;
    events.info(
        Stage::Extracting,
        &format!(
            "project extracted: {} entries, {} bytes",
            stats.entries, stats.bytes
        ),
    );
    events.progress(Stage::Extracting, 100, None);
    Ok(())
}
