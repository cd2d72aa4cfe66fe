//! `perry-ship-windows build`: one local build through the same job lifecycle a hub job
//! uses (`crate::job::lifecycle`); only the input (a folder or tarball on the command
//! line) and the delivery (a copy to `--out`) are its own.
//!
//! The project is a folder or a `.tar.gz`; the manifest comes from `--manifest` or the
//! project's `perry.toml`; credentials from `--credentials` (none: unsigned). The artifact
//! is copied to `--out` (default `dist/`) and its path is printed last on stdout.

use super::console::ConsoleSink;
use super::project::{manifest_from_perry_toml, read_json_file};
use crate::config::Config;
use crate::error::JobError;
use crate::events::SharedSink;
use crate::isolation::IsolatedPipeline;
use crate::job::credentials::Credentials;
use crate::job::lifecycle::{
    run_job, unpack_project, Delivery, JobRequest, JobTools, Project, ProjectInput,
};
use crate::job::manifest::Manifest;
use crate::job::workdir::JobWorkDir;
use crate::pipeline::Artifact;
use crate::sandbox::lines::strip_controls;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Options of `build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Project folder (with perry.toml) or a project tarball (.tar.gz).
    pub(crate) project: PathBuf,
    /// Manifest JSON (hub format) instead of perry.toml.
    #[arg(long)]
    pub(crate) manifest: Option<PathBuf>,
    /// Credentials JSON (hub format); without it the build ships unsigned.
    #[arg(long)]
    pub(crate) credentials: Option<PathBuf>,
    /// Packaging mode; overrides the manifest.
    #[arg(long, value_parser = ["installer", "msix", "portable"])]
    pub(crate) distribute: Option<String>,
    /// Where the artifact is copied.
    #[arg(long, default_value = "dist")]
    pub(crate) out: PathBuf,
    /// Run compile and packaging in Docker containers (overrides PERRY_DOCKER_ENABLED).
    #[arg(long, conflicts_with = "no_docker")]
    pub(crate) docker: bool,
    /// Run tools as host processes (overrides PERRY_DOCKER_ENABLED).
    #[arg(long)]
    pub(crate) no_docker: bool,
    /// Show every tool output line, not only stderr.
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

/// Runs `build`: builds the project locally, copies the artifact to `--out` and prints its path.
pub async fn build(args: BuildArgs) -> ExitCode {
    let mut config = match super::load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.docker {
        config.docker.enabled = true;
    }
    if args.no_docker {
        config.docker.enabled = false;
    }
    let sink = Arc::new(ConsoleSink::new(args.verbose));
    let result = build_inner(&args, Arc::new(config), sink.clone()).await;
    sink.finish();
    match result {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(BuildFailure::Job(e)) => {
            eprintln!(
                "error: {} ({}): {}",
                e.code,
                e.stage.map(|s| s.as_str()).unwrap_or("setup"),
                strip_controls(&e.message)
            );
            ExitCode::FAILURE
        }
        Err(BuildFailure::Setup(e)) => {
            eprintln!("error: {}", strip_controls(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// One build for `verify --project`: the artifact's path in `args.out`, or what failed.
pub(crate) async fn build_for_verify(args: &BuildArgs, config: Config) -> Result<PathBuf, String> {
    let sink = Arc::new(ConsoleSink::new(args.verbose));
    let result = build_inner(args, Arc::new(config), sink.clone()).await;
    sink.finish();
    result.map_err(|e| match e {
        BuildFailure::Job(e) => format!("{} ({})", e.code, strip_controls(&e.message)),
        BuildFailure::Setup(e) => strip_controls(&format!("{e:#}")).into_owned(),
    })
}

enum BuildFailure {
    Setup(anyhow::Error),
    Job(JobError),
}

impl From<anyhow::Error> for BuildFailure {
    fn from(e: anyhow::Error) -> Self {
        BuildFailure::Setup(e)
    }
}

async fn build_inner(
    args: &BuildArgs,
    config: Arc<Config>,
    sink: Arc<ConsoleSink>,
) -> Result<PathBuf, BuildFailure> {
    let credentials = match &args.credentials {
        Some(path) => {
            Credentials::from_json(&read_json_file(path)?).map_err(|e| anyhow::anyhow!("{e}"))?
        }
        None => Credentials::default(),
    };
    let tools = JobTools {
        runner: super::make_runner(&config).await?,
        config,
        pipeline: Arc::new(
            IsolatedPipeline::of_this_program()
                .context("cannot find this program to start the job process")?,
        ),
        http: crate::hub::transfer::http_client(),
        certificates: Default::default(),
    };
    let request = JobRequest {
        job_id: format!("local-{}", uuid::Uuid::new_v4().simple()),
        attempt: 1,
        owner: format!("local build {}", std::process::id()),
        credentials,
        events: sink,
        cancel: cancel_on_ctrl_c(),
    };
    let input = LocalProject {
        args,
        config: tools.config.clone(),
    };
    let delivery = CopyToFolder { out: &args.out };
    run_job(&tools, request, &input, &delivery)
        .await
        .map_err(BuildFailure::Job)
}

/// The project named on the command line. A folder is used in place; a tarball is
/// extracted into the work folder with the same checks as a hub job's. The manifest comes
/// from `--manifest` or the project's `perry.toml`, `--distribute` overriding its mode.
struct LocalProject<'a> {
    args: &'a BuildArgs,
    config: Arc<Config>,
}

#[async_trait::async_trait]
impl ProjectInput for LocalProject<'_> {
    async fn fetch(
        &self,
        work: &JobWorkDir,
        events: &SharedSink,
        cancel: &CancellationToken,
    ) -> Result<Project, JobError> {
        let project = &self.args.project;
        let dir = if project.is_dir() {
            project.canonicalize().map_err(|e| {
                JobError::internal(None, format!("resolving {}: {e}", project.display()))
            })?
        } else {
            let dest = work.project_dir();
            unpack_project(project, &dest, &self.config, events, cancel).await?;
            dest
        };
        let manifest = self
            .manifest(&dir)
            .map_err(|e| JobError::internal(None, format!("{e:#}")))?;
        Ok(Project { dir, manifest })
    }
}

impl LocalProject<'_> {
    fn manifest(&self, project_dir: &Path) -> Result<Manifest> {
        let mut manifest_json = match &self.args.manifest {
            Some(path) => read_json_file(path)?,
            None => manifest_from_perry_toml(project_dir)?,
        };
        if let Some(d) = &self.args.distribute {
            manifest_json["windows_distribute"] = serde_json::json!(d);
        }
        Manifest::from_json(&manifest_json).map_err(|e| anyhow::anyhow!("invalid manifest: {e}"))
    }
}

/// Copies every artifact into `out`; the receipt is the last one's path.
struct CopyToFolder<'a> {
    out: &'a Path,
}

#[async_trait::async_trait]
impl Delivery for CopyToFolder<'_> {
    type Receipt = PathBuf;

    async fn deliver(
        &self,
        artifacts: &[Artifact],
        _events: &SharedSink,
        _cancel: &CancellationToken,
    ) -> Result<PathBuf, JobError> {
        let setup = |e: anyhow::Error| JobError::internal(None, format!("{e:#}"));
        std::fs::create_dir_all(self.out)
            .with_context(|| format!("creating {}", self.out.display()))
            .map_err(setup)?;
        let mut last = None;
        for artifact in artifacts {
            let dest = self.out.join(&artifact.name);
            std::fs::copy(&artifact.path, &dest)
                .with_context(|| format!("copying the artifact to {}", dest.display()))
                .map_err(setup)?;
            let record = crate::provenance::record_path(&artifact.path);
            if record.is_file() {
                let record_dest = crate::provenance::record_path(&dest);
                std::fs::copy(&record, &record_dest)
                    .with_context(|| {
                        format!("copying the build record to {}", record_dest.display())
                    })
                    .map_err(setup)?;
            }
            last = Some(dest);
        }
        last.ok_or_else(|| JobError::internal(None, "the pipeline produced no artifact"))
    }
}

fn cancel_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("cancelling the build…");
            child.cancel();
        }
    });
    token
}
