//! `perry-ship-windows build`: one local build through the same pipeline a hub job uses.
//!
//! The project is a folder or a `.tar.gz`; the manifest comes from `--manifest` or the
//! project's `perry.toml`; credentials from `--credentials` (none: unsigned). The artifact
//! is copied to `--out` (default `dist/`) and its path is printed last on stdout.

use super::console::ConsoleSink;
use super::project::{manifest_from_perry_toml, read_json_file};
use crate::config::Config;
use crate::job::credentials::Credentials;
use crate::job::manifest::Manifest;
use crate::pipeline::windows::WindowsPipeline;
use crate::pipeline::{JobContext, Pipeline};
use crate::sandbox::lines::strip_controls;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Project folder (with perry.toml) or a project tarball (.tar.gz).
    pub project: PathBuf,
    /// Manifest JSON (hub format) instead of perry.toml.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Credentials JSON (hub format); without it the build ships unsigned.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Packaging mode; overrides the manifest.
    #[arg(long, value_parser = ["installer", "msix", "portable"])]
    pub distribute: Option<String>,
    /// Where the artifact is copied.
    #[arg(long, default_value = "dist")]
    pub out: PathBuf,
    /// Run compile and packaging in Docker containers (overrides PERRY_DOCKER_ENABLED).
    #[arg(long, conflicts_with = "no_docker")]
    pub docker: bool,
    /// Run tools as host processes (overrides PERRY_DOCKER_ENABLED).
    #[arg(long)]
    pub no_docker: bool,
    /// Show every tool output line, not only stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

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
    Job(crate::error::JobError),
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
    let job_id = format!("local-{}", uuid::Uuid::new_v4().simple());
    std::fs::create_dir_all(&config.work_dir)
        .with_context(|| format!("creating the work dir {}", config.work_dir.display()))?;
    let work = crate::job::workdir::JobWorkDir::create(
        &config.work_dir,
        &format!("local build {}", std::process::id()),
        &job_id,
        1,
    )?;
    let project_dir = prepare_project(&args.project, work.path(), &config)?;

    let mut manifest_json = match &args.manifest {
        Some(path) => read_json_file(path)?,
        None => manifest_from_perry_toml(&project_dir)?,
    };
    if let Some(d) = &args.distribute {
        manifest_json["windows_distribute"] = serde_json::json!(d);
    }
    let manifest = Manifest::from_json(&manifest_json).map_err(|e| anyhow::anyhow!("{e}"))?;
    let credentials = match &args.credentials {
        Some(path) => {
            Credentials::from_json(&read_json_file(path)?).map_err(|e| anyhow::anyhow!("{e}"))?
        }
        None => Credentials::default(),
    };

    let runner = super::make_runner(&config).await?;
    let job = JobContext {
        job_id,
        attempt: 1,
        manifest: Arc::new(manifest),
        credentials: Arc::new(credentials),
        project_dir,
        work_dir: work.path().to_path_buf(),
        events: sink,
        cancel: cancel_on_ctrl_c(),
        runner,
        config: config.clone(),
        http: crate::job::transfer::http_client(),
        certificates: Default::default(),
    };
    let artifacts = WindowsPipeline.run(&job).await.map_err(BuildFailure::Job)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut last = None;
    for artifact in artifacts {
        let dest = args.out.join(&artifact.name);
        std::fs::copy(&artifact.path, &dest)
            .with_context(|| format!("copying the artifact to {}", dest.display()))?;
        let record = crate::provenance::record_path(&artifact.path);
        if record.is_file() {
            let record_dest = crate::provenance::record_path(&dest);
            std::fs::copy(&record, &record_dest).with_context(|| {
                format!("copying the build record to {}", record_dest.display())
            })?;
        }
        last = Some(dest);
    }
    Ok(last.context("the pipeline produced no artifact")?)
}

/// A project folder is used in place; a tarball is extracted into the work dir with the
/// same checks as a hub job's.
fn prepare_project(project: &Path, work: &Path, config: &Config) -> Result<PathBuf> {
    if project.is_dir() {
        return project
            .canonicalize()
            .with_context(|| format!("resolving {}", project.display()));
    }
    let dest = work.join("project");
    std::fs::create_dir_all(&dest)?;
    crate::provenance::inputs::remember_archive_digest(project, work)
        .with_context(|| format!("hashing {}", project.display()))?;
    crate::job::extract::extract_tar_gz(project, &dest, &config.extract_limits)
        .with_context(|| format!("extracting {}", project.display()))?;
    Ok(dest)
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
