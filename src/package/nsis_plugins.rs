//! Signed NSIS plugin DLLs. The installer extracts the plugins the script uses
//! (`System.dll`, `nsDialogs.dll` for the MUI welcome/finish pages) to `$PLUGINSDIR` and
//! loads them at run time, so Smart App Control / WDAC see them as code of their own (the
//! uninstaller's built-in confirm/progress pages load none, so pass 1 may build it with the
//! built-in plugins; the packaging test checks every DLL of the installer and of its
//! uninstaller). When the build is signed, pass 1 (which exports
//! the uninstaller, see [`super::nsis_uninstaller`]) also copies the toolchain's plugins out
//! of makensis's own `${NSISDIR}` (so container and host builds take the plugins they
//! compile with, and no extra tool run is needed); they are signed on the host for this job
//! only and handed to pass 2 in a `PLUGIN_DIR` folder that `!addplugindir` puts in front of
//! the built-in one.

use super::nsis_uninstaller::SIGNED_UNINSTALLER;
use crate::sandbox::StepInput;
use std::path::{Path, PathBuf};

/// The step folder holding the signed plugins.
pub(crate) const PLUGIN_DIR: &str = "plugins";
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

/// Script lines that copy [`INSTALLER_PLUGINS`] from makensis's own plugin folder into the
/// step folder while the script compiles (pass 1 of a signed build returns them with the
/// uninstaller). The copy command is the step's OS shell, as in [`super::nsis_uninstaller`];
/// it holds no user input.
pub(crate) fn export_lines() -> String {
    let mut lines = String::from("; export the built-in plugins to be signed for pass 2\n");
    for dll in INSTALLER_PLUGINS {
        let line = if cfg!(windows) {
            format!("!system 'cmd /c copy /Y \"${{NSISDIR}}\\Plugins\\{PLUGIN_TARGET}\\{dll}\" \"{dll}\"' = 0\n")
        } else {
            format!("!system 'cp \"${{NSISDIR}}/Plugins/{PLUGIN_TARGET}/{dll}\" \"{dll}\"' = 0\n")
        };
        lines.push_str(&line);
    }
    lines
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
