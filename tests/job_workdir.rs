//! Job work folders and the free-disk check.

#![cfg(unix)]

use perry_ship_windows::job::workdir::{ensure_free_disk, free_disk_bytes, JobWorkDir};
use std::os::unix::fs::PermissionsExt;

#[test]
fn work_folder_is_private_named_by_job_and_attempt_and_removed() {
    let root = tempfile::tempdir().unwrap();
    let dir = JobWorkDir::create(root.path(), "job-123", 2).unwrap();
    assert_eq!(dir.path(), root.path().join("job-123-a2"));
    assert_eq!(dir.project_dir(), root.path().join("job-123-a2/project"));
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
        let dir = JobWorkDir::create(root.path(), "j", 1).unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        dir.path().to_path_buf()
    };
    assert!(!path.exists());
}

#[test]
fn hostile_job_ids_stay_inside_the_root() {
    let root = tempfile::tempdir().unwrap();
    for (id, expected) in [
        ("../../etc", "______etc-a1"),
        ("..", "job-a1"),
        ("/abs", "_abs-a1"),
        ("a b/c\0", "a_b_c_-a1"),
    ] {
        let dir = JobWorkDir::create(root.path(), id, 1).unwrap();
        assert_eq!(dir.path(), root.path().join(expected), "{id:?}");
    }
    let long = "x".repeat(10_000);
    let dir = JobWorkDir::create(root.path(), &long, 1).unwrap();
    assert_eq!(dir.path().file_name().unwrap().len(), 64 + 3);
}

#[test]
fn stale_folder_of_the_same_attempt_is_replaced() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("j-a1/old")).unwrap();
    let dir = JobWorkDir::create(root.path(), "j", 1).unwrap();
    assert!(!dir.path().join("old").exists());
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
