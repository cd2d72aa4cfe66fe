//! The messages between the worker and a job's child process: one JSON object per line,
//! the worker's on the child's stdin, the child's on its stdout.
//!
//! The worker reads the child's lines with a length cap and through these types only; a
//! line that does not decode ends the child (it is treated like a crash). Byte strings
//! (digests, signatures, certificates) travel as hex.

use crate::error::{ErrorCode, JobError};
use crate::events::{JobEvent, Stage};
use crate::job::credentials::SigningMethod;
use crate::job::manifest::Manifest;
use crate::pipeline::Artifact;
use crate::sandbox::{Step, StepError, StepOutcome, Toolchain};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Longest line either side accepts (events are capped far below this).
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// What the child needs to run the pipeline: everything but credentials.
#[derive(Serialize, Deserialize)]
pub(crate) struct JobSpec {
    pub(crate) job_id: String,
    pub(crate) attempt: u32,
    pub(crate) manifest: Manifest,
    pub(crate) project_dir: PathBuf,
    pub(crate) work_dir: PathBuf,
    /// The worker's `PERRY_*` settings, secrets left out; the child parses them again.
    pub(crate) config_vars: Vec<(String, String)>,
    /// The signing certificate and timestamp servers; the key stays with the worker.
    pub(crate) signing: Option<SigningSpec>,
}

/// The public half of the job's signing session.
#[derive(Serialize, Deserialize)]
pub(crate) struct SigningSpec {
    pub(crate) method: SigningMethod,
    /// DER certificates, leaf first, as checked when the worker opened the session.
    pub(crate) chain_hex: Vec<String>,
    pub(crate) certificate: crate::sign::certificate::CertificateReport,
    /// `None`: timestamping is off for this job.
    pub(crate) timestamp_urls: Option<Vec<String>>,
}

/// Worker → child.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToChild {
    /// The first line: the job.
    Start(Box<JobSpec>),
    /// The answer to [`FromChild::RunStep`].
    StepDone { id: u64, result: WireStepResult },
    /// The answer to [`FromChild::SignDigest`].
    Signed { id: u64, result: WireSignResult },
    /// The answer to [`FromChild::Toolchain`].
    Toolchain {
        id: u64,
        result: Result<Toolchain, String>,
    },
}

/// Child → worker.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum FromChild {
    /// A stage, log line or progress event of the job.
    Event(JobEvent),
    /// Run a tool step (compiler, makensis) in the worker's sandbox.
    RunStep {
        id: u64,
        step: Step,
        stage: Stage,
        output_dir: PathBuf,
    },
    /// Sign a SHA-256 digest with the job's key.
    SignDigest { id: u64, digest_hex: String },
    /// Describe the toolchain for the build record (see [`crate::sandbox::Runner::toolchain`]).
    Toolchain { id: u64, perry_version: bool },
    /// The pipeline's result; the last line.
    Finished(WireOutcome),
}

/// [`Runner::run`](crate::sandbox::Runner::run)'s result on the wire.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum WireStepResult {
    Exited { code: i64 },
    TimedOut { step: String, secs: u64 },
    Cancelled { step: String },
    Infrastructure { message: String },
}

impl From<Result<StepOutcome, StepError>> for WireStepResult {
    fn from(r: Result<StepOutcome, StepError>) -> Self {
        match r {
            Ok(o) => WireStepResult::Exited { code: o.exit_code },
            Err(StepError::TimedOut { step, secs }) => WireStepResult::TimedOut { step, secs },
            Err(StepError::Cancelled { step }) => WireStepResult::Cancelled { step },
            Err(StepError::Infrastructure(e)) => WireStepResult::Infrastructure {
                message: format!("{e:#}"),
            },
        }
    }
}

impl From<WireStepResult> for Result<StepOutcome, StepError> {
    fn from(r: WireStepResult) -> Self {
        match r {
            WireStepResult::Exited { code } => Ok(StepOutcome { exit_code: code }),
            WireStepResult::TimedOut { step, secs } => Err(StepError::TimedOut { step, secs }),
            WireStepResult::Cancelled { step } => Err(StepError::Cancelled { step }),
            WireStepResult::Infrastructure { message } => {
                Err(StepError::Infrastructure(anyhow::anyhow!(message)))
            }
        }
    }
}

/// A digest signature on the wire: the signature and the chain that verifies it.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum WireSignResult {
    Signed {
        signature_hex: String,
        chain_hex: Vec<String>,
    },
    Failed {
        method: String,
        message: String,
    },
}

/// The pipeline's result on the wire.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum WireOutcome {
    Built { artifacts: Vec<WireArtifact> },
    Failed(WireJobError),
}

/// [`Artifact`] on the wire.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireArtifact {
    pub(crate) path: PathBuf,
    pub(crate) name: String,
    pub(crate) target: String,
}

impl From<&Artifact> for WireArtifact {
    fn from(a: &Artifact) -> Self {
        WireArtifact {
            path: a.path.clone(),
            name: a.name.clone(),
            target: a.target.clone(),
        }
    }
}

/// [`JobError`] on the wire.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireJobError {
    pub(crate) code: ErrorCode,
    pub(crate) stage: Option<Stage>,
    pub(crate) message: String,
}

impl From<&JobError> for WireJobError {
    fn from(e: &JobError) -> Self {
        WireJobError {
            code: e.code,
            stage: e.stage,
            message: e.message.clone(),
        }
    }
}

impl From<WireJobError> for JobError {
    fn from(e: WireJobError) -> Self {
        JobError::new(e.code, e.stage, e.message)
    }
}

/// One line of JSON for `message`, newline included.
pub(crate) fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).expect("wire messages always serialise");
    line.push(b'\n');
    line
}
