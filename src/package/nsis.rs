//! The NSIS installer `<App>-<version>-Setup.exe`: `templates/installer.nsi` rendered with
//! NSIS-escaped values and generated File/Delete/RMDir lists, then built by `makensis` as a
//! runner step (a container, or a host process).
//!
//! Payload files go into the step under neutral names (`payload/f00000`) and are installed
//! with `File /oname=<real name>`, so no bundle file name is ever a compile-time path in
//! the script; the real names only appear as escaped runtime strings.

use super::bundle::BundleListing;
use super::escape::{nsis_string, nsis_version_string};
use super::nsis_compression::{plan, CompressionPlan, NsisCompression};
use super::nsis_plugins::{self, INSTALLER_PLUGINS, SIGNED_INPUTS_DIR};
use super::nsis_uninstaller::{
    Finalize, UninstallerSigner, SIGNED_UNINSTALLER, UNSIGNED_UNINSTALLER,
};
use super::template::{render, INSTALLER_NSI};
use super::{AppInfo, Bundle, PackageError};
use crate::sandbox::{Runner, Step, StepContext, StepInput};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the rendered script inside the step.
pub const SCRIPT_NAME: &str = "installer.nsi";
const ICON_NAME: &str = "installer.ico";
const PAYLOAD_DIR: &str = "payload";
/// Empty files under the payload's names, copied in as `payload` by the uninstaller-export
/// pass (see [`super::nsis_uninstaller`]).
const PLACEHOLDER_DIR: &str = "placeholders";

/// `<ascii name>-<version>-Setup.exe`; a version with characters unfit for a file name
/// falls back to the 4-part version.
pub fn installer_file_name(app: &AppInfo) -> String {
    format!("{}-{}-Setup.exe", app.ascii_name, file_version(app))
}

/// The version for artifact file names: the display version if it is plain, else 4 parts.
pub(crate) fn file_version(app: &AppInfo) -> String {
    let v = &app.version_display;
    if !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    {
        v.clone()
    } else {
        app.version_string4()
    }
}

/// Neutral file name of the `index`-th payload file inside the payload folder.
fn payload_leaf(index: usize) -> String {
    format!("f{index:05}")
}

/// Neutral in-step source name of the `index`-th payload file (as the script spells it).
fn payload_name(index: usize) -> String {
    format!("{PAYLOAD_DIR}\\{}", payload_leaf(index))
}

fn win_path(rel: &str) -> String {
    rel.replace('/', "\\")
}

/// The bundle listing a staged installer was written for, and how it is compressed.
#[derive(Clone, Debug)]
pub struct StagedPayload {
    /// The files the installer installs.
    pub(crate) listing: BundleListing,
    /// The compressor and the files it stores uncompressed.
    pub compression: CompressionPlan,
}

/// Renders the installer script for `bundle` with the default (`auto`) compression.
pub fn render_installer_script(
    bundle: &Bundle,
    app: &AppInfo,
    out_name: &str,
) -> Result<String, PackageError> {
    render_installer_script_with(bundle, app, out_name, NsisCompression::Auto)
}

/// Renders the installer script for `bundle` under `compression` (its listing must be the
/// one whose payload is staged with [`stage_payload`]).
pub fn render_installer_script_with(
    bundle: &Bundle,
    app: &AppInfo,
    out_name: &str,
    compression: NsisCompression,
) -> Result<String, PackageError> {
    let listing = bundle.list()?;
    let staged = StagedPayload {
        compression: plan(&listing, compression)?,
        listing,
    };
    let has_icon = bundle.root.join("app.ico").is_file();
    render_with_listing(bundle, &staged, app, out_name, has_icon, Finalize::None)
}

fn render_with_listing(
    bundle: &Bundle,
    staged: &StagedPayload,
    app: &AppInfo,
    out_name: &str,
    has_icon: bool,
    finalize: Finalize,
) -> Result<String, PackageError> {
    let listing = &staged.listing;
    let q = nsis_string;
    let vi = nsis_version_string;
    let mut install = String::new();
    let mut uninstall = String::new();
    // Root first, then each folder (sorted, so parents precede children); files by folder.
    let mut folders: Vec<&str> = vec![""];
    folders.extend(listing.dirs.iter().map(String::as_str));
    for folder in &folders {
        let out_path = if folder.is_empty() {
            "$INSTDIR".to_string()
        } else {
            format!("$INSTDIR\\{}", q("file name", &win_path(folder))?)
        };
        writeln!(install, "  SetOutPath \"{out_path}\"").unwrap();
        for (i, f) in listing.files.iter().enumerate() {
            let parent = f.rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            if parent != *folder {
                continue;
            }
            let leaf = f.rel.rsplit('/').next().unwrap_or(&f.rel);
            let stored = staged.compression.is_stored(i);
            if stored {
                install.push_str("  SetCompress off\n");
            }
            writeln!(
                install,
                "  File \"/oname={}\" \"{}\"",
                q("file name", leaf)?,
                payload_name(i)
            )
            .unwrap();
            if stored {
                install.push_str("  SetCompress auto\n");
            }
            writeln!(
                uninstall,
                "  Delete \"$INSTDIR\\{}\"",
                q("file name", &win_path(&f.rel))?
            )
            .unwrap();
        }
    }
    let mut dirs_deepest_first: Vec<&String> = listing.dirs.iter().collect();
    dirs_deepest_first.sort_by(|a, b| {
        b.matches('/')
            .count()
            .cmp(&a.matches('/').count())
            .then(b.cmp(a))
    });
    let mut uninstall_dirs = String::new();
    for d in dirs_deepest_first {
        writeln!(
            uninstall_dirs,
            "  RMDir \"$INSTDIR\\{}\"",
            q("folder name", &win_path(d))?
        )
        .unwrap();
    }
    let icon_defines = if has_icon {
        format!("!define MUI_ICON \"{ICON_NAME}\"\n!define MUI_UNICON \"{ICON_NAME}\"")
    } else {
        "; no app icon: NSIS default installer icon".to_string()
    };
    let estimated_kib = listing.total_size().div_ceil(1024);
    // Signed builds: pass 1 exports the built-in plugins, pass 2 takes their signed copies.
    let plugin_dir = match finalize {
        Finalize::None => "; built-in NSIS plugins (unsigned build)".to_string(),
        Finalize::Export => nsis_plugins::export_lines(),
        Finalize::Import => nsis_plugins::plugin_dir_directive(),
    };
    let app_name = q("app_name", &app.app_name)?;
    render(
        "installer.nsi",
        INSTALLER_NSI,
        &[
            ("comment_name", &app.ascii_name.replace(['\r', '\n'], " ")),
            ("app_name", &app_name),
            ("install_dir", &app_name),
            ("out_file", &q("out_file", out_name)?),
            ("version_display", &q("version", &app.version_display)?),
            ("version4", &app.version_string4()),
            ("publisher", &q("company_name", &app.publisher)?),
            ("description", &q("file_description", &app.description)?),
            ("exe_name", &q("exe_name", &bundle.exe_name)?),
            ("reg_key", &q("bundle_id", &app.bundle_id)?),
            ("icon_defines", &icon_defines),
            ("compressor", staged.compression.directives()),
            ("install_files", install.trim_end()),
            ("uninstall_files", uninstall.trim_end()),
            ("uninstall_dirs", uninstall_dirs.trim_end()),
            ("estimated_size_kib", &estimated_kib.to_string()),
            ("uninstaller_finalize", finalize.directive()),
            ("plugin_dir", &plugin_dir),
            ("vi_app_name", &vi("app_name", &app.app_name)?),
            ("vi_publisher", &vi("company_name", &app.publisher)?),
            ("vi_copyright", &vi("copyright", &app.copyright)?),
            ("vi_description", &vi("file_description", &app.description)?),
            ("vi_version_display", &vi("version", &app.version_display)?),
        ],
    )
}

/// Writes `<dir>/installer.nsi` (UTF-8 with BOM) for `finalize`, `<dir>/installer.ico`
/// and the payload under neutral names (hard links where possible, copies otherwise); for
/// [`Finalize::Export`] also empty placeholders under the same names. The payload is
/// sampled once to plan its `compression`. Returns the listing and plan the script was
/// written for.
pub fn stage_payload(
    bundle: &Bundle,
    app: &AppInfo,
    out_name: &str,
    dir: &Path,
    finalize: Finalize,
    compression: NsisCompression,
) -> Result<StagedPayload, PackageError> {
    let listing = bundle.list()?;
    let staged = StagedPayload {
        compression: plan(&listing, compression)?,
        listing,
    };
    let listing = &staged.listing;
    let icon = bundle.root.join("app.ico");
    if icon.is_file() {
        link_or_copy(&icon, &dir.join(ICON_NAME))?;
    }
    restage_script(bundle, &staged, app, out_name, dir, finalize)?;
    let payload = dir.join(PAYLOAD_DIR);
    std::fs::create_dir_all(&payload)
        .map_err(PackageError::io(format!("creating {}", payload.display())))?;
    for (i, f) in listing.files.iter().enumerate() {
        link_or_copy(&f.source, &payload.join(payload_leaf(i)))?;
    }
    if finalize == Finalize::Export {
        let placeholders = dir.join(PLACEHOLDER_DIR);
        std::fs::create_dir_all(&placeholders)
            .map_err(PackageError::io("creating the payload placeholders"))?;
        for i in 0..listing.files.len() {
            std::fs::write(placeholders.join(payload_leaf(i)), b"")
                .map_err(PackageError::io("creating the payload placeholders"))?;
        }
    }
    // makensis stores each file's time in the installer: the source date, not the copy's.
    crate::package::source_date::pin_tree_mtimes(dir)
        .map_err(PackageError::io("pinning the staged files' times"))?;
    Ok(staged)
}

/// Writes `<dir>/installer.nsi` for `finalize`; the icon is used when it is staged in
/// `dir`. Pass 2 of the signed-uninstaller build calls it to replace pass 1's script,
/// keeping the staged payload and its compression plan (`staged` is what
/// [`stage_payload`] returned), so both passes build the same uninstaller.
pub fn restage_script(
    bundle: &Bundle,
    staged: &StagedPayload,
    app: &AppInfo,
    out_name: &str,
    dir: &Path,
    finalize: Finalize,
) -> Result<(), PackageError> {
    let has_icon = dir.join(ICON_NAME).is_file();
    let script = render_with_listing(bundle, staged, app, out_name, has_icon, finalize)?;
    write_script(dir, &script)
}

fn write_script(dir: &Path, script: &str) -> Result<(), PackageError> {
    let mut bytes = Vec::with_capacity(script.len() + 3);
    bytes.extend_from_slice(b"\xEF\xBB\xBF");
    bytes.extend_from_slice(script.as_bytes());
    std::fs::write(dir.join(SCRIPT_NAME), bytes).map_err(PackageError::io("writing installer.nsi"))
}

fn link_or_copy(from: &Path, to: &Path) -> Result<(), PackageError> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(PackageError::io(format!("copying {}", from.display())))
}

/// How makensis runs: through which runner, in which image, under which program name,
/// with which deadline per pass.
#[derive(Clone, Copy)]
pub struct Makensis<'a> {
    /// Runs makensis: containers or host processes.
    pub runner: &'a dyn Runner,
    /// Toolchain image (ignored by the host runner).
    pub image: &'a str,
    /// `makensis`, or `PERRY_BUILD_NSIS_PATH`.
    pub program: &'a str,
    /// Deadline of each makensis pass.
    pub timeout: Duration,
    /// `PERRY_NSIS_COMPRESSION`.
    pub compression: NsisCompression,
}

/// Builds `<ascii>-<version>-Setup.exe` into `ctx.output_dir` with makensis as a runner
/// step and returns its path. With a `signer`, every PE makensis adds is Authenticode-signed:
/// pass 1 exports the uninstaller makensis generates and the toolchain's plugin DLLs (see
/// [`super::nsis_plugins`]), the host signs them, pass 2 embeds the signed files (see
/// [`super::nsis_uninstaller`]); each makensis run is its own step. The signed inputs stay in `SIGNED_INPUTS_DIR`
/// (see [`nsis_plugins::signed_inputs`]).
pub async fn build_installer(
    makensis: &Makensis<'_>,
    ctx: &StepContext,
    bundle: &Bundle,
    app: &AppInfo,
    scratch: &Path,
    signer: Option<&dyn UninstallerSigner>,
) -> Result<PathBuf, PackageError> {
    let out_name = installer_file_name(app);
    let stage = scratch.join("nsis-input");
    let result = async {
        let mk = MakensisStep {
            tool: makensis,
            stage: &stage,
        };
        let first_pass = match signer {
            None => Finalize::None,
            Some(_) => Finalize::Export,
        };
        fresh_dir(&stage)?;
        let staged = stage_payload(
            bundle,
            app,
            &out_name,
            &stage,
            first_pass,
            makensis.compression,
        )?;
        ctx.events.info(ctx.stage, &staged.compression.describe());
        match signer {
            None => {
                mk.run(ctx, Finalize::None, &[], std::slice::from_ref(&out_name))
                    .await?
            }
            Some(signer) => {
                let signed_dir = scratch.join(SIGNED_INPUTS_DIR);
                fresh_dir(&signed_dir)?;
                let pass1_out = scratch.join("nsis-uninstaller");
                fresh_dir(&pass1_out)?;
                let pass1_ctx = StepContext {
                    output_dir: pass1_out.clone(),
                    ..ctx.clone()
                };
                let mut pass1_outputs = vec![UNSIGNED_UNINSTALLER.to_string()];
                pass1_outputs.extend(INSTALLER_PLUGINS.iter().map(|dll| dll.to_string()));
                mk.run(&pass1_ctx, Finalize::Export, &[], &pass1_outputs)
                    .await?;
                let plugins = signed_dir.join(nsis_plugins::PLUGIN_DIR);
                fresh_dir(&plugins)?;
                for dll in INSTALLER_PLUGINS {
                    let signed = plugins.join(dll);
                    std::fs::rename(pass1_out.join(dll), &signed)
                        .map_err(PackageError::io("moving an exported plugin"))?;
                    signer.sign_uninstaller(&signed).await?;
                }
                crate::package::source_date::pin_tree_mtimes(&plugins)
                    .map_err(PackageError::io("pinning the signed plugins' times"))?;
                let uninstaller = signed_dir.join(SIGNED_UNINSTALLER);
                std::fs::rename(pass1_out.join(UNSIGNED_UNINSTALLER), &uninstaller)
                    .map_err(PackageError::io("moving the exported uninstaller"))?;
                signer.sign_uninstaller(&uninstaller).await?;
                restage_script(bundle, &staged, app, &out_name, &stage, Finalize::Import)?;
                let extra = [
                    StepInput {
                        host_path: uninstaller,
                        dest: SIGNED_UNINSTALLER.into(),
                    },
                    nsis_plugins::plugin_input(&plugins),
                ];
                let pass2 = mk
                    .run(
                        ctx,
                        Finalize::Import,
                        &extra,
                        std::slice::from_ref(&out_name),
                    )
                    .await;
                let _ = std::fs::remove_dir_all(&pass1_out);
                pass2?;
            }
        }
        Ok::<(), PackageError>(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&stage);
    result?;
    let out = ctx.output_dir.join(&out_name);
    if !out.is_file() {
        return Err(PackageError::Tool {
            tool: "makensis",
            reason: format!("{out_name} was not produced"),
        });
    }
    Ok(out)
}

fn fresh_dir(dir: &Path) -> Result<(), PackageError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(PackageError::io(format!("clearing {}", dir.display())))?;
    }
    std::fs::create_dir_all(dir).map_err(PackageError::io(format!("creating {}", dir.display())))
}

/// makensis invocations over one staged folder.
struct MakensisStep<'a> {
    tool: &'a Makensis<'a>,
    stage: &'a Path,
}

impl MakensisStep<'_> {
    async fn run(
        &self,
        ctx: &StepContext,
        finalize: Finalize,
        extra: &[StepInput],
        outputs: &[String],
    ) -> Result<(), PackageError> {
        let mut inputs = vec![StepInput {
            host_path: self.stage.join(SCRIPT_NAME),
            dest: SCRIPT_NAME.into(),
        }];
        let payload_source = match finalize {
            Finalize::Export => PLACEHOLDER_DIR,
            Finalize::None | Finalize::Import => PAYLOAD_DIR,
        };
        inputs.push(StepInput {
            host_path: self.stage.join(payload_source),
            dest: PAYLOAD_DIR.into(),
        });
        if self.stage.join(ICON_NAME).is_file() {
            inputs.push(StepInput {
                host_path: self.stage.join(ICON_NAME),
                dest: ICON_NAME.into(),
            });
        }
        inputs.extend_from_slice(extra);
        let step = Step {
            name: "nsis".into(),
            image: self.tool.image.into(),
            argv: vec![
                self.tool.program.into(),
                "-V2".into(),
                "-INPUTCHARSET".into(),
                "UTF8".into(),
                SCRIPT_NAME.into(),
            ],
            env: vec![],
            inputs,
            outputs: outputs.to_vec(),
            cwd: String::new(),
            timeout: self.tool.timeout,
        };
        self.launch(&step, ctx).await
    }

    async fn launch(&self, step: &Step, ctx: &StepContext) -> Result<(), PackageError> {
        let outcome = self
            .tool
            .runner
            .run(step, ctx)
            .await
            .map_err(|e| PackageError::Tool {
                tool: "makensis",
                reason: e.to_string(),
            })?;
        if outcome.exit_code != 0 {
            return Err(PackageError::Tool {
                tool: "makensis",
                reason: format!(
                    "exited with code {} (its output is in the job log)",
                    outcome.exit_code
                ),
            });
        }
        Ok(())
    }
}
