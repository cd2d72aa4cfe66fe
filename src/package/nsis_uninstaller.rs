//! Signing the uninstaller that makensis generates and embeds in the installer.
//!
//! makensis writes the uninstaller while it builds the installer, so it cannot be signed
//! afterwards. `!uninstfinalize` runs a command on it (`%1`) before embedding. Because
//! signing happens on the host (keys never enter a container) while makensis may run in
//! one, the build takes two passes of the same script:
//! 1. [`Finalize::Export`]: the command copies the uninstaller out as a step output. This
//!    pass gets empty placeholder files instead of the payload: the uninstaller does not
//!    contain the payload (it comes out byte-identical), and compressing the payload twice
//!    would double the build time of a large app;
//! 2. the host signs that file ([`UninstallerSigner`]);
//! 3. [`Finalize::Import`]: the command copies the signed file over `%1`.
//!
//! NSIS output is deterministic for the same script (`SetDateSave off`), so the uninstaller
//! of pass 2 is the one signed in pass 1. The copy command is the step's OS shell (`cp` on Linux hosts and images, `cmd /c copy` on Windows); it never contains
//! user input.

use super::PackageError;
use std::path::Path;

/// File name of the exported, not yet signed uninstaller (pass 1 output).
pub const UNSIGNED_UNINSTALLER: &str = "uninstaller.unsigned.exe";
/// File name of the signed uninstaller (pass 2 input).
pub const SIGNED_UNINSTALLER: &str = "uninstaller.signed.exe";

/// Signs a PE file in place (the uninstaller, and the plugin DLLs of
/// [`super::nsis_plugins`]); implemented by the host signer the pipeline uses for the app
/// exe (PFX, cloud key) and by test signers.
#[async_trait::async_trait]
pub trait UninstallerSigner: Send + Sync {
    /// Signs the PE file `exe` in place.
    async fn sign_uninstaller(&self, exe: &Path) -> Result<(), PackageError>;
}

/// What the script's `!uninstfinalize` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finalize {
    /// No uninstaller post-processing.
    None,
    /// Copy the generated uninstaller out to [`UNSIGNED_UNINSTALLER`].
    Export,
    /// Replace the generated uninstaller by [`SIGNED_UNINSTALLER`].
    Import,
}

impl Finalize {
    /// The script line for this mode (a comment for [`Finalize::None`]).
    pub(crate) fn directive(self) -> &'static str {
        match (self, cfg!(windows)) {
            (Finalize::None, _) => "; uninstaller is not post-processed",
            (Finalize::Export, false) => {
                "!uninstfinalize 'cp \"%1\" \"uninstaller.unsigned.exe\"' = 0"
            }
            (Finalize::Import, false) => {
                "!uninstfinalize 'cp \"uninstaller.signed.exe\" \"%1\"' = 0"
            }
            (Finalize::Export, true) => {
                "!uninstfinalize 'cmd /c copy /Y \"%1\" \"uninstaller.unsigned.exe\"' = 0"
            }
            (Finalize::Import, true) => {
                "!uninstfinalize 'cmd /c copy /Y \"uninstaller.signed.exe\" \"%1\"' = 0"
            }
        }
    }
}
