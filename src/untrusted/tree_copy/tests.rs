//! The three copy policies: assets (links followed inside the project), step inputs (links
//! kept) and step outputs (links refused), with the budget and cancel.

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

fn copy_assets(src: &Path, dst: &Path, project: &Path, budget: &mut Budget) -> Result<u64> {
    copy_tree(src, dst, CopyPolicy::project_assets(project), budget)
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
        copy_assets(&project.join("assets"), &out, &project, &mut budget()).unwrap(),
        2
    );
    assert_eq!(std::fs::read_to_string(out.join("a/b/c.txt")).unwrap(), "c");

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc", project.join("assets/evil")).unwrap();
        let err = copy_assets(
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
    let err = copy_assets(&assets, &dir.path().join("out"), &project, &mut budget())
        .unwrap_err()
        .to_string();
    assert!(err.contains("already copied"), "{err}");

    std::os::unix::fs::symlink("..", assets.join("d0/loop")).unwrap();
    let err = copy_assets(
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
        copy_assets(&project.join("assets"), &dir.path().join(out), &project, b)
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

#[test]
fn step_copies_keep_nested_folders_and_files() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("a/b")).unwrap();
    fs::write(src.path().join("a/b/c.txt"), b"deep").unwrap();
    fs::write(src.path().join("top.txt"), b"top").unwrap();
    let dst = tempfile::tempdir().unwrap();
    copy_tree(
        src.path(),
        &dst.path().join("copy"),
        CopyPolicy::step_output(),
        &mut budget(),
    )
    .unwrap();
    assert_eq!(
        fs::read(dst.path().join("copy/a/b/c.txt")).unwrap(),
        b"deep"
    );
    assert_eq!(fs::read(dst.path().join("copy/top.txt")).unwrap(), b"top");
    let file = dst.path().join("single.txt");
    copy_tree(
        &src.path().join("top.txt"),
        &file,
        CopyPolicy::step_input(),
        &mut budget(),
    )
    .unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"top");
}

#[cfg(unix)]
#[test]
fn step_links_are_preserved_or_refused() {
    let src = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
    let dst = tempfile::tempdir().unwrap();
    copy_tree(
        src.path(),
        &dst.path().join("p"),
        CopyPolicy::step_input(),
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
        CopyPolicy::step_output(),
        &mut budget()
    )
    .is_err());
}

#[test]
fn a_step_tree_over_the_budget_is_refused() {
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
        CopyPolicy::step_output(),
        &mut b,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("PERRY_MAX_TARBALL_ENTRIES"), "{err}");
}
