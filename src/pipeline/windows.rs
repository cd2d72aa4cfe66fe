//! The real pipeline: compile (or take a precompiled bundle), icon, bundle with resources
//! and DLLs, sign, package as installer / MSIX / portable ZIP, sign the package; on Windows
//! hosts with the SDK, `signtool verify /pa` checks every signed file a second time.

use super::assets;
use super::compile::{self, CompiledApp};
use super::packaging;
use super::precompiled;
use super::{Artifact, JobContext, Pipeline};
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use crate::package::{self, AppInfo, Bundle};
use crate::sign::signtool::SignTool;
use crate::sign::SigningSession;
use crate::untrusted::budget::{Budget, BudgetError};
use crate::untrusted::tree_copy::{copy_tree, CopyPolicy};
use std::sync::Arc;

/// The Windows build pipeline used by the worker and by `perry-ship-windows build`.
#[derive(Default)]
pub struct WindowsPipeline;

#[async_trait::async_trait]
impl Pipeline for WindowsPipeline {
    async fn run(&self, job: &JobContext) -> Result<Vec<Artifact>, JobError> {
        // The certificate is checked before anything is built: a bad one fails in seconds.
        let session = open_signing_session(job).await?;
        self.run_with_session(job, session).await
    }
}

impl WindowsPipeline {
    /// The pipeline with a signing session already open (`None`: unsigned). The job's
    /// child process runs this with a session whose key stays in the worker.
    pub(crate) async fn run_with_session(
        &self,
        job: &JobContext,
        session: Option<SigningSession>,
    ) -> Result<Vec<Artifact>, JobError> {
        let app = AppInfo::from_manifest(&job.manifest);
        let exe_name = format!("{}.exe", app.ascii_name);
        let compiled = match precompiled::bundle_dir(&job.project_dir) {
            Some(dir) => precompiled::take(job, &dir)?,
            None => compile::compile(job, &exe_name).await?,
        };
        check_cancel(job, Stage::GeneratingAssets)?;
        let compiled = Arc::new(compiled);
        let c = compiled.clone();
        let icons = off_runtime(job, Stage::GeneratingAssets, move |job| {
            assets::generate(&job, &c)
        })
        .await?;

        check_cancel(job, Stage::Bundling)?;
        let (ico, app_info) = (icons.ico.clone(), app.clone());
        let bundle = off_runtime(job, Stage::Bundling, move |job| {
            assemble_bundle(&job, &compiled, &ico, &exe_name, &app_info)
        })
        .await?;

        check_cancel(job, Stage::Signing)?;
        announce_signing(job, session.as_ref());
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
        super::provenance::write_record(job, &artifact, session.as_ref()).await?;
        if let Some(session) = &session {
            for line in crate::sign::summary::summary_lines(session) {
                job.events.info(Stage::Packaging, &line);
            }
        }
        Ok(vec![artifact])
    }
}

/// Runs file-heavy synchronous work (icon decoding, PE editing, the asset walk) on a
/// blocking thread, so the async runtime keeps serving the hub link and other jobs.
async fn off_runtime<T: Send + 'static>(
    job: &JobContext,
    stage: Stage,
    work: impl FnOnce(JobContext) -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    let job = job.clone();
    tokio::task::spawn_blocking(move || work(job))
        .await
        .map_err(|e| JobError::internal(Some(stage), format!("{stage} crashed: {e}")))?
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

    let mut budget = Budget::new(
        "the asset folders",
        job.config.extract_limits,
        job.cancel.clone(),
    );
    for dir in &compiled.asset_dirs {
        let name = dir.file_name().expect("asset folders have names");
        let policy = CopyPolicy::project_assets(&compiled.root);
        let files = copy_tree(dir, &root.join(name), policy, &mut budget).map_err(|e| {
            if e.downcast_ref::<BudgetError>() == Some(&BudgetError::Cancelled) {
                return JobError::cancelled(Some(stage));
            }
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
    package::source_date::pin_pe_timestamp(&exe)
        .map_err(|e| fail("pinning the exe's PE timestamp", &e))?;
    job.events.progress(stage, 100, Some("resources embedded"));
    Ok(Bundle {
        root,
        exe_name: exe_name.to_string(),
    })
}

/// Opens the job's signing session (checking its certificate) and records the certificate
/// for `/metrics`. Runs before compiling; what it found is logged by [`announce_signing`].
pub(crate) async fn open_signing_session(
    job: &JobContext,
) -> Result<Option<SigningSession>, JobError> {
    let session =
        SigningSession::from_credentials(&job.credentials, &job.http, &job.config.signing)
            .await
            .map_err(|e| {
                JobError::new(
                    ErrorCode::SigningFailed,
                    Some(Stage::Signing),
                    e.to_string(),
                )
            })?;
    if let Some(s) = &session {
        job.certificates.record(s.method(), s.certificate());
    }
    Ok(session)
}

/// The `signing` stage header: the method, the certificate (with any expiry warning) and
/// the timestamp servers, or a plain note that the build ships unsigned.
fn announce_signing(job: &JobContext, session: Option<&SigningSession>) {
    let stage = Stage::Signing;
    let Some(s) = session else {
        let note = "No signing credentials: the build ships UNSIGNED";
        job.events.stage(stage, note);
        job.events.info(stage, note);
        return;
    };
    job.events
        .stage(stage, &format!("Signing with {}", s.method().as_str()));
    for line in crate::sign::summary::certificate_lines(s.certificate()) {
        job.events.info(stage, &line);
    }
    match s.timestamp_servers() {
        Some(urls) => job
            .events
            .info(stage, &format!("timestamp servers, in order: {}", urls.join(", "))),
        None => job.events.info(
            stage,
            "NOTE: timestamping is OFF (windows_timestamp_url: none): the signatures stop being valid when the certificate expires",
        ),
    }
}
