//! The `signing` and `packaging` stages: sign the bundle's binaries, build the package the
//! manifest asks for (installer, MSIX or portable ZIP), and sign the package.

use super::assets::IconSet;
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

/// Signs the exe and every DLL the bundle ships; returns the files it signed.
pub async fn sign_bundle_binaries(
    job: &JobContext,
    session: &SigningSession,
    bundle: &Bundle,
) -> Result<Vec<PathBuf>, JobError> {
    let stage = Stage::Signing;
    let mut binaries = vec![bundle.root.join(&bundle.exe_name)];
    let entries = std::fs::read_dir(&bundle.root).map_err(signing_failed)?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("dll"))
        {
            binaries.push(path);
        }
    }
    let total = binaries.len();
    for (i, path) in binaries.iter().enumerate() {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        session
            .sign_pe(path)
            .await
            .map_err(|e| signing_failed(format!("{name}: {e}")))?;
        job.events
            .info(stage, &format!("signed and verified {name}"));
        job.events
            .progress(stage, ((i + 1) * 100 / total) as u8, Some(&name));
    }
    Ok(binaries)
}

/// The Windows SDK's independent second check of files we signed and verified ourselves:
/// `signtool verify /pa /v` must accept each one, or the job fails with `SIGNING_FAILED`.
pub async fn signtool_check(
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
pub async fn package(
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
            }
            setup
        }
        Distribute::Msix => {
            job.events.stage(stage, "Building the MSIX package");
            build_msix(job, bundle, app, &icons.png, &out_dir, session).await?
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
            package::portable::write_portable_zip(bundle, app, &out, &progress)
                .map_err(package_failed)?;
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

/// Lets the NSIS build sign its uninstaller with the job's session, remembering a signing
/// failure so it is reported as `SIGNING_FAILED`, not as a packaging error.
struct UninstallerSigning<'a> {
    session: &'a SigningSession,
    failure: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl package::nsis_uninstaller::UninstallerSigner for UninstallerSigning<'_> {
    async fn sign_uninstaller(&self, exe: &Path) -> Result<(), package::PackageError> {
        self.session.sign_pe(exe).await.map_err(|e| {
            let reason = format!("uninstaller: {e}");
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
    let scratch = job.work_dir.join("nsis");
    let signer = session.map(|session| UninstallerSigning {
        session,
        failure: Default::default(),
    });
    let tool = package::nsis::Makensis {
        runner: job.runner.as_ref(),
        image: &job.config.docker.image,
        program: &makensis,
        timeout: job.config.docker.step_timeout,
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
    let pending = package::msix::write_msix(
        bundle,
        app,
        publisher.as_deref(),
        logo_png,
        &out,
        session.is_some(),
    )
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
