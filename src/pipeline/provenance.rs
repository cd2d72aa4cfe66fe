//! The build record of a job's artifact: measures the inputs from the job, writes
//! `<artifact>.intoto.jsonl` beside the artifact (signed when the job signs) and logs its
//! SHA-256 in the job log.

use super::{Artifact, JobContext};
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use crate::provenance::statement::{BuildInputs, BuildKind};
use crate::provenance::{self, inputs};
use crate::sign::SigningSession;

/// The worker's version, as records name it.
pub(crate) const WORKER_VERSION: &str = env!("CARGO_PKG_VERSION");

fn record_failed(e: impl std::fmt::Display) -> JobError {
    JobError::new(
        ErrorCode::PackageFailed,
        Some(Stage::Packaging),
        format!("writing the build record: {e}"),
    )
}

/// Measures what the artifact was built from. `precompiled_perry` is the Perry version a
/// sign-only bundle's metadata names (`None` for a full build: perry is asked).
async fn build_inputs(
    job: &JobContext,
    kind: BuildKind,
    precompiled_perry: Option<String>,
    session: Option<&SigningSession>,
) -> Result<BuildInputs, JobError> {
    let (project_name, project_sha256) =
        inputs::project_digest(&job.work_dir, &job.project_dir).map_err(record_failed)?;
    let full = kind == BuildKind::Full;
    let toolchain = job
        .runner
        .toolchain(&job.config, full)
        .await
        .map_err(|e| record_failed(format!("{e:#}")))?;
    let perry_version = if full {
        toolchain.perry_version
    } else {
        precompiled_perry
    };
    Ok(BuildInputs {
        project_name,
        project_sha256,
        manifest_sha256: inputs::manifest_sha256(&job.manifest),
        toolchain: toolchain.name,
        toolchain_image_id: toolchain.image_id,
        perry_version: perry_version.unwrap_or_else(|| "unknown".into()),
        worker_version: WORKER_VERSION.into(),
        build_kind: kind,
        distribute: format!("{:?}", job.manifest.distribute).to_ascii_lowercase(),
        source_date_epoch: crate::package::source_date::source_date_secs(),
        signing_thumbprint: session.map(|s| s.certificate().thumbprint.clone()),
    })
}

/// Writes the artifact's record beside it and logs its SHA-256.
pub(crate) async fn write_record(
    job: &JobContext,
    artifact: &Artifact,
    session: Option<&SigningSession>,
) -> Result<provenance::WrittenRecord, JobError> {
    let (kind, precompiled_perry) = match super::precompiled::bundle_dir(&job.project_dir) {
        Some(dir) => (
            BuildKind::SignOnly,
            super::precompiled::BundleMetadata::read(&dir.join("metadata.json"))
                .ok()
                .and_then(|m| m.perry_version),
        ),
        None => (BuildKind::Full, None),
    };
    let inputs = build_inputs(job, kind, precompiled_perry, session).await?;
    let record = provenance::write_record(&artifact.path, &artifact.name, &inputs, session)
        .await
        .map_err(|e| record_failed(format!("{e:#}")))?;
    let what = if session.is_some() {
        "signed"
    } else {
        "unsigned"
    };
    job.events.info(
        Stage::Packaging,
        &format!(
            "build record ({what}) {} sha256 {}",
            provenance::record_path(std::path::Path::new(&artifact.name)).display(),
            record.sha256
        ),
    );
    Ok(record)
}
