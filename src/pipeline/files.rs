//! Copying project folders (the assets) into the bundle. The tree is the project's, so it
//! is walked as hostile: a symlink is followed only when it resolves inside the project,
//! each real folder is copied at most once (a folder reached again, through a link loop or
//! links that fan out to the same folder, is an error), nesting stops at 64 levels, and the
//! [`Budget`] (the tarball's entry and byte limits, the job's cancel) applies.
//!
//! Synchronous and blocking: call it from a blocking thread, never on the async runtime.

use crate::job::budget::{Budget, BudgetError};
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Deepest folder nesting copied.
const MAX_DEPTH: usize = 64;

/// Copies `src` (a folder) to `dst` recursively within `budget`. A symlink is followed
/// only when it resolves inside `root`; one pointing elsewhere is an error naming it.
/// Returns the number of files copied. A [`BudgetError`] is in the error chain when the
/// budget ran out or the job was cancelled.
pub fn copy_tree_inside(src: &Path, dst: &Path, root: &Path, budget: &mut Budget) -> Result<u64> {
    let root = root
        .canonicalize()
        .with_context(|| format!("resolving {}", root.display()))?;
    let mut walk = Walk {
        root,
        visited: HashSet::new(),
        copied: 0,
        budget,
    };
    let real_src = src
        .canonicalize()
        .with_context(|| format!("resolving {}", src.display()))?;
    walk.copy_dir(src, &real_src, dst, 0)?;
    Ok(walk.copied)
}

struct Walk<'a> {
    root: PathBuf,
    /// Real (canonical) folders already copied.
    visited: HashSet<PathBuf>,
    copied: u64,
    budget: &'a mut Budget,
}

impl Walk<'_> {
    fn copy_dir(&mut self, src: &Path, real: &Path, dst: &Path, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            bail!(
                "{} is nested more than {MAX_DEPTH} folders deep",
                src.display()
            );
        }
        if !self.visited.insert(real.to_path_buf()) {
            bail!(
                "{} leads to the folder {}, which is already copied (folder links may not \
                 loop or point at the same folder twice)",
                src.display(),
                real.display()
            );
        }
        self.budget.take_entry()?;
        std::fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
        let mut entries = Vec::new();
        for entry in
            std::fs::read_dir(real).with_context(|| format!("reading {}", src.display()))?
        {
            self.budget.take_entry()?;
            entries.push(entry.with_context(|| format!("reading {}", src.display()))?);
        }
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = src.join(entry.file_name());
            let target = dst.join(entry.file_name());
            let meta = std::fs::symlink_metadata(entry.path())?;
            let (real_path, resolved) = if meta.file_type().is_symlink() {
                let real_path = entry
                    .path()
                    .canonicalize()
                    .with_context(|| format!("symlink {} points nowhere", path.display()))?;
                if !real_path.starts_with(&self.root) {
                    bail!(
                        "symlink {} points outside the project (to {})",
                        path.display(),
                        real_path.display()
                    );
                }
                let resolved = std::fs::metadata(&real_path)?;
                (real_path, resolved)
            } else {
                (entry.path(), meta)
            };
            if resolved.is_dir() {
                self.copy_dir(&path, &real_path, &target, depth + 1)?;
            } else if resolved.is_file() {
                self.copy_file(&path, &real_path, &target, resolved.len())?;
            } else {
                bail!("{} is neither a file nor a folder", path.display());
            }
        }
        Ok(())
    }

    /// Copies at most the budgeted bytes of one file (it may grow while being read).
    fn copy_file(&mut self, shown: &Path, from: &Path, to: &Path, len: u64) -> Result<()> {
        self.budget.take_bytes(len)?;
        if self.budget.is_cancelled() {
            return Err(BudgetError::Cancelled.into());
        }
        let input =
            std::fs::File::open(from).with_context(|| format!("opening {}", shown.display()))?;
        let mut output =
            std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
        let written = std::io::copy(&mut input.take(len), &mut output)
            .with_context(|| format!("copying {} to {}", shown.display(), to.display()))?;
        if written != len {
            bail!("{} changed size while being copied", shown.display());
        }
        self.copied += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExtractLimits;
    use tokio_util::sync::CancellationToken;

    fn budget() -> Budget {
        Budget::new(
            "the assets",
            ExtractLimits::default(),
            CancellationToken::new(),
        )
    }

    #[test]
    fn copies_nested_folders_and_refuses_escaping_links() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join("assets/a/b")).unwrap();
        std::fs::write(project.join("assets/a/b/c.txt"), "c").unwrap();
        std::fs::write(project.join("assets/top.txt"), "t").unwrap();
        let out = dir.path().join("out");
        assert_eq!(
            copy_tree_inside(&project.join("assets"), &out, &project, &mut budget()).unwrap(),
            2
        );
        assert_eq!(std::fs::read_to_string(out.join("a/b/c.txt")).unwrap(), "c");

        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", project.join("assets/evil")).unwrap();
            let err = copy_tree_inside(
                &project.join("assets"),
                &dir.path().join("out2"),
                &project,
                &mut budget(),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("outside the project"), "{err}");
        }
    }

    /// Folder links that loop or fan out (each level linking twice to the next) would copy
    /// exponentially many files; each real folder is copied once, so they are refused.
    #[cfg(unix)]
    #[test]
    fn link_loops_and_fan_out_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        let assets = project.join("assets");
        std::fs::create_dir_all(assets.join("d0")).unwrap();
        for level in 1..20 {
            let d = assets.join(format!("d{level}"));
            std::fs::create_dir_all(&d).unwrap();
            for link in ["a", "b"] {
                std::os::unix::fs::symlink(format!("../d{}", level - 1), d.join(link)).unwrap();
            }
        }
        std::fs::write(assets.join("d0/f.txt"), "x").unwrap();
        let err = copy_tree_inside(&assets, &dir.path().join("out"), &project, &mut budget())
            .unwrap_err()
            .to_string();
        assert!(err.contains("already copied"), "{err}");

        std::os::unix::fs::symlink("..", assets.join("d0/loop")).unwrap();
        let err = copy_tree_inside(
            &assets.join("d0"),
            &dir.path().join("out2"),
            &project,
            &mut budget(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("already copied") || err.contains("nested"),
            "{err}"
        );
    }

    #[test]
    fn the_budget_and_cancel_stop_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join("assets")).unwrap();
        for i in 0..20 {
            std::fs::write(project.join(format!("assets/{i}.bin")), vec![0u8; 100]).unwrap();
        }
        let limits = |entries, bytes| ExtractLimits {
            max_entries: entries,
            max_unpacked_bytes: bytes,
        };
        let run = |b: &mut Budget, out: &str| {
            copy_tree_inside(&project.join("assets"), &dir.path().join(out), &project, b)
        };
        let cancel = CancellationToken::new();
        let e = run(
            &mut Budget::new("the assets", limits(10, 1 << 20), cancel.clone()),
            "o1",
        )
        .unwrap_err();
        assert!(matches!(
            e.downcast_ref::<BudgetError>(),
            Some(BudgetError::TooManyEntries { .. })
        ));
        let e = run(
            &mut Budget::new("the assets", limits(1000, 1000), cancel.clone()),
            "o2",
        )
        .unwrap_err();
        assert!(e.to_string().contains("PERRY_MAX_UNPACKED_SIZE"), "{e}");
        cancel.cancel();
        let e = run(
            &mut Budget::new("the assets", limits(1000, 1 << 20), cancel),
            "o3",
        )
        .unwrap_err();
        assert_eq!(
            e.downcast_ref::<BudgetError>(),
            Some(&BudgetError::Cancelled)
        );
    }
}
