//! The real pipeline: compile (or take a precompiled bundle), icon, bundle with resources
//! and DLLs, sign, package as installer / MSIX / portable ZIP, sign the package; on Windows
//! hosts with the SDK, `signtool verify /pa` checks every signed file a second time.

use super::assets;
use super::compile::{self, CompiledApp};
use super::files::copy_tree_inside;
use super::packaging;
use super::precompiled;
use super::{Artifact, JobContext, Pipeline};
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use crate::package::{self, AppInfo, Bundle};
use crate::sign::signtool::SignTool;
use crate::sign::SigningSession;

/// The Windows build pipeline used by the worker and by `perry-ship-windows build`.
#[derive(Default)]
pub struct WindowsPipeline;

#[async_trait::async_trait]
impl Pipeline for WindowsPipeline {
    async fn run(&self, job: &JobContext) -> Result<Vec<Artifact>, JobError> {
        let app = AppInfo::from_manifest(&job.manifest);
        let exe_name = format!("{}.exe", app.ascii_name);

        let compiled = match precompiled::bundle_dir(&job.project_dir) {
            Some(dir) => precompiled::take(job, &dir)?,
            None => compile::compile(job, &exe_name).await?,
        };
        check_cancel(job, Stage::GeneratingAssets)?;
        let icons = assets::generate(job, &compiled)?;

        check_cancel(job, Stage::Bundling)?;
        let bundle = assemble_bundle(job, &compiled, &icons.ico, &exe_name, &app)?;

        check_cancel(job, Stage::Signing)?;
        let session = open_signing_session(job).await?;
        let signtool = session
            .as_ref()
            .and_then(|_| SignTool::for_host(job.config.windows_sdk_path.as_deref()));
        if let Some(session) = &session {
            let signed = packaging::sign_bundle_binaries(job, session, &bundle).await?;
            if let Some(tool) = &signtool {
                packaging::signtool_check(job, tool, &signed, Stage::Signing).await?;
            }
        }

        check_cancel(job, Stage::Packaging)?;
        let artifact = packaging::package(job, &bundle, &app, &icons, session.as_ref()).await?;
        let signed_package = artifact
            .path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("exe") || x.eq_ignore_ascii_case("msix"));
        if let (Some(tool), true) = (&signtool, signed_package) {
            packaging::signtool_check(
                job,
                tool,
                std::slice::from_ref(&artifact.path),
                Stage::Packaging,
            )
            .await?;
        }
        Ok(vec![artifact])
    }
}

fn check_cancel(job: &JobContext, stage: Stage) -> Result<(), JobError> {
    if job.cancel.is_cancelled() {
        Err(JobError::cancelled(Some(stage)))
    } else {
        Ok(())
    }
}

/// The `bundling` stage: exe + app.ico + non-system DLLs + asset folders, then resources.
fn assemble_bundle(
    job: &JobContext,
    compiled: &CompiledApp,
    ico: &std::path::Path,
    exe_name: &str,
    app: &AppInfo,
) -> Result<Bundle, JobError> {
    let stage = Stage::Bundling;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        JobError::new(
            ErrorCode::PackageFailed,
            Some(stage),
            format!("{what}: {e}"),
        )
    };
    job.events
        .stage(stage, "Bundling the exe, its DLLs, assets and resources");
    let root = job.work_dir.join("bundle");
    std::fs::create_dir_all(&root).map_err(|e| fail("creating the bundle folder", &e))?;
    let exe = root.join(exe_name);
    std::fs::copy(&compiled.exe, &exe).map_err(|e| fail("copying the exe", &e))?;
    std::fs::copy(ico, root.join("app.ico")).map_err(|e| fail("copying app.ico", &e))?;
    job.events.progress(stage, 10, Some("exe copied"));

    let dlls = package::dlls::collect_dlls(&exe, &compiled.dll_dirs, &root)
        .map_err(|e| fail("collecting DLLs", &e))?;
    for dll in &dlls {
        job.events.info(stage, &format!("bundled DLL {dll}"));
    }
    job.events.progress(stage, 30, Some("DLLs collected"));

    for dir in &compiled.asset_dirs {
        let name = dir.file_name().expect("asset folders have names");
        let files = copy_tree_inside(dir, &root.join(name), &compiled.root).map_err(|e| {
            fail(
                &format!("copying {}", name.to_string_lossy()),
                &format!("{e:#}"),
            )
        })?;
        job.events.info(
            stage,
            &format!("bundled {} ({files} files)", name.to_string_lossy()),
        );
    }
    job.events.progress(stage, 60, Some("assets copied"));

    package::resources::embed_resources(&exe, ico, app)
        .map_err(|e| fail("writing icon, version info and manifest into the exe", &e))?;
    job.events.progress(stage, 100, Some("resources embedded"));
    Ok(Bundle {
        root,
        exe_name: exe_name.to_string(),
    })
}

/// Opens the job's signing session, or says plainly that the build ships unsigned.
async fn open_signing_session(job: &JobContext) -> Result<Option<SigningSession>, JobError> {
    let stage = Stage::Signing;
    let session =
        SigningSession::from_credentials(&job.credentials, &job.http, &job.config.signing)
            .await
            .map_err(|e| JobError::new(ErrorCode::SigningFailed, Some(stage), e.to_string()))?;
    match &session {
        Some(s) => job
            .events
            .stage(stage, &format!("Signing with {}", s.method().as_str())),
        None => {
            let note = "No signing credentials: the build ships UNSIGNED";
            job.events.stage(stage, note);
            job.events.info(stage, note);
        }
    }
    Ok(session)
}
