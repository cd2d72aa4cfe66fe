//! Disposable hardened containers through the Docker Engine API (bollard), one per step.
//!
//! Life of a step: create (hardened, labelled, uniquely named; see `spec`) → inspect,
//! copy inputs and the empty output folders in (streamed tar; see `tar_in`) and attach,
//! concurrently → refuse to run unless every hardening setting landed → start → stream
//! stdout/stderr lines → wait (a non-zero exit is an exit code, not an error) → copy
//! outputs out (streamed to a temp file, unpacked with traversal checks; see `copy`) →
//! force-remove with volumes. Every engine call has its own deadline; the step timeout
//! and cancel kill the container at once; a guard removes it if the future is dropped; a
//! container the engine could not remove (it was down or restarting) is retried when the
//! next step starts; [`DockerRunner::reap_orphans`] removes a crashed worker's leftovers.
//! A step killed because the engine stopped is an infrastructure error naming the
//! engine, not an exit code. Outputs are copied only after exit code 0 (a failed tool
//! usually produced none).

pub(crate) mod cleanup;
mod copy;
pub(crate) mod engine;
pub(crate) mod spec;
mod tar_in;
mod toolchain;

/// The container label naming the worker that owns a container (orphan removal, audits).
pub use self::spec::LABEL_WORKER;

use self::cleanup::{ContainerGuard, Leftovers};
use self::engine::{engine_error, EngineInfo, QUICK_DEADLINE};
use self::spec::{verify_hardening, ContainerSpec, Hardening, Owner, TargetOs};
use super::lines::{LineAssembler, DEFAULT_MAX_LINE_BYTES};
use super::paths::output_folders;
use super::{Runner, Step, StepContext, StepError, StepOutcome, Toolchain};
use crate::config::Config;
use crate::events::LogStream;
use crate::isolation::unpack::UnpackLimits;
use anyhow::{anyhow, Context, Result};
use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;

/// Deadline for create and start requests.
const CREATE_DEADLINE: Duration = Duration::from_secs(30);
/// How long the output stream may lag behind the container's exit.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Exit statuses of a process killed by SIGKILL and SIGTERM (128 + signal number).
const EXIT_SIGKILL: i64 = 137;
const EXIT_SIGTERM: i64 = 143;

/// Runs each step in its own hardened container.
#[derive(Clone)]
pub struct DockerRunner {
    docker: Docker,
    worker_name: String,
    default_image: String,
    hardening: Hardening,
    os: TargetOs,
    max_line_bytes: usize,
    unpack_limits: UnpackLimits,
    created: Arc<Mutex<Vec<String>>>,
    audit: Arc<Mutex<Vec<AuditRecord>>>,
    leftovers: Leftovers,
    perry_versions: Arc<toolchain::PerryVersions>,
}

/// How many created containers [`DockerRunner::created_containers`] and
/// [`DockerRunner::audit`] remember (the oldest are forgotten first).
pub(crate) const AUDIT_KEEP: usize = 64;

/// Appends `item`, forgetting the oldest entries beyond [`AUDIT_KEEP`].
fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    list.push(item);
    if list.len() > AUDIT_KEEP {
        let excess = list.len() - AUDIT_KEEP;
        list.drain(..excess);
    }
}

/// What the engine reported for one created container, right after create (the container
/// itself is gone after the step). Tests check it for leaked credentials.
#[derive(Clone, Debug)]
pub struct AuditRecord {
    /// The container's name.
    pub name: String,
    /// The engine's inspect answer right after create.
    pub inspect: bollard::models::ContainerInspectResponse,
}

impl AuditRecord {
    /// The inspect answer as JSON text (env, cmd, labels, mounts, …), for searching.
    pub fn inspect_json(&self) -> String {
        serde_json::to_string(&self.inspect).unwrap_or_default()
    }
}

impl DockerRunner {
    /// Connects lazily to the engine (`DOCKER_HOST` or the platform default); nothing is
    /// sent until the first call, so use [`DockerRunner::check`] to know it answers.
    pub fn new(config: &Config) -> Result<Self> {
        let docker = Docker::connect_with_defaults()
            .with_context(|| format!("configuring the Docker client for {}", engine::endpoint()))?;
        Ok(DockerRunner {
            docker,
            worker_name: config.worker_name.clone(),
            default_image: config.docker.image.clone(),
            hardening: Hardening::from_config(&config.docker),
            os: TargetOs::host(),
            max_line_bytes: config.log_limits.max_line_len.max(DEFAULT_MAX_LINE_BYTES),
            unpack_limits: UnpackLimits::of(config),
            created: Arc::new(Mutex::new(Vec::new())),
            audit: Arc::new(Mutex::new(Vec::new())),
            leftovers: Leftovers::default(),
            perry_versions: Default::default(),
        })
    }

    /// The worker name this runner labels its containers with.
    pub fn worker_name(&self) -> &str {
        &self.worker_name
    }

    /// Engine reachable, its API version, and `image` present (`doctor`, job start).
    pub async fn check(&self, image: &str) -> Result<EngineInfo> {
        engine::check(&self.docker, image).await
    }

    /// Removes containers left by a previous run of `worker_name` (a crash); call at start.
    pub async fn reap_orphans(&self, worker_name: &str) -> Result<usize> {
        let removed = cleanup::reap(&self.docker, worker_name).await?;
        tracing::info!(
            worker = worker_name,
            removed,
            "removed leftover step containers"
        );
        Ok(removed)
    }

    /// Ids of the containers this runner created, in order: the last `AUDIT_KEEP` only,
    /// so a long-running worker's bookkeeping stays bounded (audit trail for tests).
    pub fn created_containers(&self) -> Vec<String> {
        self.created.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// `docker inspect` of the last `AUDIT_KEEP` containers this runner created, taken
    /// right after create.
    pub fn audit(&self) -> Vec<AuditRecord> {
        self.audit.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Create → verify → copy in → attach → start → wait → copy out. The container ends
    /// up in `slot` as soon as it exists, so the caller can remove it however this ends.
    async fn drive(
        &self,
        slot: &mut Option<ContainerGuard>,
        spec: ContainerSpec,
        step: &Step,
        ctx: &StepContext,
    ) -> Result<StepOutcome> {
        let docker = &self.docker;
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = tokio::time::timeout(
            CREATE_DEADLINE,
            docker.create_container(Some(options), spec.body.clone()),
        )
        .await
        .map_err(|_| anyhow!("creating the container did not finish within {CREATE_DEADLINE:?}"))?
        .map_err(|e| engine_error("creating the step container", Some(&step.image), e))?;
        let id = created.id;
        if let Ok(mut ids) = self.created.lock() {
            push_bounded(&mut ids, id.clone());
        }
        *slot = Some(ContainerGuard::new(
            docker.clone(),
            id.clone(),
            self.leftovers.clone(),
        ));

        // Inspect, copy-in and attach are independent round trips on a created (not yet
        // started) container, so they run concurrently; nothing starts before the check.
        let inspect = async {
            tokio::time::timeout(QUICK_DEADLINE, docker.inspect_container(&id, None))
                .await
                .map_err(|_| anyhow!("inspecting container {id} timed out"))?
                .map_err(|e| engine_error("inspecting the step container", None, e))
        };
        let folders = output_folders(&step.outputs)?;
        let copy_in = async {
            if step.inputs.is_empty() && folders.is_empty() {
                Ok(())
            } else {
                copy::copy_in(docker, self.os, &id, &step.inputs, &folders).await
            }
        };
        let attach = async {
            let options = AttachContainerOptionsBuilder::new()
                .stream(true)
                .stdout(true)
                .stderr(true)
                .build();
            tokio::time::timeout(QUICK_DEADLINE, docker.attach_container(&id, Some(options)))
                .await
                .map_err(|_| anyhow!("attaching to container {id} timed out"))?
                .map_err(|e| engine_error("attaching to the step container", None, e))
        };
        let (inspected, copied_in, attached) = tokio::join!(inspect, copy_in, attach);
        let inspected = inspected?;
        if let Ok(mut audit) = self.audit.lock() {
            push_bounded(
                &mut audit,
                AuditRecord {
                    name: spec.name.clone(),
                    inspect: inspected.clone(),
                },
            );
        }
        verify_hardening(&spec, &inspected, self.os).context("refusing to run the step")?;
        copied_in?;
        let mut pump = JoinSet::new();
        pump.spawn(pump_lines(
            attached?.output,
            ctx.clone(),
            self.max_line_bytes,
        ));

        tokio::time::timeout(CREATE_DEADLINE, docker.start_container(&id, None))
            .await
            .map_err(|_| anyhow!("starting container {id} timed out"))?
            .map_err(|e| engine_error("starting the step container", None, e))?;
        let exit_code = self.wait_exit(&id).await?;
        let _ = tokio::time::timeout(DRAIN_GRACE, pump.join_next()).await;
        if exit_code == EXIT_SIGKILL || exit_code == EXIT_SIGTERM {
            self.explain_signal_exit(&id, step, ctx).await?;
        }

        if exit_code == 0 {
            for output in &step.outputs {
                copy::copy_out(
                    docker,
                    self.os,
                    self.unpack_limits,
                    &ctx.cancel,
                    &id,
                    output,
                    &ctx.output_dir,
                )
                .await?;
            }
        }
        Ok(StepOutcome { exit_code })
    }

    /// A step killed by a signal we did not send (timeout and cancel never get here): the
    /// engine stopping its containers because it is shutting down or restarting is an
    /// infrastructure error, not the tool's; the memory limit is said in the job log.
    async fn explain_signal_exit(&self, id: &str, step: &Step, ctx: &StepContext) -> Result<()> {
        let inspected =
            tokio::time::timeout(QUICK_DEADLINE, self.docker.inspect_container(id, None)).await;
        match inspected {
            Ok(Ok(info)) => {
                if info.state.and_then(|s| s.oom_killed) == Some(true) {
                    ctx.events.log(
                        ctx.stage,
                        LogStream::Stderr,
                        &format!(
                            "step {} was killed for going over its memory limit \
                             (PERRY_DOCKER_MEMORY)",
                            step.name
                        ),
                    );
                }
                Ok(())
            }
            Ok(Err(bollard::errors::Error::DockerResponseServerError { .. })) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(anyhow!(
                "the Docker engine at {} stopped while step {} was running (shut down or \
                 restarted), and the step was killed with it",
                engine::endpoint(),
                step.name
            )),
        }
    }

    /// The exit code; bollard reports a non-zero exit as `DockerContainerWaitError`.
    async fn wait_exit(&self, id: &str) -> Result<i64> {
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut waits = self.docker.wait_container(id, Some(options));
        match waits.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(engine_error("waiting for the step container", None, e)),
            None => {
                let state = self.docker.inspect_container(id, None).await?.state;
                state
                    .and_then(|s| s.exit_code)
                    .ok_or_else(|| anyhow!("container {id} ended without an exit code"))
            }
        }
    }
}

#[async_trait::async_trait]
impl Runner for DockerRunner {
    async fn run(&self, step: &Step, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        if !self.leftovers.is_empty() {
            // In the background: an engine that hangs must not hold up this step.
            let (leftovers, docker) = (self.leftovers.clone(), self.docker.clone());
            tokio::spawn(async move { leftovers.retry(&docker).await });
        }
        let owner = Owner {
            worker: &self.worker_name,
            job_id: &ctx.job_id,
            attempt: ctx.attempt,
        };
        let spec = ContainerSpec::new(step, &owner, &self.hardening, self.os)
            .map_err(StepError::Infrastructure)?;
        let name = spec.name.clone();
        let mut slot: Option<ContainerGuard> = None;
        let result = tokio::select! {
            r = self.drive(&mut slot, spec, step, ctx) => r.map_err(StepError::Infrastructure),
            _ = tokio::time::sleep(step.timeout) => Err(StepError::TimedOut {
                step: step.name.clone(),
                secs: step.timeout.as_secs(),
            }),
            _ = ctx.cancel.cancelled() => Err(StepError::Cancelled { step: step.name.clone() }),
        };
        let Some(guard) = slot else {
            // Create timed out or was interrupted: the engine may still have made it.
            if result.is_err() {
                let _ = cleanup::remove(&self.docker, &name).await;
            }
            return result;
        };
        let cleanup = match &result {
            Ok(_) => guard.remove().await,
            Err(_) => guard.kill_and_remove().await,
        };
        match (result, cleanup) {
            (Ok(outcome), Ok(())) => Ok(outcome),
            (Ok(_), Err(e)) => Err(StepError::Infrastructure(
                e.context("removing the step container"),
            )),
            (Err(e), Ok(())) => Err(e),
            (Err(e), Err(cleanup_err)) => {
                tracing::warn!("step container not removed (the reaper will): {cleanup_err:#}");
                Err(e)
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "docker ({} containers at {}, image {})",
            self.os_name(),
            engine::endpoint(),
            self.default_image
        )
    }

    async fn toolchain(&self, config: &Config, perry_version: bool) -> Result<Toolchain> {
        let image = &config.docker.image;
        let image_id = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|e| engine_error(&format!("inspecting the image {image}"), None, e))?
            .id
            .with_context(|| format!("the engine reports no ID for {image}"))?;
        let perry_version = match (perry_version, self.perry_versions.get(&image_id)) {
            (false, _) => None,
            (true, Some(known)) => Some(known),
            (true, None) => {
                let asked = crate::hub::update::perry_version(config, self).await;
                if let Some(version) = &asked {
                    self.perry_versions.put(&image_id, version);
                }
                asked
            }
        };
        Ok(Toolchain {
            name: format!("docker:{image}"),
            image_id,
            perry_version,
        })
    }
}

impl DockerRunner {
    fn os_name(&self) -> &'static str {
        match self.os {
            TargetOs::Linux => "linux",
            TargetOs::Windows => "windows",
        }
    }
}

/// Demultiplexed container output → one [`LineAssembler`] per stream → the job's sink.
async fn pump_lines(
    mut output: std::pin::Pin<
        Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    ctx: StepContext,
    max_line_bytes: usize,
) {
    let mut stdout = LineAssembler::new(max_line_bytes);
    let mut stderr = LineAssembler::new(max_line_bytes);
    let out = |line: String| ctx.events.log(ctx.stage, LogStream::Stdout, &line);
    let err = |line: String| ctx.events.log(ctx.stage, LogStream::Stderr, &line);
    while let Some(Ok(item)) = output.next().await {
        match item {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.push(&message, out)
            }
            LogOutput::StdErr { message } => stderr.push(&message, err),
            LogOutput::StdIn { .. } => {}
        }
    }
    stdout.finish(out);
    stderr.finish(err);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_keeps_only_the_latest_containers() {
        let mut ids = Vec::new();
        for i in 0..AUDIT_KEEP * 3 {
            push_bounded(&mut ids, i);
        }
        assert_eq!(ids.len(), AUDIT_KEEP);
        assert_eq!(ids.first(), Some(&(AUDIT_KEEP * 2)));
        assert_eq!(ids.last(), Some(&(AUDIT_KEEP * 3 - 1)));
    }
}
