//! Steps as host processes (tokio::process), for `PERRY_DOCKER_ENABLED=false`.
//!
//! Each step gets its own temporary step dir (next to the job's output dir when possible),
//! receives copies of its inputs, runs with a cleared environment (a few basics plus the
//! step's own variables) in its own process group, streams stdout/stderr line by line to
//! the job's sink, and has its outputs copied back (after exit code 0 only: a failed tool
//! usually produced none, and its exit code is what the caller needs). Timeout, cancel and a dropped future
//! all kill the whole process group (grandchildren included); the step dir is removed
//! whatever happens.

use super::lines::{LineAssembler, DEFAULT_MAX_LINE_BYTES};
use super::paths::{output_folders, step_relative_path};
use super::{Runner, Step, StepContext, StepError, StepOutcome};
use crate::config::ExtractLimits;
use crate::events::LogStream;
use crate::untrusted::budget::Budget;
use crate::untrusted::tree_copy::{copy_tree, CopyPolicy};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::task::JoinSet;

/// Host variables a step inherits; everything else is cleared.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TMP",
    "TEMP",
    "SYSTEMROOT",
    "SystemRoot",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
];

/// How long stdout/stderr may stay open after the process group was killed.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs steps as host processes.
#[derive(Clone, Debug)]
pub struct HostRunner {
    max_line_bytes: usize,
    /// Entry and byte limits of each step's input and output copies.
    copy_limits: ExtractLimits,
}

impl Default for HostRunner {
    fn default() -> Self {
        HostRunner::new()
    }
}

impl HostRunner {
    /// A runner with the default line length and copy limits.
    pub const fn new() -> Self {
        HostRunner {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            copy_limits: ExtractLimits {
                max_entries: 100_000,
                max_unpacked_bytes: 4 << 30,
            },
        }
    }

    /// Limits the files and bytes copied into and out of each step (the tarball limits).
    pub(crate) fn with_copy_limits(mut self, limits: ExtractLimits) -> Self {
        self.copy_limits = limits;
        self
    }

    async fn run_in_step_dir(
        &self,
        step: &Step,
        ctx: &StepContext,
    ) -> Result<StepOutcome, StepError> {
        let infra = StepError::Infrastructure;
        let program = step
            .argv
            .first()
            .ok_or_else(|| infra(anyhow!("step {} has an empty argv", step.name)))?;
        check_env(&step.env).map_err(infra)?;
        let cwd_rel = step_relative_path(&step.cwd).map_err(infra)?;

        let step_dir = make_step_dir(&ctx.output_dir).map_err(infra)?;
        let work = step_dir.path().to_path_buf();
        let budget = |what: &str| Budget::new(what, self.copy_limits, ctx.cancel.clone());
        copy_inputs(step, &work, budget("the step inputs"))
            .await
            .map_err(infra)?;
        for folder in output_folders(&step.outputs).map_err(infra)? {
            let path = work.join(step_relative_path(&folder).map_err(infra)?);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating output folder {folder}"))
                .map_err(infra)?;
        }
        let cwd = work.join(cwd_rel);
        std::fs::create_dir_all(&cwd)
            .with_context(|| format!("creating working dir {}", step.cwd))
            .map_err(infra)?;

        let mut command = Command::new(program);
        command
            .args(&step.argv[1..])
            .current_dir(&cwd)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for key in INHERITED_ENV {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command.envs(step.env.iter().map(|(k, v)| (k, v)));
        #[cfg(unix)]
        command.process_group(0);

        let mut child = command
            .spawn()
            .with_context(|| format!("starting {program:?} for step {}", step.name))
            .map_err(infra)?;
        let _group = ProcessGroupGuard::new(child.id());

        let mut pumps = JoinSet::new();
        if let Some(out) = child.stdout.take() {
            pumps.spawn(pump_lines(
                out,
                LogStream::Stdout,
                ctx.clone(),
                self.max_line_bytes,
            ));
        }
        if let Some(err) = child.stderr.take() {
            pumps.spawn(pump_lines(
                err,
                LogStream::Stderr,
                ctx.clone(),
                self.max_line_bytes,
            ));
        }

        let status = child
            .wait()
            .await
            .with_context(|| format!("waiting for step {}", step.name))
            .map_err(infra)?;
        // The leader is gone; whatever it left running in its group dies now, so the pipes close.
        drop(_group);
        let _ = tokio::time::timeout(DRAIN_GRACE, async {
            while pumps.join_next().await.is_some() {}
        })
        .await;

        let exit_code = exit_code(&status);
        if exit_code == 0 {
            copy_outputs(step, &work, &ctx.output_dir, budget("the step outputs"))
                .await
                .map_err(infra)?;
        }
        Ok(StepOutcome { exit_code })
    }
}

#[async_trait::async_trait]
impl Runner for HostRunner {
    async fn run(&self, step: &Step, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        // Dropping the inner future (timeout, cancel) kills the process group through its
        // guards and removes the step dir.
        tokio::select! {
            result = self.run_in_step_dir(step, ctx) => result,
            _ = tokio::time::sleep(step.timeout) => Err(StepError::TimedOut {
                step: step.name.clone(),
                secs: step.timeout.as_secs(),
            }),
            _ = ctx.cancel.cancelled() => Err(StepError::Cancelled { step: step.name.clone() }),
        }
    }

    fn describe(&self) -> String {
        "host processes".into()
    }
}

/// Kills the whole process group on drop (the child was made leader of a new group).
struct ProcessGroupGuard {
    #[cfg_attr(not(unix), allow(dead_code))]
    pgid: Option<u32>,
}

impl ProcessGroupGuard {
    fn new(pid: Option<u32>) -> Self {
        ProcessGroupGuard { pgid: pid }
    }
}

impl Drop for ProcessGroupGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self
            .pgid
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 1)
        {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

async fn pump_lines(
    mut reader: impl AsyncRead + Unpin,
    stream: LogStream,
    ctx: StepContext,
    max_line_bytes: usize,
) {
    let mut assembler = LineAssembler::new(max_line_bytes);
    let mut buf = vec![0u8; 16 * 1024];
    let emit = |line: String| ctx.events.log(ctx.stage, stream, &line);
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => assembler.push(&buf[..n], emit),
        }
    }
    assembler.finish(emit);
}

fn exit_code(status: &std::process::ExitStatus) -> i64 {
    if let Some(code) = status.code() {
        return i64::from(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + i64::from(signal);
        }
    }
    -1
}

fn check_env(env: &[(String, String)]) -> Result<()> {
    for (key, value) in env {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            bail!("environment variable name {key:?} (or its value) is not valid");
        }
    }
    Ok(())
}

/// A fresh step dir next to the output dir (same file system, cheap copies), or in the
/// system temp dir when that parent does not exist.
fn make_step_dir(output_dir: &Path) -> Result<tempfile::TempDir> {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix(".perry-step-");
        b
    };
    match output_dir.parent().filter(|p| p.is_dir()) {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .context("creating the step dir")
}

async fn copy_inputs(step: &Step, work: &Path, mut budget: Budget) -> Result<()> {
    let plan: Vec<(PathBuf, PathBuf)> = step
        .inputs
        .iter()
        .map(|input| {
            Ok((
                input.host_path.clone(),
                work.join(step_relative_path(&input.dest)?),
            ))
        })
        .collect::<Result<_>>()?;
    tokio::task::spawn_blocking(move || {
        for (from, to) in plan {
            copy_tree(&from, &to, CopyPolicy::step_input(), &mut budget)
                .with_context(|| format!("copying input {}", from.display()))?;
        }
        Ok(())
    })
    .await
    .context("input copy task")?
}

async fn copy_outputs(
    step: &Step,
    work: &Path,
    output_dir: &Path,
    mut budget: Budget,
) -> Result<()> {
    let plan: Vec<(String, PathBuf, PathBuf)> = step
        .outputs
        .iter()
        .map(|rel| {
            let rel_path = step_relative_path(rel)?;
            Ok((
                rel.clone(),
                work.join(&rel_path),
                output_dir.join(&rel_path),
            ))
        })
        .collect::<Result<_>>()?;
    tokio::task::spawn_blocking(move || {
        for (rel, from, to) in plan {
            if std::fs::symlink_metadata(&from).is_err() {
                bail!("step output {rel:?} was not produced");
            }
            // Outputs are untrusted: a link could point anywhere on the host.
            copy_tree(&from, &to, CopyPolicy::step_output(), &mut budget)
                .with_context(|| format!("copying output {rel:?}"))?;
        }
        Ok(())
    })
    .await
    .context("output copy task")?
}
