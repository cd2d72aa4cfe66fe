//! Recursive file/folder copy for the host runner's inputs and outputs.
//!
//! Symbolic links are never followed: inputs keep them as links (`Preserve`); outputs,
//! which a tool produced and which may point anywhere on the host, are refused (`Refuse`).
//! Anything that is not a file, folder or link (devices, sockets, FIFOs) is refused.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymlinkPolicy {
    Preserve,
    Refuse,
}

/// Copies the file or folder `from` to `to` (parents created; files overwritten).
pub fn copy_tree(from: &Path, to: &Path, links: SymlinkPolicy) -> Result<()> {
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
            copy_tree(&entry.path(), &to.join(entry.file_name()), links)?;
        }
        Ok(())
    } else if kind.is_file() {
        fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
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

    #[test]
    fn copies_nested_folders_and_files() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b")).unwrap();
        fs::write(src.path().join("a/b/c.txt"), b"deep").unwrap();
        fs::write(src.path().join("top.txt"), b"top").unwrap();
        let dst = tempfile::tempdir().unwrap();
        copy_tree(src.path(), &dst.path().join("copy"), SymlinkPolicy::Refuse).unwrap();
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
        copy_tree(src.path(), &dst.path().join("p"), SymlinkPolicy::Preserve).unwrap();
        assert_eq!(
            fs::read_link(dst.path().join("p/link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(copy_tree(src.path(), &dst.path().join("r"), SymlinkPolicy::Refuse).is_err());
    }
}
