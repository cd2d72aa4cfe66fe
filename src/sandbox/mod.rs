//! Where build tools run: disposable hardened Docker containers ([`docker::DockerRunner`])
//! or plain host processes ([`host::HostRunner`]), behind one [`Runner`] trait so the
//! pipeline does not care which it has.
//!
//! A [`Step`] is fully described up front: image, argv (never a shell string built from
//! user input), environment (never a credential), inputs copied in, outputs copied back,
//! a deadline and a cancel token. Its stdout/stderr lines stream to the job's event sink.

pub mod docker;
pub mod host;
pub(crate) mod lines;
pub(crate) mod paths;

use crate::events::{SharedSink, Stage};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A host file or folder copied into the step's work dir before it starts.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StepInput {
    /// File or folder on the host.
    pub host_path: PathBuf,
    /// Destination relative to the step's work dir (`/work` in a container), `/`-separated.
    pub dest: String,
}

/// One tool invocation.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// Short name, used in container names and labels: `compile`, `nsis`, ….
    pub name: String,
    /// Toolchain image (ignored by the host runner).
    pub image: String,
    /// Program and arguments; `argv[0]` is looked up on the image's (or host's) PATH.
    pub argv: Vec<String>,
    /// Extra environment. Never put a credential here.
    pub env: Vec<(String, String)>,
    /// Files and folders copied in before start.
    pub inputs: Vec<StepInput>,
    /// Paths relative to the work dir copied back after exit (missing ones are an error).
    /// A folder output ends with `/`. The runner creates each output's folder (a folder
    /// output itself, a file output's parent) before the step starts.
    pub outputs: Vec<String>,
    /// Working directory relative to the step's work dir (`""` = the work dir itself).
    pub cwd: String,
    /// Deadline for the whole step (copy-in to copy-out).
    pub timeout: Duration,
}

/// Who runs the step and where its output goes.
#[derive(Clone)]
pub struct StepContext {
    /// The job the step belongs to.
    pub job_id: String,
    /// 1 for the first assignment of the job, 2 after a re-queue, ….
    pub attempt: u32,
    /// Stage the step's log lines are reported under.
    pub stage: Stage,
    /// Where the step's log lines go.
    pub events: SharedSink,
    /// Cancels the step (the job was cancelled or timed out).
    pub cancel: CancellationToken,
    /// Host folder that receives the step's `outputs` (same relative paths).
    pub output_dir: PathBuf,
}

/// How a step ended when it ran to completion (any exit code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepOutcome {
    /// The tool's exit code.
    pub exit_code: i64,
}

/// Why a step did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step ran past its deadline and was stopped.
    #[error("step {step} timed out after {secs} s")]
    TimedOut {
        /// The step's name.
        step: String,
        /// Its deadline, in seconds.
        secs: u64,
    },
    /// The job was cancelled while the step ran.
    #[error("step {step} was cancelled")]
    Cancelled {
        /// The step's name.
        step: String,
    },
    /// Engine unreachable, image missing, hardening not applied, copy failed, ….
    #[error("{0:#}")]
    Infrastructure(anyhow::Error),
}

/// Runs steps. Implementations must leave nothing behind (no container, no temp folder)
/// whatever way the step ends.
#[async_trait::async_trait]
pub trait Runner: Send + Sync {
    /// Runs `step` to completion: inputs copied in, the tool run, outputs copied out.
    async fn run(&self, step: &Step, ctx: &StepContext) -> Result<StepOutcome, StepError>;

    /// A one-line description for logs and `doctor` (`docker (API 1.41, image …)`, `host`).
    fn describe(&self) -> String;

    /// What steps run with, for build records: the toolchain (`docker:<image>` or `host`),
    /// the image's ID, and (when `perry_version` is asked for) `perry --version`.
    async fn toolchain(
        &self,
        config: &crate::config::Config,
        perry_version: bool,
    ) -> anyhow::Result<Toolchain> {
        let (name, image_id) = if config.docker.enabled {
            let image = &config.docker.image;
            let id = crate::provenance::inputs::image_id(image).await?;
            (format!("docker:{image}"), id)
        } else {
            ("host".to_string(), String::new())
        };
        let perry_version = match perry_version {
            true => crate::hub::update::perry_version(config, self).await,
            false => None,
        };
        Ok(Toolchain {
            name,
            image_id,
            perry_version,
        })
    }
}

/// The toolchain a job's steps run with (see [`Runner::toolchain`]).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Toolchain {
    /// `docker:<image>` or `host`.
    pub(crate) name: String,
    /// The image's ID (`sha256:…`); empty on the host.
    pub(crate) image_id: String,
    /// What `perry --version` printed, when asked for and it answered.
    pub(crate) perry_version: Option<String>,
}
