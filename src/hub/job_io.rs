//! The hub's ends of a job's lifecycle: the project comes from the hub's tarball URL
//! ([`HubProject`]: download, then extraction) and the artifacts go back to its upload URL
//! ([`HubUpload`]).

use super::metrics::WorkerMetrics;
use super::protocol::{ArtifactInfo, JobAssign};
use super::transfer::{self, RetryPolicy, TransferError};
use crate::config::Config;
use crate::error::{ErrorCode, JobError};
use crate::events::{SharedSink, Stage};
use crate::job::lifecycle::{unpack_project, Delivery, Project, ProjectInput};
use crate::job::manifest::Manifest;
use crate::job::workdir::JobWorkDir;
use crate::pipeline::Artifact;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;

/// The project of a `job_assign`: its tarball, downloaded into the work folder and extracted
/// into `<work>/project`, with the manifest the assignment carried.
pub(crate) struct HubProject<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) assign: &'a JobAssign,
    pub(crate) manifest: Manifest,
    pub(crate) config: &'a Config,
}

#[async_trait::async_trait]
impl ProjectInput for HubProject<'_> {
    async fn fetch(
        &self,
        work: &JobWorkDir,
        events: &SharedSink,
        cancel: &CancellationToken,
    ) -> Result<Project, JobError> {
        events.stage(Stage::Extracting, "downloading the project");
        let archive = work.path().join("project.tar.gz");
        let progress_sink = events.clone();
        let on_bytes = move |bytes: u64| {
            let msg = format!("{:.1} MiB downloaded", bytes as f64 / (1 << 20) as f64);
            progress_sink.progress(Stage::Extracting, 0, Some(&msg));
        };
        let size = transfer::download_tarball(
            self.http,
            &self.assign.tarball_url,
            &self.assign.auth_token,
            &archive,
            cancel,
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
        events.progress(
            Stage::Extracting,
            50,
            Some(&format!("{size} bytes downloaded")),
        );
        let dir = work.project_dir();
        unpack_project(&archive, &dir, self.config, events, cancel).await?;
        let _ = std::fs::remove_file(&archive);
        Ok(Project {
            dir,
            manifest: self.manifest.clone(),
        })
    }
}

/// Uploads each artifact in turn to the assignment's upload URL; the first failure fails
/// the job.
pub(crate) struct HubUpload<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) assign: &'a JobAssign,
    pub(crate) config: &'a Config,
    pub(crate) metrics: &'a WorkerMetrics,
}

#[async_trait::async_trait]
impl Delivery for HubUpload<'_> {
    type Receipt = Vec<ArtifactInfo>;

    async fn deliver(
        &self,
        artifacts: &[Artifact],
        events: &SharedSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<ArtifactInfo>, JobError> {
        events.stage(
            Stage::Uploading,
            &format!("uploading {} artifact(s)", artifacts.len()),
        );
        let artifacts = crate::provenance::upload::with_records(
            artifacts.to_vec(),
            self.config.provenance_upload,
        );
        let mut uploaded = Vec::with_capacity(artifacts.len());
        for artifact in &artifacts {
            let progress_sink = events.clone();
            let on_progress = move |sent: u64, total: u64| {
                let percent = sent
                    .saturating_mul(100)
                    .checked_div(total)
                    .map_or(100, |p| p.min(100) as u8);
                progress_sink.progress(Stage::Uploading, percent, None);
            };
            let done = transfer::upload_artifact(
                self.http,
                &self.assign.artifact_upload_url,
                &self.assign.auth_token,
                artifact,
                self.config.max_artifact_bytes,
                cancel,
                &on_progress,
                &RetryPolicy::default(),
            )
            .await
            .map_err(|e| upload_error(&artifact.name, e))?;
            self.metrics
                .upload_bytes
                .fetch_add(done.size, Ordering::Relaxed);
            events.info(
                Stage::Uploading,
                &format!(
                    "uploaded {} ({} bytes, sha256 {})",
                    done.name, done.size, done.sha256
                ),
            );
            uploaded.push(done);
        }
        Ok(uploaded)
    }
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
