//! The stages of a job after its project is on disk:
//! compile → generating_assets → bundling → signing → packaging.
//!
//! [`Pipeline`] is the seam between the job machinery (download, upload, hub messages) and
//! the Windows-specific work. [`windows::WindowsPipeline`] is the real one; tests plug in
//! simpler pipelines.

pub(crate) mod assets;
mod compile;
mod packaging;
pub(crate) mod precompiled;
mod provenance;
pub mod signature_audit;
pub mod windows;

use crate::config::Config;
use crate::error::JobError;
use crate::events::SharedSink;
use crate::job::credentials::Credentials;
use crate::job::manifest::Manifest;
use crate::sandbox::Runner;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Everything one job's pipeline may use.
#[derive(Clone)]
pub struct JobContext {
    /// The hub's job id (or `local-<uuid>` for a local build).
    pub job_id: String,
    /// 1 for the first assignment of `job_id`, 2 after a re-queue, ….
    pub attempt: u32,
    /// What to build and how to package it.
    pub manifest: Arc<Manifest>,
    /// Signing credentials (empty: unsigned).
    pub credentials: Arc<Credentials>,
    /// The extracted project (or precompiled bundle): `<work>/project`.
    pub project_dir: PathBuf,
    /// Scratch space owned by this job: `<work>`; removed when the job ends.
    pub work_dir: PathBuf,
    /// Where stage, log and progress events go.
    pub events: SharedSink,
    /// Stops the job.
    pub cancel: CancellationToken,
    /// Where tools run: Docker containers or host processes.
    pub runner: Arc<dyn Runner>,
    /// The worker's configuration.
    pub config: Arc<Config>,
    /// The shared HTTP client (signing services, timestamp servers).
    pub http: reqwest::Client,
    /// Where the job records the signing certificate it used (`/metrics`).
    pub certificates: Arc<crate::sign::summary::CertificateGauges>,
}

impl JobContext {
    /// A [`crate::sandbox::StepContext`] for a step of `stage` whose outputs land in `output_dir`.
    pub fn step_context(
        &self,
        stage: crate::events::Stage,
        output_dir: PathBuf,
    ) -> crate::sandbox::StepContext {
        crate::sandbox::StepContext {
            job_id: self.job_id.clone(),
            attempt: self.attempt,
            stage,
            events: self.events.clone(),
            cancel: self.cancel.clone(),
            output_dir,
        }
    }
}

/// A finished file ready for upload.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// Where the finished file is.
    pub path: PathBuf,
    /// ASCII file name the user gets (`x-artifact-name`).
    pub name: String,
    /// `x-artifact-target`: `windows`, or `windows-precompiled` for a hand-off bundle.
    pub target: String,
}

#[async_trait::async_trait]
/// The stages after extraction, as one seam.
pub trait Pipeline: Send + Sync {
    /// Builds `job`'s project into its artifacts.
    async fn run(&self, job: &JobContext) -> Result<Vec<Artifact>, JobError>;
}
