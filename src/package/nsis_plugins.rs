//! Signed NSIS plugin DLLs. The installer extracts the plugins the script uses
//! (`System.dll`, `nsDialogs.dll` for the MUI welcome/finish pages) to `$PLUGINSDIR` and
//! loads them at run time, so Smart App Control / WDAC see them as code of their own (the
//! uninstaller's built-in confirm/progress pages load none; were one added, pass 1 builds
//! the uninstaller with the same signed folder). When the build
//! is signed, the toolchain's copies are exported from makensis's own `${NSISDIR}` (a step
//! of the same runner, so container and host builds take the plugins they compile with),
//! signed on the host for this job only, and handed to both makensis passes in a
//! `PLUGIN_DIR` folder that `!addplugindir` puts in front of the built-in one.

use super::nsis::Makensis;
use super::nsis_uninstaller::SIGNED_UNINSTALLER;
use crate::sandbox::{Step, StepInput};
use std::path::{Path, PathBuf};

/// The step folder holding the signed plugins.
pub(crate) const PLUGIN_DIR: &str = "plugins";
/// Name of the export script inside its step.
pub(crate) const EXPORT_SCRIPT: &str = "plugins.nsi";
/// The plugin target of `Target amd64-unicode`.
const PLUGIN_TARGET: &str = "amd64-unicode";

/// The plugins `templates/installer.nsi` uses (MUI2 pages: nsDialogs, which needs System).
/// A script change that pulls in another plugin must list it here; the packaging test
/// checks every DLL under `$PLUGINSDIR` of the built installer and its uninstaller.
pub(crate) const INSTALLER_PLUGINS: &[&str] = &["System.dll", "nsDialogs.dll"];

/// The script line that makes makensis take the signed plugins first.
pub(crate) fn plugin_dir_directive() -> String {
    format!("!addplugindir /{PLUGIN_TARGET} \"{PLUGIN_DIR}\"")
}

/// A script that copies [`INSTALLER_PLUGINS`] from makensis's own plugin folder into the
/// step folder (its outputs) and builds an empty probe installer. The copy command is the
/// step's OS shell, as in [`super::nsis_uninstaller`]; it holds no user input.
pub(crate) fn export_script() -> String {
    let mut script = String::from("Unicode true\nTarget amd64-unicode\n");
    for dll in INSTALLER_PLUGINS {
        let line = if cfg!(windows) {
            format!("!system 'cmd /c copy /Y \"${{NSISDIR}}\\Plugins\\{PLUGIN_TARGET}\\{dll}\" \"{dll}\"' = 0\n")
        } else {
            format!("!system 'cp \"${{NSISDIR}}/Plugins/{PLUGIN_TARGET}/{dll}\" \"{dll}\"' = 0\n")
        };
        script.push_str(&line);
    }
    script.push_str("OutFile \"plugins-probe.exe\"\nSection\nSectionEnd\n");
    script
}

/// The step input that brings the signed plugin folder into a makensis pass.
pub(crate) fn plugin_input(signed_dir: &Path) -> StepInput {
    StepInput {
        host_path: signed_dir.to_path_buf(),
        dest: PLUGIN_DIR.into(),
    }
}

/// Folder under `scratch` that keeps the signed PE inputs of a signed build (the plugin
/// DLLs under `plugins/` and the uninstaller) after [`super::nsis::build_installer`], for the caller's
/// artifact check. It lives in the job's work folder and goes with it.
pub(crate) const SIGNED_INPUTS_DIR: &str = "nsis-signed";

/// The signed PE files a signed [`super::nsis::build_installer`] put into the installer, as
/// `(name inside the installer, host path)`.
pub fn signed_inputs(scratch: &Path) -> Vec<(String, PathBuf)> {
    let dir = scratch.join(SIGNED_INPUTS_DIR);
    let mut out: Vec<(String, PathBuf)> = INSTALLER_PLUGINS
        .iter()
        .map(|dll| {
            (
                format!("$PLUGINSDIR\\{dll}"),
                dir.join(PLUGIN_DIR).join(dll),
            )
        })
        .collect();
    out.push(("Uninstall.exe".into(), dir.join(SIGNED_UNINSTALLER)));
    out
}

/// The step that runs [`export_script`] (written at `script`) and returns the plugins.
pub(crate) fn export_step(makensis: &Makensis<'_>, script: &Path) -> Step {
    Step {
        name: "nsis-plugins".into(),
        image: makensis.image.into(),
        argv: vec![makensis.program.into(), "-V2".into(), EXPORT_SCRIPT.into()],
        env: vec![],
        inputs: vec![StepInput {
            host_path: script.to_path_buf(),
            dest: EXPORT_SCRIPT.into(),
        }],
        outputs: INSTALLER_PLUGINS.iter().map(|d| d.to_string()).collect(),
        cwd: String::new(),
        timeout: makensis.timeout,
    }
}
