//! What an unpacking accepts: one [`UnpackPolicy`] per use, written out in full so the
//! rules of each use can be read (and compared) in one place.
//!
//! Always, whatever the policy: regular files and folders are allowed; devices, FIFOs,
//! sockets and GNU sparse files are refused; every name passes the [`PathRule`]; nothing
//! is written outside the destination or through a symbolic link; file modes are 0644 or
//! 0755 (execute bit kept, never setuid/setgid), folders 0755.

use crate::config::ExtractLimits;
use crate::untrusted::path::PathRule;
use tokio_util::sync::CancellationToken;

/// Symbolic link entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symlinks {
    /// Every symlink entry is an error.
    Refuse,
    /// A link whose target, resolved from the link's folder, stays below the destination
    /// is created with its target rewritten to only walk up through real folders
    /// (`links::symlink_target`); any other link is an error.
    RewriteInside,
}

/// Hard link entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HardLinks {
    /// Every hard link entry is an error.
    Refuse,
    /// A hard link to a regular file unpacked earlier from the same archive is unpacked
    /// as a copy of it (counted against the byte budget); any other is an error.
    CopyEarlierFile,
}

/// An entry whose name is already taken by a file or link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// An error: last-wins would let an archive swap a checked file for a link.
    Refuse,
    /// The existing file or link is unlinked (never followed) and the entry takes its
    /// place. A folder in the way is still an error.
    Replace,
}

/// The rules for one unpacking.
#[derive(Clone, Debug)]
pub struct UnpackPolicy {
    /// How entry names (and symlink targets) are read and which names are refused.
    pub(crate) names: PathRule,
    /// When set, every entry (and hard link target) must lie under this first component.
    pub(crate) top_folder: Option<String>,
    /// What symbolic link entries become.
    pub(crate) symlinks: Symlinks,
    /// What hard link entries become.
    pub(crate) hard_links: HardLinks,
    /// What happens when an entry's path already exists in the destination.
    pub(crate) existing: Existing,
    /// Most entries (`max_entries`) and bytes of file data (`max_unpacked_bytes`, counted
    /// as they are written, so a gzip bomb stops early).
    pub(crate) limits: ExtractLimits,
    /// Checked before every entry and every chunk written; a cancelled unpacking stops
    /// with [`super::UnpackError::Cancelled`].
    pub(crate) cancel: CancellationToken,
}

impl UnpackPolicy {
    /// A project tarball from the hub or the command line: `\` is a separator, names
    /// that are special on Windows are refused on Windows hosts, links are kept inside the
    /// project, duplicates are refused.
    pub fn project_tarball(limits: ExtractLimits) -> UnpackPolicy {
        UnpackPolicy {
            names: PathRule::PROJECT,
            top_folder: None,
            symlinks: Symlinks::RewriteInside,
            hard_links: HardLinks::CopyEarlierFile,
            existing: Existing::Refuse,
            limits,
            cancel: CancellationToken::new(),
        }
    }

    /// A step output copied out of a container: the archive holds exactly the downloaded
    /// path `top` (its basename), names are `/`-separated, links stay inside the output
    /// folder, and what the output replaces (a file or link left there before) is unlinked.
    pub(crate) fn container_output(
        top: &str,
        limits: ExtractLimits,
        cancel: CancellationToken,
    ) -> UnpackPolicy {
        UnpackPolicy {
            names: PathRule::PORTABLE,
            top_folder: Some(top.to_string()),
            symlinks: Symlinks::RewriteInside,
            hard_links: HardLinks::CopyEarlierFile,
            existing: Existing::Replace,
            limits,
            cancel,
        }
    }
}
