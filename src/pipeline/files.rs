//! Copying project folders into the bundle without following links out of the project.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Copies `src` (a folder) to `dst` recursively. A symlink is followed only when it
/// resolves inside `root`; one pointing elsewhere is an error naming it. Returns the number
/// of files copied.
pub fn copy_tree_inside(src: &Path, dst: &Path, root: &Path) -> Result<u64> {
    let root = root
        .canonicalize()
        .with_context(|| format!("resolving {}", root.display()))?;
    let mut copied = 0;
    copy_dir(src, dst, &root, &mut copied, 0)?;
    Ok(copied)
}

fn copy_dir(src: &Path, dst: &Path, root: &Path, copied: &mut u64, depth: usize) -> Result<()> {
    if depth > 64 {
        bail!("{} is nested more than 64 folders deep", src.display());
    }
    std::fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .with_context(|| format!("reading {}", src.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let target = dst.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&path)?;
        let resolved_meta = if meta.file_type().is_symlink() {
            let real = path
                .canonicalize()
                .with_context(|| format!("symlink {} points nowhere", path.display()))?;
            if !real.starts_with(root) {
                bail!(
                    "symlink {} points outside the project (to {})",
                    path.display(),
                    real.display()
                );
            }
            std::fs::metadata(&real)?
        } else {
            meta
        };
        if resolved_meta.is_dir() {
            copy_dir(&path, &target, root, copied, depth + 1)?;
        } else if resolved_meta.is_file() {
            std::fs::copy(&path, &target)
                .with_context(|| format!("copying {} to {}", path.display(), target.display()))?;
            *copied += 1;
        } else {
            bail!("{} is neither a file nor a folder", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_nested_folders_and_refuses_escaping_links() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join("assets/a/b")).unwrap();
        std::fs::write(project.join("assets/a/b/c.txt"), "c").unwrap();
        std::fs::write(project.join("assets/top.txt"), "t").unwrap();
        let out = dir.path().join("out");
        assert_eq!(
            copy_tree_inside(&project.join("assets"), &out, &project).unwrap(),
            2
        );
        assert_eq!(std::fs::read_to_string(out.join("a/b/c.txt")).unwrap(), "c");

        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", project.join("assets/evil")).unwrap();
            let err = copy_tree_inside(&project.join("assets"), &dir.path().join("out2"), &project)
                .unwrap_err()
                .to_string();
            assert!(err.contains("outside the project"), "{err}");
        }
    }
}
