//! Per-job isolation: every byte the project or its compiler made is read in a disposable
//! child process, never in the long-lived worker.
//!
//! [`IsolatedPipeline`] is the worker's side. It opens the job's signing session (the key
//! stays here), starts `perry-ship-windows __job` under OS limits (`limits`) with an
//! environment that holds no secret, and serves the child over its stdin/stdout
//! (`wire`): it forwards the child's events to the job's sink (which strips control
//! characters and masks secrets, as for every event), runs the tool steps the child asks for in the sandbox (only on the job's own
//! files), and signs the digests it sends. The child (`child`) runs the Windows pipeline
//! (icons, PE resources, DLL imports, the asset walk, hand-off metadata, NSIS/MSIX/ZIP
//! inputs, Authenticode digests and embedding) through `remote`.
//!
//! Cancel and the job timeout kill the child at once. When it dies (abort, stack overflow,
//! a limit), the job fails with the code of its stage and a message saying why
//! (`death`); the hub link and every other job go on.

mod child;
mod death;
mod limits;
mod remote;
pub(crate) mod unpack;
pub(crate) mod wire;

pub use child::child_main;
pub(crate) use limits::JobProcessLimits;
pub(crate) use unpack::self_check;
pub use unpack::{unpack_main, UNPACK_SUBCOMMAND};

use crate::error::{ErrorCode, JobError};
use crate::events::{JobEvent, Stage};
use crate::pipeline::{Artifact, JobContext, Pipeline};
use crate::sign::signer::CertChain;
use crate::sign::SigningSession;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use wire::{FromChild, JobSpec, SigningSpec, ToChild, WireOutcome, WireSignResult};

/// The hidden subcommand the child runs.
pub(crate) const CHILD_SUBCOMMAND: &str = "__job";

/// Environment variables the child keeps (none holds a secret); everything else,
/// `PERRY_*` settings included, is left out. The settings travel in the job message.
const CHILD_ENVIRONMENT: &[&str] = &[
    "PATH",
    "SOURCE_DATE_EPOCH",
    "TMPDIR",
    "TEMP",
    "TMP",
    "LANG",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    // Windows needs these to start a process at all.
    "SystemRoot",
    "SystemDrive",
    "windir",
    "ComSpec",
    "PATHEXT",
    "USERPROFILE",
    "LOCALAPPDATA",
    "APPDATA",
    "ProgramData",
    "ProgramFiles",
    "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE",
    "OS",
];

/// Settings the child is never given.
const SECRET_SETTINGS: &[&str] = &["PERRY_HUB_WORKER_SECRET"];

/// How long a child that sent its result may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);

static JOB_PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Registers the binary that unpacks archives in child processes (`main` registers its
/// own). Without it (the library used in-process), archives are unpacked on a blocking
/// thread of the calling process.
pub fn register_job_program(program: PathBuf) {
    let _ = JOB_PROGRAM.set(program);
}

pub(crate) fn job_program() -> Option<&'static Path> {
    JOB_PROGRAM.get().map(PathBuf::as_path)
}

/// `program subcommand` with only [`CHILD_ENVIRONMENT`] and killed when dropped.
pub(crate) fn child_command(program: &Path, subcommand: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command
        .arg(subcommand)
        .env_clear()
        .envs(
            CHILD_ENVIRONMENT
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
        )
        .kill_on_drop(true);
    command
}

/// The pipeline of the worker and of `build`: the Windows pipeline in a child process.
pub struct IsolatedPipeline {
    program: PathBuf,
}

impl IsolatedPipeline {
    /// Children run `program` (the `perry-ship-windows` binary) with the hidden subcommand.
    pub fn new(program: PathBuf) -> Self {
        IsolatedPipeline { program }
    }

    /// Children run the binary of this process.
    pub(crate) fn of_this_program() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }

    fn spawn(&self, job: &JobContext) -> std::io::Result<Child> {
        let mut command = child_command(&self.program, CHILD_SUBCOMMAND);
        command
            .current_dir(&job.work_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let limits = job.config.job_limits;
        #[cfg(unix)]
        limits::apply_before_exec(&mut command, limits);
        let process = command.spawn()?;
        #[cfg(windows)]
        let job_object = limits::confine(&process, limits)?;
        Ok(Child {
            process,
            #[cfg(windows)]
            _job_object: job_object,
        })
    }
}

/// A started child; on Windows with the Job Object that kills it when dropped.
struct Child {
    process: tokio::process::Child,
    #[cfg(windows)]
    _job_object: limits::JobObject,
}

#[async_trait::async_trait]
impl Pipeline for IsolatedPipeline {
    async fn run(&self, job: &JobContext) -> Result<Vec<Artifact>, JobError> {
        let session = crate::pipeline::windows::open_signing_session(job)
            .await?
            .map(Arc::new);
        let spec = JobSpec {
            job_id: job.job_id.clone(),
            attempt: job.attempt,
            manifest: (*job.manifest).clone(),
            project_dir: job.project_dir.clone(),
            work_dir: job.work_dir.clone(),
            config_vars: job
                .config
                .settings
                .iter()
                .filter(|(k, _)| !SECRET_SETTINGS.contains(&k.as_str()))
                .cloned()
                .collect(),
            signing: session.as_deref().map(signing_spec),
        };
        let child = self.spawn(job).map_err(|e| {
            JobError::internal(
                None,
                format!(
                    "cannot start the job process {}: {e}",
                    self.program.display()
                ),
            )
        })?;
        serve(job, child, spec, session).await
    }
}

fn signing_spec(session: &SigningSession) -> SigningSpec {
    SigningSpec {
        method: session.method(),
        chain_hex: chain_to_hex(session.chain()),
        certificate: session.certificate().clone(),
        timestamp_urls: session.timestamp_servers(),
    }
}

/// The chain as hex DER certificates, leaf first.
fn chain_to_hex(chain: &CertChain) -> Vec<String> {
    use der::Encode;
    chain
        .all()
        .map(|c| hex::encode(c.to_der().expect("a parsed certificate encodes")))
        .collect()
}

/// A chain from hex DER certificates, leaf first.
pub(crate) fn chain_from_hex(certs: &[String]) -> Result<CertChain, String> {
    use der::Decode;
    let mut parsed = certs.iter().map(|h| {
        let der = hex::decode(h).map_err(|e| e.to_string())?;
        x509_cert::Certificate::from_der(&der).map_err(|e| e.to_string())
    });
    let leaf = parsed.next().ok_or("no certificate")??;
    Ok(CertChain {
        leaf,
        intermediates: parsed.collect::<Result<_, _>>()?,
    })
}

/// Serves the child until it sends its result, dies, or the job is cancelled.
async fn serve(
    job: &JobContext,
    mut child: Child,
    spec: JobSpec,
    session: Option<Arc<SigningSession>>,
) -> Result<Vec<Artifact>, JobError> {
    let process = &mut child.process;
    let mut stdin = process.stdin.take().expect("stdin is piped");
    let mut stdout = BufReader::new(process.stdout.take().expect("stdout is piped"));
    let stderr_tail = tokio::spawn(death::keep_tail(process.stderr.take().expect("piped")));

    let (to_child, mut outbox) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(line) = outbox.recv().await {
            if stdin.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    let _ = to_child.send(wire::encode(&ToChild::Start(Box::new(spec))));

    let mut requests = tokio::task::JoinSet::new();
    let mut stage = None;
    let outcome = loop {
        let line = tokio::select! {
            _ = job.cancel.cancelled() => {
                let _ = process.kill().await;
                return Err(JobError::cancelled(stage));
            }
            line = read_line(&mut stdout) => line,
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => break None,
            Err(problem) => {
                let _ = process.kill().await;
                return Err(broke_protocol(stage, &problem));
            }
        };
        let message = match serde_json::from_slice::<FromChild>(&line) {
            Ok(m) => m,
            Err(e) => {
                let _ = process.kill().await;
                return Err(broke_protocol(stage, &e.to_string()));
            }
        };
        match message {
            FromChild::Event(event) => {
                if let JobEvent::Stage { stage: s, .. } = &event {
                    stage = Some(*s);
                }
                job.events.emit(event);
            }
            FromChild::RunStep {
                id,
                step,
                stage: step_stage,
                output_dir,
            } => {
                if let Err(problem) = check_step(&JobFolders::of(job), &step, &output_dir) {
                    let _ = process.kill().await;
                    return Err(broke_protocol(stage, &problem));
                }
                let (job, to_child) = (job.clone(), to_child.clone());
                requests.spawn(async move {
                    let ctx = job.step_context(step_stage, output_dir);
                    let result = job.runner.run(&step, &ctx).await;
                    let answer = ToChild::StepDone {
                        id,
                        result: result.into(),
                    };
                    let _ = to_child.send(wire::encode(&answer));
                });
            }
            FromChild::SignDigest { id, digest_hex } => {
                let Some(session) = session.clone() else {
                    let _ = process.kill().await;
                    return Err(broke_protocol(
                        stage,
                        "a signing request in an unsigned job",
                    ));
                };
                let to_child = to_child.clone();
                requests.spawn(async move {
                    let result = sign(&session, &digest_hex).await;
                    let _ = to_child.send(wire::encode(&ToChild::Signed { id, result }));
                });
            }
            FromChild::Toolchain { id, perry_version } => {
                let (job, to_child) = (job.clone(), to_child.clone());
                requests.spawn(async move {
                    let result = job
                        .runner
                        .toolchain(&job.config, perry_version)
                        .await
                        .map_err(|e| format!("{e:#}"));
                    let _ = to_child.send(wire::encode(&ToChild::Toolchain { id, result }));
                });
            }
            FromChild::Finished(outcome) => break Some(outcome),
        }
    };
    requests.abort_all();
    drop(to_child);
    let _ = writer.await;
    match outcome {
        Some(outcome) => {
            if tokio::time::timeout(EXIT_GRACE, process.wait())
                .await
                .is_err()
            {
                let _ = process.kill().await;
            }
            match outcome {
                WireOutcome::Built { artifacts } => artifacts
                    .into_iter()
                    .map(|a| check_artifact(&job.work_dir, a))
                    .collect(),
                WireOutcome::Failed(e) => Err(e.into()),
            }
        }
        None => {
            let status = process.wait().await;
            let tail = stderr_tail.await.unwrap_or_default();
            Err(death::explain(
                stage,
                status.ok(),
                &tail,
                &job.config.job_limits,
            ))
        }
    }
}

/// One line from the child, without its line break; `None` at the end of the stream.
async fn read_line(
    reader: &mut BufReader<tokio::process::ChildStdout>,
) -> Result<Option<Vec<u8>>, String> {
    let mut line = Vec::new();
    let limit = wire::MAX_LINE_BYTES as u64 + 1;
    let n = (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("reading its output failed: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return if line.len() as u64 >= limit - 1 {
            Err(format!(
                "it sent a message longer than {} bytes",
                wire::MAX_LINE_BYTES
            ))
        } else {
            Ok(None)
        };
    }
    Ok(Some(line))
}

fn broke_protocol(stage: Option<Stage>, problem: &str) -> JobError {
    JobError::internal(
        stage,
        format!("the job process broke its protocol and was stopped: {problem}"),
    )
}

/// `path` is inside `root` once every link in it is resolved.
pub(crate) fn resolves_inside(path: &Path, root: &Path) -> bool {
    match (path.canonicalize(), root.canonicalize()) {
        (Ok(p), Ok(r)) => p.starts_with(r),
        _ => false,
    }
}

/// `path` names a place inside `root` without `..` (it need not exist yet).
pub(crate) fn lexically_inside(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
}

/// What a child's requests are checked against.
pub(crate) struct JobFolders<'a> {
    pub(crate) image: &'a str,
    pub(crate) work_dir: &'a Path,
    pub(crate) project_dir: &'a Path,
}

impl<'a> JobFolders<'a> {
    fn of(job: &'a JobContext) -> Self {
        JobFolders {
            image: &job.config.docker.image,
            work_dir: &job.work_dir,
            project_dir: &job.project_dir,
        }
    }
}

/// `path` names a place inside `root` and its nearest existing folder is inside `root` once
/// links are resolved (so a link the child made cannot lead the step's outputs elsewhere).
fn writes_inside(path: &Path, root: &Path) -> bool {
    lexically_inside(path, root)
        && path
            .ancestors()
            .find(|a| a.exists())
            .is_some_and(|a| resolves_inside(a, root))
}

/// A step the child asks for may only read the job's files and write into its work folder,
/// with the configured image.
pub(crate) fn check_step(
    job: &JobFolders,
    step: &crate::sandbox::Step,
    output_dir: &Path,
) -> Result<(), String> {
    if step.image != job.image {
        return Err(format!("step {} asked for another image", step.name));
    }
    for input in &step.inputs {
        if !resolves_inside(&input.host_path, job.work_dir)
            && !resolves_inside(&input.host_path, job.project_dir)
        {
            return Err(format!(
                "step {} asked for a file outside the job",
                step.name
            ));
        }
    }
    if !writes_inside(output_dir, job.work_dir) {
        return Err(format!(
            "step {} asked to write outside the job folder",
            step.name
        ));
    }
    Ok(())
}

/// An artifact the child reports must be a regular file inside the job folder.
fn check_artifact(work_dir: &Path, a: wire::WireArtifact) -> Result<Artifact, JobError> {
    let regular = std::fs::symlink_metadata(&a.path).is_ok_and(|m| m.is_file());
    if !regular || !resolves_inside(&a.path, work_dir) {
        return Err(JobError::new(
            ErrorCode::PackageFailed,
            Some(Stage::Packaging),
            format!(
                "the job process named an artifact that is not a file of the job: {}",
                a.name
            ),
        ));
    }
    Ok(Artifact {
        path: a.path,
        name: a.name,
        target: a.target,
    })
}

async fn sign(session: &SigningSession, digest_hex: &str) -> WireSignResult {
    let failed = |message: String| WireSignResult::Failed {
        method: session.method().as_str().into(),
        message,
    };
    let digest: [u8; 32] = match hex::decode(digest_hex).ok().and_then(|d| d.try_into().ok()) {
        Some(d) => d,
        None => return failed("the digest to sign is not 32 bytes of hex".into()),
    };
    match session.sign_detached_digest(&digest).await {
        Ok(signed) => WireSignResult::Signed {
            signature_hex: hex::encode(&signed.signature),
            chain_hex: chain_to_hex(&signed.chain),
        },
        Err(e) => failed(e.message),
    }
}

#[cfg(test)]
mod tests;
