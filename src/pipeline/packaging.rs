//! The `signing` and `packaging` stages: sign the bundle's binaries, build the package the
//! manifest asks for (installer, MSIX or portable ZIP), and sign the package.

use super::assets::IconSet;
use super::signature_audit;
use super::{Artifact, JobContext};
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use crate::job::manifest::Distribute;
use crate::package::{self, AppInfo, Bundle};
use crate::sign::signtool::SignTool;
use crate::sign::SigningSession;
use std::path::{Path, PathBuf};

fn signing_failed(e: impl std::fmt::Display) -> JobError {
    JobError::new(
        ErrorCode::SigningFailed,
        Some(Stage::Signing),
        e.to_string(),
    )
}

fn package_failed(e: impl std::fmt::Display) -> JobError {
    JobError::new(
        ErrorCode::PackageFailed,
        Some(Stage::Packaging),
        e.to_string(),
    )
}

/// Runs file-heavy synchronous packaging on a blocking thread, off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| JobError::internal(Some(Stage::Packaging), format!("packaging crashed: {e}")))
}

/// Signs every PE file the bundle ships: the exe, its DLLs and any PE among the assets
/// (native add-ons, helper exes), whatever its extension; returns the files it signed.
pub(crate) async fn sign_bundle_binaries(
    job: &JobContext,
    session: &SigningSession,
    bundle: &Bundle,
) -> Result<Vec<PathBuf>, JobError> {
    let stage = Stage::Signing;
    let binaries = signature_audit::bundle_pe_files(bundle).map_err(signing_failed)?;
    let total = binaries.len();
    for (i, (name, path)) in binaries.iter().enumerate() {
        session
            .sign_pe(path)
            .await
            .map_err(|e| signing_failed(format!("{name}: {e}")))?;
        job.events
            .info(stage, &format!("signed and verified {name}"));
        job.events
            .progress(stage, ((i + 1) * 100 / total.max(1)) as u8, Some(name));
    }
    Ok(binaries.into_iter().map(|(_, path)| path).collect())
}

/// The Windows SDK's independent second check of files we signed and verified ourselves:
/// `signtool verify /pa /v` must accept each one, or the job fails with `SIGNING_FAILED`.
pub(crate) async fn signtool_check(
    job: &JobContext,
    tool: &SignTool,
    files: &[PathBuf],
    stage: Stage,
) -> Result<(), JobError> {
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        tool.verify(file).await.map_err(|m| {
            JobError::new(
                ErrorCode::SigningFailed,
                Some(stage),
                format!("{name}: {m}"),
            )
        })?;
        job.events
            .info(stage, &format!("signtool verify /pa accepted {name}"));
    }
    Ok(())
}

/// Builds (and signs) the one artifact the manifest's `windows_distribute` asks for.
pub(crate) async fn package(
    job: &JobContext,
    bundle: &Bundle,
    app: &AppInfo,
    icons: &IconSet,
    session: Option<&SigningSession>,
) -> Result<Artifact, JobError> {
    let stage = Stage::Packaging;
    let out_dir = job.work_dir.join("package");
    std::fs::create_dir_all(&out_dir).map_err(package_failed)?;
    let path = match job.manifest.distribute {
        Distribute::Installer => {
            job.events.stage(stage, "Building the NSIS installer");
            let setup = build_installer(job, bundle, app, &out_dir, session).await?;
            if let Some(session) = session {
                job.events.info(stage, "signing the installer");
                session
                    .sign_pe(&setup)
                    .await
                    .map_err(|e| signing_failed(format!("installer: {e}")))?;
                let mut inside = package::nsis_plugins::signed_inputs(&nsis_scratch(job));
                inside.push((setup_name(&setup), setup.clone()));
                audit(job, session, bundle, inside)?;
            }
            setup
        }
        Distribute::Msix => {
            job.events.stage(stage, "Building the MSIX package");
            let msix = build_msix(job, bundle, app, &icons.png, &out_dir, session).await?;
            if let Some(session) = session {
                audit(job, session, bundle, Vec::new())?;
            }
            msix
        }
        Distribute::Portable => {
            job.events.stage(stage, "Building the portable ZIP");
            let out = out_dir.join(format!(
                "{}-{}-portable.zip",
                app.ascii_name, job.manifest.version
            ));
            let events = job.events.clone();
            let progress = move |done: u64, total: u64| {
                let pct = (done * 100).checked_div(total).map_or(100, |p| p as u8);
                events.progress(stage, pct, None);
            };
            let (zip_bundle, zip_app, zip) = (bundle.clone(), app.clone(), out.clone());
            blocking(move || {
                package::portable::write_portable_zip(&zip_bundle, &zip_app, &zip, &progress)
            })
            .await?
            .map_err(package_failed)?;
            if let Some(session) = session {
                audit(job, session, bundle, Vec::new())?;
            }
            out
        }
    };
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    job.events.progress(stage, 100, Some(&name));
    Ok(Artifact {
        path,
        name,
        target: "windows".into(),
    })
}

/// Scratch folder of the NSIS build (staging, and the signed inputs it keeps).
fn nsis_scratch(job: &JobContext) -> PathBuf {
    job.work_dir.join("nsis")
}

fn setup_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Checks the bundle's PE files (the payload of every artifact) plus `extra`.
fn audit(
    job: &JobContext,
    session: &SigningSession,
    bundle: &Bundle,
    extra: Vec<(String, PathBuf)>,
) -> Result<(), JobError> {
    let mut files = signature_audit::bundle_pe_files(bundle).map_err(signing_failed)?;
    files.extend(extra);
    signature_audit::check_signed(job, session, &files)
}

/// Lets the NSIS build sign its plugin DLLs and uninstaller with the job's session,
/// remembering a signing failure so it is reported as `SIGNING_FAILED`, not as a packaging
/// error.
struct UninstallerSigning<'a> {
    session: &'a SigningSession,
    failure: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl package::nsis_uninstaller::UninstallerSigner for UninstallerSigning<'_> {
    async fn sign_uninstaller(&self, exe: &Path) -> Result<(), package::PackageError> {
        self.session.sign_pe(exe).await.map_err(|e| {
            let reason = format!("installer part {}: {e}", setup_name(exe));
            *self.failure.lock().unwrap() = Some(reason.clone());
            package::PackageError::Tool {
                tool: "signer",
                reason,
            }
        })
    }
}

async fn build_installer(
    job: &JobContext,
    bundle: &Bundle,
    app: &AppInfo,
    out_dir: &Path,
    session: Option<&SigningSession>,
) -> Result<PathBuf, JobError> {
    let stage = Stage::Packaging;
    let makensis = job
        .config
        .nsis_path
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "makensis".into());
    let ctx = job.step_context(stage, out_dir.to_path_buf());
    let scratch = nsis_scratch(job);
    let signer = session.map(|session| UninstallerSigning {
        session,
        failure: Default::default(),
    });
    let tool = package::nsis::Makensis {
        runner: job.runner.as_ref(),
        image: &job.config.docker.image,
        program: &makensis,
        timeout: job.config.docker.step_timeout,
        compression: job.config.nsis_compression,
    };
    package::nsis::build_installer(
        &tool,
        &ctx,
        bundle,
        app,
        &scratch,
        signer
            .as_ref()
            .map(|s| s as &dyn package::nsis_uninstaller::UninstallerSigner),
    )
    .await
    .map_err(|e| {
        if job.cancel.is_cancelled() {
            JobError::cancelled(Some(stage))
        } else if let Some(reason) = signer
            .as_ref()
            .and_then(|s| s.failure.lock().unwrap().take())
        {
            signing_failed(reason)
        } else {
            package_failed(e)
        }
    })
}

async fn build_msix(
    job: &JobContext,
    bundle: &Bundle,
    app: &AppInfo,
    logo_png: &Path,
    out_dir: &Path,
    session: Option<&SigningSession>,
) -> Result<PathBuf, JobError> {
    let out = out_dir.join(format!("{}-{}.msix", app.ascii_name, job.manifest.version));
    let publisher = session.map(|s| s.publisher_dn());
    let signed = session.is_some();
    let (bundle, app, logo, msix) = (
        bundle.clone(),
        app.clone(),
        logo_png.to_path_buf(),
        out.clone(),
    );
    let pending = blocking(move || {
        package::msix::write_msix(&bundle, &app, publisher.as_deref(), &logo, &msix, signed)
    })
    .await?
    .map_err(package_failed)?;
    job.events
        .progress(Stage::Packaging, 80, Some("MSIX written"));
    match session {
        None => pending.finish_unsigned().map_err(package_failed),
        Some(session) => {
            let blob = pending.digests().to_blob();
            let signature = session
                .sign_appx_blob(&blob)
                .await
                .map_err(|e| signing_failed(format!("MSIX: {e}")))?;
            pending.finish_signed(&signature).map_err(package_failed)
        }
    }
}
