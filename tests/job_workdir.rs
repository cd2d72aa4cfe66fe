//! Job work folders and the free-disk check.

#![cfg(unix)]

use perry_ship_windows::job::workdir::{
    ensure_free_disk, free_disk_bytes, remove_leftovers, JobWorkDir, OWNER_FILE,
};
use std::os::unix::fs::PermissionsExt;

#[test]
fn work_folder_is_private_named_by_job_and_attempt_and_removed() {
    let root = tempfile::tempdir().unwrap();
    let dir = JobWorkDir::create(root.path(), "w", "job-123", 2).unwrap();
    let name = dir
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        name.starts_with("job-123-") && name.ends_with("-a2"),
        "{name}"
    );
    assert_eq!(dir.project_dir(), dir.path().join("project"));
    let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    std::fs::create_dir_all(dir.project_dir().join("a/b")).unwrap();
    std::fs::write(dir.project_dir().join("a/b/f.txt"), "x").unwrap();
    // A read-only folder inside (as a tarball could create) does not block removal.
    std::fs::set_permissions(
        dir.project_dir().join("a"),
        std::fs::Permissions::from_mode(0o500),
    )
    .unwrap();
    let path = dir.path().to_path_buf();
    dir.remove().unwrap();
    assert!(!path.exists());
}

#[test]
fn drop_removes_the_folder() {
    let root = tempfile::tempdir().unwrap();
    let path = {
        let dir = JobWorkDir::create(root.path(), "w", "j", 1).unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        dir.path().to_path_buf()
    };
    assert!(!path.exists());
}

#[test]
fn hostile_job_ids_stay_inside_the_root() {
    let root = tempfile::tempdir().unwrap();
    for (id, prefix) in [
        ("../../etc", "______etc-"),
        ("..", "job-"),
        ("/abs", "_abs-"),
        ("a b/c\0", "a_b_c_-"),
    ] {
        let dir = JobWorkDir::create(root.path(), "w", id, 1).unwrap();
        assert_eq!(dir.path().parent().unwrap(), root.path(), "{id:?}");
        let name = dir.path().file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(prefix) && name.ends_with("-a1"),
            "{id:?}: {name}"
        );
    }
    let long = "x".repeat(10_000);
    let dir = JobWorkDir::create(root.path(), "w", &long, 1).unwrap();
    assert_eq!(dir.path().file_name().unwrap().len(), 64 + 1 + 10 + 3);
}

#[test]
fn ids_that_sanitise_alike_get_separate_folders() {
    let root = tempfile::tempdir().unwrap();
    let first = JobWorkDir::create(root.path(), "w", "p/1", 1).unwrap();
    std::fs::write(first.path().join("mine"), "first job").unwrap();
    let second = JobWorkDir::create(root.path(), "w", "p_1", 1).unwrap();
    assert_ne!(first.path(), second.path());
    assert_eq!(
        std::fs::read_to_string(first.path().join("mine")).unwrap(),
        "first job",
        "the second assignment left the first one's files alone"
    );
    assert!(!second.path().join("mine").exists());
}

#[test]
fn stale_folder_of_the_same_attempt_is_replaced() {
    let root = tempfile::tempdir().unwrap();
    let path = {
        let dir = JobWorkDir::create(root.path(), "w", "j", 1).unwrap();
        let path = dir.path().to_path_buf();
        std::mem::forget(dir); // as if the worker crashed
        path
    };
    std::fs::create_dir_all(path.join("old")).unwrap();
    let dir = JobWorkDir::create(root.path(), "w", "j", 1).unwrap();
    assert_eq!(dir.path(), path);
    assert!(!dir.path().join("old").exists());
}

#[test]
fn leftovers_of_this_worker_are_removed_and_others_kept() {
    let root = tempfile::tempdir().unwrap();
    for id in ["a", "b"] {
        let dir = JobWorkDir::create(root.path(), "worker-1", id, 1).unwrap();
        std::fs::create_dir_all(dir.project_dir().join("deep")).unwrap();
        std::mem::forget(dir); // a crash: Drop never runs
    }
    let other = JobWorkDir::create(root.path(), "worker-2", "c", 1).unwrap();
    std::fs::create_dir_all(root.path().join("not-a-job-folder")).unwrap();
    assert_eq!(remove_leftovers(root.path(), "worker-1").unwrap(), 2);
    let mut left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    left.sort();
    let mut expected = vec![
        other.path().to_path_buf(),
        root.path().join("not-a-job-folder"),
    ];
    expected.sort();
    assert_eq!(left, expected);
    assert!(other.path().join(OWNER_FILE).is_file());
    assert_eq!(
        remove_leftovers(&root.path().join("missing"), "w").unwrap(),
        0
    );
}

#[test]
fn free_disk_is_measured_and_enforced() {
    let root = tempfile::tempdir().unwrap();
    let free = free_disk_bytes(root.path()).unwrap();
    assert!(free > 0);
    ensure_free_disk(root.path(), 1).unwrap();
    // A path that does not exist yet is measured on its nearest existing parent.
    ensure_free_disk(&root.path().join("not/yet"), 1).unwrap();
    let e = ensure_free_disk(root.path(), u64::MAX)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&root.path().display().to_string()), "{e}");
    assert!(
        e.contains("free") && e.contains("required") && e.contains("TiB"),
        "{e}"
    );
}
