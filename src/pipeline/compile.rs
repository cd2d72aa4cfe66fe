//! The `compiling` stage for a source project: run `perry compile` as a sandbox step.
//! (A precompiled hand-off bundle skips it: see [`super::precompiled`].)

use super::JobContext;
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use crate::sandbox::{Step, StepError, StepInput};
use std::path::{Path, PathBuf};

/// Folders of a project (or bundle) that are shipped next to the exe when present.
pub(crate) const ASSET_FOLDERS: [&str; 4] = ["assets", "logo", "resources", "images"];

/// What the compile stage hands to the rest of the pipeline.
#[derive(Debug)]
pub(crate) struct CompiledApp {
    pub(crate) exe: PathBuf,
    /// Where the exe's non-system DLLs may be found.
    pub(crate) dll_dirs: Vec<PathBuf>,
    /// Asset folders to ship (each copied under its own name).
    pub(crate) asset_dirs: Vec<PathBuf>,
    /// The root that asset symlinks must stay inside.
    pub(crate) root: PathBuf,
    /// A ready-made icon (`app.ico` of a precompiled bundle).
    pub(crate) ico: Option<PathBuf>,
    /// The source PNG icon (from the manifest), when there is one.
    pub(crate) icon_png: Option<PathBuf>,
}

pub(super) fn existing_asset_dirs(root: &Path) -> Vec<PathBuf> {
    ASSET_FOLDERS
        .iter()
        .map(|f| root.join(f))
        .filter(|p| p.is_dir())
        .collect()
}

pub(super) fn manifest_icon(job: &JobContext) -> Option<PathBuf> {
    job.manifest
        .icon
        .as_ref()
        .map(|rel| job.project_dir.join(rel))
}

/// Runs the compiler for a source project.
pub(crate) async fn compile(job: &JobContext, exe_name: &str) -> Result<CompiledApp, JobError> {
    let stage = Stage::Compiling;
    if !job.config.can_compile() {
        return Err(JobError::internal(
            Some(stage),
            "this worker only signs precompiled bundles (PERRY_WORKER_CAPABILITIES lacks `windows`)",
        ));
    }
    let entry = &job.manifest.entry;
    if !job.project_dir.join(entry).is_file() {
        return Err(JobError::new(
            ErrorCode::CompileFailed,
            Some(stage),
            format!("entry file {entry:?} is not in the project"),
        ));
    }
    job.events.stage(
        stage,
        &format!("Compiling {entry} for Windows ({})", job.runner.describe()),
    );

    let mut argv = vec![
        job.config.perry_binary.clone(),
        "compile".into(),
        entry.clone(),
        "-o".into(),
        format!("../out/{exe_name}"),
        "--target".into(),
        "windows".into(),
    ];
    if !job.manifest.features.is_empty() {
        argv.push("--features".into());
        argv.push(job.manifest.features.join(","));
    }
    let step = Step {
        name: "compile".into(),
        image: job.config.docker.image.clone(),
        argv,
        env: Vec::new(),
        inputs: vec![StepInput {
            host_path: job.project_dir.clone(),
            dest: "project".into(),
        }],
        // A folder output: the runner creates it, the compiler need not.
        outputs: vec!["out/".into()],
        cwd: "project".into(),
        timeout: job.config.docker.step_timeout,
    };
    let compiled_dir = job.work_dir.join("compiled");
    std::fs::create_dir_all(&compiled_dir).map_err(|e| {
        JobError::internal(Some(stage), format!("creating the compile folder: {e}"))
    })?;
    let ctx = job.step_context(stage, compiled_dir.clone());
    job.events.progress(stage, 5, Some("compiler started"));
    match job.runner.run(&step, &ctx).await {
        Ok(outcome) if outcome.exit_code == 0 => {}
        Ok(outcome) => {
            return Err(JobError::new(
                ErrorCode::CompileFailed,
                Some(stage),
                format!(
                    "perry compile exited with code {} (see the log above)",
                    outcome.exit_code
                ),
            ))
        }
        Err(err) => return Err(step_error(err, stage, ErrorCode::CompileFailed)),
    }
    let out_dir = compiled_dir.join("out");
    let exe = out_dir.join(exe_name);
    if !exe.is_file() {
        return Err(JobError::new(
            ErrorCode::CompileFailed,
            Some(stage),
            format!("the compiler succeeded but wrote no {exe_name}"),
        ));
    }
    job.events.progress(stage, 100, Some("compiled"));
    Ok(CompiledApp {
        exe,
        dll_dirs: vec![out_dir],
        asset_dirs: existing_asset_dirs(&job.project_dir),
        root: job.project_dir.clone(),
        ico: None,
        icon_png: manifest_icon(job),
    })
}

/// Maps a sandbox failure to the job error of the stage it happened in.
pub(crate) fn step_error(err: StepError, stage: Stage, code: ErrorCode) -> JobError {
    match err {
        StepError::Cancelled { .. } => JobError::cancelled(Some(stage)),
        StepError::TimedOut { step, secs } => JobError::new(
            code,
            Some(stage),
            format!("step {step} timed out after {secs} s"),
        ),
        StepError::Infrastructure(e) => JobError::internal(Some(stage), format!("{e:#}")),
    }
}
