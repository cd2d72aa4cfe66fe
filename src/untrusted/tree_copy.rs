//! Copying a file or folder tree that untrusted code wrote (the project's assets, a host
//! step's inputs and outputs), under an explicit [`CopyPolicy`]: what a symbolic link
//! becomes, how deep folders may nest, whether file modes and times are kept.
//!
//! Always: each real folder is copied at most once (a folder reached again, through a link
//! loop or links that fan out to the same folder, is an error), entries are copied in name
//! order, anything that is not a file, folder or link (devices, sockets, FIFOs) is refused,
//! a file that changes size while being copied is an error, and the [`Budget`] (entries,
//! bytes, the job's cancel) applies to every entry and every file.
//!
//! Synchronous and blocking: call it from a blocking thread, never on the async runtime.

use crate::untrusted::budget::{Budget, BudgetError};
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a symbolic link in the tree becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkPolicy<'a> {
    /// Copied as a link with its target unchanged; never followed.
    Preserve,
    /// An error naming the link.
    Refuse,
    /// Followed when it resolves inside the project folder `root`; a link pointing
    /// elsewhere, or nowhere, is an error naming it.
    FollowInsideProject {
        /// The project folder links must stay inside.
        root: &'a Path,
    },
}

/// The rules for one tree copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CopyPolicy<'a> {
    /// What symbolic links in the tree become.
    pub(crate) links: LinkPolicy<'a>,
    /// Deepest folder nesting copied.
    pub(crate) max_depth: usize,
    /// Keep each file's permissions and modification time (tools such as makensis record
    /// file times); otherwise copies get default permissions and the current time.
    pub(crate) keep_file_attributes: bool,
}

impl<'a> CopyPolicy<'a> {
    /// The project's asset folders into the bundle: links followed inside the project.
    pub(crate) fn project_assets(project_root: &'a Path) -> CopyPolicy<'a> {
        CopyPolicy {
            links: LinkPolicy::FollowInsideProject { root: project_root },
            max_depth: 64,
            keep_file_attributes: false,
        }
    }

    /// A host step's input into its work folder: links stay links.
    pub(crate) fn step_input() -> CopyPolicy<'static> {
        CopyPolicy {
            links: LinkPolicy::Preserve,
            max_depth: 128,
            keep_file_attributes: true,
        }
    }

    /// A host step's output out of its work folder: a tool's link could point anywhere on
    /// the host, so links are refused.
    pub(crate) fn step_output() -> CopyPolicy<'static> {
        CopyPolicy {
            links: LinkPolicy::Refuse,
            max_depth: 128,
            keep_file_attributes: true,
        }
    }
}

/// Copies the file or folder `from` to `to` (parents created, files overwritten) under
/// `policy`, within `budget`. Returns the number of files copied. A [`BudgetError`] is in
/// the error chain when the budget ran out or the job was cancelled.
pub(crate) fn copy_tree(
    from: &Path,
    to: &Path,
    policy: CopyPolicy,
    budget: &mut Budget,
) -> Result<u64> {
    let root = match policy.links {
        LinkPolicy::FollowInsideProject { root } => Some(
            root.canonicalize()
                .with_context(|| format!("resolving {}", root.display()))?,
        ),
        _ => None,
    };
    let mut walk = Walk {
        policy,
        root,
        visited: HashSet::new(),
        copied: 0,
        budget,
    };
    walk.budget.take_entry()?;
    let meta = fs::symlink_metadata(from).with_context(|| format!("reading {}", from.display()))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    walk.copy_entry(from, from.to_path_buf(), meta, to, 0)?;
    Ok(walk.copied)
}

struct Walk<'a, 'b> {
    policy: CopyPolicy<'a>,
    /// The canonical project folder, for [`LinkPolicy::FollowInsideProject`].
    root: Option<PathBuf>,
    /// Real (canonical) folders already copied.
    visited: HashSet<PathBuf>,
    copied: u64,
    budget: &'b mut Budget,
}

impl Walk<'_, '_> {
    /// Copies one entry; `shown` names it in errors, `real` is where it is read, `meta` is
    /// its `symlink_metadata`.
    fn copy_entry(
        &mut self,
        shown: &Path,
        real: PathBuf,
        meta: fs::Metadata,
        to: &Path,
        depth: usize,
    ) -> Result<()> {
        let (real, meta) = if meta.file_type().is_symlink() {
            match self.policy.links {
                LinkPolicy::Preserve => return copy_link(&real, to),
                LinkPolicy::Refuse => bail!(
                    "{} is a symbolic link; links are not accepted here",
                    shown.display()
                ),
                LinkPolicy::FollowInsideProject { .. } => self.follow(shown, &real)?,
            }
        } else {
            (real, meta)
        };
        if meta.is_dir() {
            self.copy_dir(shown, &real, to, depth)
        } else if meta.is_file() {
            self.copy_file(shown, &real, to, &meta)
        } else {
            bail!("{} is not a regular file, folder or link", shown.display())
        }
    }

    /// Where a link leads, when that is inside the project; the target's metadata.
    fn follow(&self, shown: &Path, link: &Path) -> Result<(PathBuf, fs::Metadata)> {
        let real_path = link
            .canonicalize()
            .with_context(|| format!("symlink {} points nowhere", shown.display()))?;
        if !self.root.as_ref().is_some_and(|r| real_path.starts_with(r)) {
            bail!(
                "symlink {} points outside the project (to {})",
                shown.display(),
                real_path.display()
            );
        }
        let meta = fs::metadata(&real_path)?;
        Ok((real_path, meta))
    }

    fn copy_dir(&mut self, shown: &Path, real: &Path, to: &Path, depth: usize) -> Result<()> {
        let max = self.policy.max_depth;
        if depth > max {
            bail!("{} is nested more than {max} folders deep", shown.display());
        }
        let canonical = real
            .canonicalize()
            .with_context(|| format!("resolving {}", shown.display()))?;
        if !self.visited.insert(canonical.clone()) {
            bail!(
                "{} leads to the folder {}, which is already copied (folder links may not \
                 loop or point at the same folder twice)",
                shown.display(),
                canonical.display()
            );
        }
        fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
        let mut entries = Vec::new();
        for entry in fs::read_dir(real).with_context(|| format!("listing {}", shown.display()))? {
            self.budget.take_entry()?;
            entries.push(entry.with_context(|| format!("listing {}", shown.display()))?);
        }
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let meta = fs::symlink_metadata(entry.path())
                .with_context(|| format!("reading {}", entry.path().display()))?;
            self.copy_entry(
                &shown.join(entry.file_name()),
                entry.path(),
                meta,
                &to.join(entry.file_name()),
                depth + 1,
            )?;
        }
        Ok(())
    }

    /// Copies at most the budgeted bytes of one file (it may grow while being read).
    fn copy_file(
        &mut self,
        shown: &Path,
        from: &Path,
        to: &Path,
        meta: &fs::Metadata,
    ) -> Result<()> {
        let len = meta.len();
        self.budget.take_bytes(len)?;
        if self.budget.is_cancelled() {
            return Err(BudgetError::Cancelled.into());
        }
        let input = fs::File::open(from).with_context(|| format!("opening {}", shown.display()))?;
        let mut output =
            fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
        let written = std::io::copy(&mut input.take(len), &mut output)
            .with_context(|| format!("copying {} to {}", shown.display(), to.display()))?;
        if written != len {
            bail!("{} changed size while being copied", shown.display());
        }
        if self.policy.keep_file_attributes {
            #[cfg(unix)]
            fs::set_permissions(to, meta.permissions())?;
            if let Ok(mtime) = meta.modified() {
                output.set_modified(mtime)?;
            }
        }
        self.copied += 1;
        Ok(())
    }
}

fn copy_link(from: &Path, to: &Path) -> Result<()> {
    let target = fs::read_link(from)?;
    #[cfg(unix)]
    {
        let _ = fs::remove_file(to);
        std::os::unix::fs::symlink(&target, to).with_context(|| format!("linking {}", to.display()))
    }
    #[cfg(not(unix))]
    {
        let _ = to;
        bail!(
            "{} is a symbolic link to {}; links are not supported on this OS",
            from.display(),
            target.display()
        )
    }
}

#[cfg(test)]
mod tests;
