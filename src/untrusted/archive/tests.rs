//! The container-output policy (top folder, replacing, `/`-only names) on hand-built tars;
//! the project policy is covered by `tests/job_extract.rs` and the fuzz targets.

use super::*;
use crate::config::ExtractLimits;
use std::fs;
use tar::EntryType::{Block, Directory, Link, Regular, Symlink};
use tokio_util::sync::CancellationToken;

const LIMITS: ExtractLimits = ExtractLimits {
    max_entries: 100,
    max_unpacked_bytes: 1 << 20,
};

/// (path, entry type, link target, contents)
type Entry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);

/// A tar built by hand so hostile headers are possible (the tar crate's builder refuses some).
fn raw_tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o755);
        header.set_size(data.len() as u64);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn output_policy() -> UnpackPolicy {
    UnpackPolicy::container_output("dist", LIMITS, CancellationToken::new())
}

fn unpack_output(entries: &[Entry]) -> (tempfile::TempDir, Result<UnpackStats, UnpackError>) {
    let dir = tempfile::tempdir().unwrap();
    let result = unpack(
        &raw_tar(entries)[..],
        &dir.path().join("out"),
        &output_policy(),
    );
    (dir, result)
}

#[test]
fn normal_output_unpacks_with_our_modes() {
    let (dir, result) = unpack_output(&[
        ("dist/", Directory, "", b""),
        ("dist/app.exe", Regular, "", b"MZ..."),
        ("dist/lib/", Directory, "", b""),
        ("dist/lib/current", Symlink, "../app.exe", b""),
        ("dist/copy.exe", Link, "dist/app.exe", b""),
    ]);
    assert_eq!(
        result.unwrap(),
        UnpackStats {
            entries: 5,
            bytes: 10
        }
    );
    let out = dir.path().join("out/dist");
    assert_eq!(fs::read(out.join("app.exe")).unwrap(), b"MZ...");
    assert_eq!(fs::read(out.join("lib/current")).unwrap(), b"MZ...");
    assert_eq!(fs::read(out.join("copy.exe")).unwrap(), b"MZ...");
}

#[test]
fn traversal_and_special_files_are_refused() {
    let cases: &[&[Entry]] = &[
        &[("/etc/evil", Regular, "", b"x")],
        &[("dist/../../evil", Regular, "", b"x")],
        &[("other/file", Regular, "", b"x")],
        &[("dist/abs", Symlink, "/etc/passwd", b"")],
        &[("dist/up", Symlink, "../../etc", b"")],
        &[("dist/sneaky", Symlink, "sub/../../..", b"")],
        &[("dist/dev", Block, "", b"")],
        &[("dist/hl", Link, "/etc/passwd", b"")],
        &[("dist\\win", Regular, "", b"x")],
        &[
            ("dist/a", Regular, "", b"x"),
            ("dist/hl", Link, "other/a", b""),
        ],
    ];
    for entries in cases {
        let (_dir, result) = unpack_output(entries);
        assert!(
            result.is_err(),
            "accepted {:?}",
            entries[entries.len() - 1].0
        );
    }
}

#[cfg(unix)]
#[test]
fn never_writes_through_a_symlink() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    // The link itself is refused (absolute), but even a link planted beforehand is not followed.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    fs::create_dir_all(root.join("dist")).unwrap();
    std::os::unix::fs::symlink(&target, root.join("dist/planted")).unwrap();
    let tar = raw_tar(&[("dist/planted/x", Regular, "", b"boom")]);
    assert!(unpack(&tar[..], &root, &output_policy()).is_err());
    std::os::unix::fs::symlink(outside.path().join("f"), root.join("dist/file-link")).unwrap();
    let tar = raw_tar(&[("dist/file-link", Regular, "", b"boom")]);
    unpack(&tar[..], &root, &output_policy()).unwrap();
    assert!(
        !outside.path().join("f").exists(),
        "wrote through a symlink"
    );
    assert_eq!(fs::read(root.join("dist/file-link")).unwrap(), b"boom");
}

#[test]
fn limits_are_enforced() {
    let big = vec![0u8; 2 << 20];
    let (_d, r) = unpack_output(&[("dist", Regular, "", &big)]);
    assert!(r.unwrap_err().to_string().contains("larger"));
    let many: Vec<String> = (0..101).map(|i| format!("dist/{i}")).collect();
    let entries: Vec<Entry> = many
        .iter()
        .map(|n| (n.as_str(), Regular, "", &b""[..]))
        .collect();
    let (_d, r) = unpack_output(&entries);
    assert!(r.unwrap_err().to_string().contains("entries"));
}

#[test]
fn policies_differ_only_where_they_say() {
    let dup: &[Entry] = &[
        ("dist/a", Regular, "", b"1"),
        ("dist/a", Regular, "", b"22"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let project = UnpackPolicy::project_tarball(LIMITS);
    let err = unpack(&raw_tar(dup)[..], &dir.path().join("p"), &project).unwrap_err();
    assert!(matches!(err, UnpackError::Duplicate { .. }), "{err:?}");
    let (out, result) = unpack_output(dup);
    result.unwrap();
    assert_eq!(fs::read(out.path().join("out/dist/a")).unwrap(), b"22");

    let mut strict = output_policy();
    strict.symlinks = Symlinks::Refuse;
    strict.hard_links = HardLinks::Refuse;
    let link: &[Entry] = &[("dist/l", Symlink, "a", b"")];
    let err = unpack(&raw_tar(link)[..], &dir.path().join("s"), &strict).unwrap_err();
    assert!(matches!(err, UnpackError::LinkEscapes { .. }), "{err:?}");
    let hard: &[Entry] = &[
        ("dist/a", Regular, "", b"1"),
        ("dist/h", Link, "dist/a", b""),
    ];
    let err = unpack(&raw_tar(hard)[..], &dir.path().join("h"), &strict).unwrap_err();
    assert!(matches!(err, UnpackError::HardLink { .. }), "{err:?}");
}

#[test]
fn a_cancelled_unpacking_stops() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let policy = UnpackPolicy::container_output("dist", LIMITS, cancel);
    let dir = tempfile::tempdir().unwrap();
    let tar = raw_tar(&[("dist/a", Regular, "", b"1")]);
    let err = unpack(&tar[..], dir.path(), &policy).unwrap_err();
    assert!(matches!(err, UnpackError::Cancelled), "{err:?}");
    assert!(!dir.path().join("dist").exists());
}
