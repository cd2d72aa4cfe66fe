//! Recursive file/folder copy for the host runner's inputs and outputs.
//!
//! Symbolic links are never followed: inputs keep them as links (`Preserve`); outputs,
//! which a tool produced and which may point anywhere on the host, are refused (`Refuse`).
//! Anything that is not a file, folder or link (devices, sockets, FIFOs) is refused.
//! Every copy runs within a [`Budget`] (entries, bytes, the job's cancel), since a tool run
//! by project code can leave millions of files or a huge one behind.

use crate::job::budget::Budget;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Read;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymlinkPolicy {
    Preserve,
    Refuse,
}

/// Deepest folder nesting copied.
const MAX_DEPTH: usize = 128;

/// Copies the file or folder `from` to `to` (parents created; files overwritten), within
/// `budget`.
pub fn copy_tree(from: &Path, to: &Path, links: SymlinkPolicy, budget: &mut Budget) -> Result<()> {
    copy_at_depth(from, to, links, budget, 0)
}

fn copy_at_depth(
    from: &Path,
    to: &Path,
    links: SymlinkPolicy,
    budget: &mut Budget,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        bail!(
            "{} is nested more than {MAX_DEPTH} folders deep",
            from.display()
        );
    }
    budget.take_entry()?;
    let meta = fs::symlink_metadata(from).with_context(|| format!("reading {}", from.display()))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let kind = meta.file_type();
    if kind.is_symlink() {
        copy_link(from, to, links)
    } else if kind.is_dir() {
        fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
        for entry in fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
            let entry = entry?;
            copy_at_depth(
                &entry.path(),
                &to.join(entry.file_name()),
                links,
                budget,
                depth + 1,
            )?;
        }
        Ok(())
    } else if kind.is_file() {
        budget.take_bytes(meta.len())?;
        let input = fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
        let mut output =
            fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
        std::io::copy(&mut input.take(meta.len()), &mut output)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        #[cfg(unix)]
        fs::set_permissions(to, meta.permissions())?;
        // Tools that record file times (makensis) see the source's time, not the copy's.
        if let Ok(mtime) = meta.modified() {
            output.set_modified(mtime)?;
        }
        Ok(())
    } else {
        bail!("{} is not a regular file, folder or link", from.display())
    }
}

fn copy_link(from: &Path, to: &Path, links: SymlinkPolicy) -> Result<()> {
    if links == SymlinkPolicy::Refuse {
        bail!(
            "{} is a symbolic link; links are not accepted here",
            from.display()
        );
    }
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
mod tests {
    use super::*;
    use crate::config::ExtractLimits;
    use tokio_util::sync::CancellationToken;

    fn budget() -> Budget {
        Budget::new("x", ExtractLimits::default(), CancellationToken::new())
    }

    #[test]
    fn copies_nested_folders_and_files() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b")).unwrap();
        fs::write(src.path().join("a/b/c.txt"), b"deep").unwrap();
        fs::write(src.path().join("top.txt"), b"top").unwrap();
        let dst = tempfile::tempdir().unwrap();
        copy_tree(
            src.path(),
            &dst.path().join("copy"),
            SymlinkPolicy::Refuse,
            &mut budget(),
        )
        .unwrap();
        assert_eq!(
            fs::read(dst.path().join("copy/a/b/c.txt")).unwrap(),
            b"deep"
        );
        assert_eq!(fs::read(dst.path().join("copy/top.txt")).unwrap(), b"top");
    }

    #[cfg(unix)]
    #[test]
    fn links_are_preserved_or_refused() {
        let src = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        copy_tree(
            src.path(),
            &dst.path().join("p"),
            SymlinkPolicy::Preserve,
            &mut budget(),
        )
        .unwrap();
        assert_eq!(
            fs::read_link(dst.path().join("p/link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(copy_tree(
            src.path(),
            &dst.path().join("r"),
            SymlinkPolicy::Refuse,
            &mut budget()
        )
        .is_err());
    }

    #[test]
    fn a_tree_over_the_budget_is_refused() {
        let src = tempfile::tempdir().unwrap();
        for i in 0..50 {
            fs::write(src.path().join(format!("{i}")), b"x").unwrap();
        }
        let dst = tempfile::tempdir().unwrap();
        let limits = ExtractLimits {
            max_entries: 10,
            max_unpacked_bytes: 1 << 20,
        };
        let mut b = Budget::new("step output \"out\"", limits, CancellationToken::new());
        let err = copy_tree(
            src.path(),
            &dst.path().join("c"),
            SymlinkPolicy::Refuse,
            &mut b,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("PERRY_MAX_TARBALL_ENTRIES"), "{err}");
    }
}
