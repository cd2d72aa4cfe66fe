//! Hostile and normal tarballs: every refusal gives a clear error and nothing is written
//! outside the destination.
//!
//! Each case builds its tar with raw headers (names written straight into the header bytes,
//! so `..`, absolute and non-UTF-8 names reach the extractor unchanged), extracts into
//! `<tmp>/dest`, and then checks that `<tmp>` holds nothing but `dest`, the archive and an
//! untouched sentinel file.

#![cfg(unix)]

use perry_test_support::job_support::tar_builder;

use flate2::write::GzEncoder;
use flate2::Compression;
use perry_ship_windows::config::ExtractLimits;
use perry_ship_windows::untrusted::archive::{
    unpack, unpack_tar_gz_file, UnpackError, UnpackPolicy, UnpackStats,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};
use tar_builder::{tar, Tar};

/// The policy the job unpacks project tarballs with.
fn project(limits: &ExtractLimits) -> UnpackPolicy {
    UnpackPolicy::project_tarball(*limits)
}

const SENTINEL: &str = "sentinel.txt";
const SENTINEL_TEXT: &str = "untouched";

/// A temp folder with a sentinel file; the destination is `<tmp>/dest`.
struct Scene {
    tmp: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(SENTINEL), SENTINEL_TEXT).unwrap();
        Scene { tmp }
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("dest")
    }

    fn extract(&self, bytes: &[u8], limits: &ExtractLimits) -> Result<UnpackStats, UnpackError> {
        unpack(bytes, &self.dest(), &project(limits))
    }

    /// Nothing but `dest`, `allowed` and the untouched sentinel exist in the temp folder, and
    /// nothing inside `dest` is a link leading out of it.
    fn assert_nothing_outside(&self, allowed: &[&str]) {
        let mut names: Vec<String> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected: Vec<String> = ["dest", SENTINEL]
            .iter()
            .chain(allowed)
            .map(|s| s.to_string())
            .collect();
        expected.sort();
        assert_eq!(names, expected, "unexpected files next to the destination");
        assert_eq!(
            std::fs::read_to_string(self.tmp.path().join(SENTINEL)).unwrap(),
            SENTINEL_TEXT
        );
        let root = self.dest().canonicalize().unwrap();
        for path in walk(&self.dest()) {
            if let Ok(resolved) = path.canonicalize() {
                assert!(
                    resolved.starts_with(&root),
                    "{} resolves outside: {}",
                    path.display(),
                    resolved.display()
                );
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

fn limits() -> ExtractLimits {
    ExtractLimits::default()
}

/// Extracts, expects an error, checks nothing leaked; returns the error's message.
fn refused(bytes: Vec<u8>, limits: &ExtractLimits, check: impl Fn(&UnpackError) -> bool) -> String {
    let scene = Scene::new();
    let err = scene
        .extract(&bytes, limits)
        .expect_err("the tarball must be refused");
    assert!(check(&err), "unexpected error: {err:?}");
    scene.assert_nothing_outside(&[]);
    err.to_string()
}

#[test]
fn normal_project_extracts_exactly() {
    let scene = Scene::new();
    let mut t = tar();
    t.dir("./")
        .dir("src/")
        .file("src/main.ts", b"console.log('hi');\n")
        .file("src/lib/util.ts", b"export const x = 1;\n")
        .raw(b"bin/tool", EntryType::Regular, b"", 0o4755, b"#!/bin/sh\n")
        .file("assets/icon.png", &[0x89, b'P', b'N', b'G'])
        .file("empty.txt", b"")
        .symlink("src/current", "lib/util.ts")
        .symlink("link-to-root", ".")
        .raw(b"src/copy.ts", EntryType::Link, b"src/main.ts", 0o644, b"")
        .dir("src/lib/");
    let stats = scene.extract(&t.finish(), &limits()).unwrap();
    assert_eq!(
        stats,
        UnpackStats {
            entries: 11,
            bytes: 19 + 20 + 10 + 4 + 19
        }
    );

    let d = scene.dest();
    assert_eq!(
        std::fs::read_to_string(d.join("src/main.ts")).unwrap(),
        "console.log('hi');\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("src/lib/util.ts")).unwrap(),
        "export const x = 1;\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("src/current")).unwrap(),
        "export const x = 1;\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("src/copy.ts")).unwrap(),
        "console.log('hi');\n"
    );
    assert_eq!(
        std::fs::read(d.join("assets/icon.png")).unwrap(),
        vec![0x89, b'P', b'N', b'G']
    );
    assert_eq!(std::fs::metadata(d.join("empty.txt")).unwrap().len(), 0);
    let mode = |p: &str| {
        std::fs::symlink_metadata(d.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("bin/tool"), 0o755, "setuid must be dropped");
    assert_eq!(mode("src/main.ts"), 0o644);
    assert_eq!(mode("src/lib"), 0o755);
    assert_eq!(
        std::fs::metadata(d.join("src/main.ts")).unwrap().mtime(),
        1_700_000_000
    );
    assert!(std::fs::symlink_metadata(d.join("src/current"))
        .unwrap()
        .file_type()
        .is_symlink());
    let mut all: Vec<String> = walk(&d)
        .iter()
        .map(|p| p.strip_prefix(&d).unwrap().to_string_lossy().into_owned())
        .collect();
    all.sort();
    assert_eq!(
        all,
        [
            "assets",
            "assets/icon.png",
            "bin",
            "bin/tool",
            "empty.txt",
            "link-to-root",
            "src",
            "src/copy.ts",
            "src/current",
            "src/lib",
            "src/lib/util.ts",
            "src/main.ts"
        ]
    );
    scene.assert_nothing_outside(&[]);
}

#[test]
fn gzip_file_extracts() {
    let scene = Scene::new();
    let archive = scene.tmp.path().join("project.tar.gz");
    let gz = GzEncoder::new(
        std::fs::File::create(&archive).unwrap(),
        Compression::fast(),
    );
    let mut t = Tar::new(gz);
    t.file("a/b.txt", b"hello");
    t.finish().finish().unwrap();
    let stats = unpack_tar_gz_file(&archive, &scene.dest(), &project(&limits())).unwrap();
    assert_eq!(
        stats,
        UnpackStats {
            entries: 1,
            bytes: 5
        }
    );
    assert_eq!(
        std::fs::read_to_string(scene.dest().join("a/b.txt")).unwrap(),
        "hello"
    );
    scene.assert_nothing_outside(&["project.tar.gz"]);

    let bad = scene.tmp.path().join("bad.tar.gz");
    std::fs::write(&bad, "this is not gzip").unwrap();
    let err =
        unpack_tar_gz_file(&bad, &scene.tmp.path().join("dest2"), &project(&limits())).unwrap_err();
    assert!(matches!(err, UnpackError::Corrupt(_)), "{err:?}");
    let missing = unpack_tar_gz_file(
        &scene.tmp.path().join("nope.tar.gz"),
        &scene.dest(),
        &project(&limits()),
    )
    .unwrap_err();
    assert!(missing.to_string().contains("nope.tar.gz"), "{missing}");
}

#[test]
fn parent_dir_entries_are_refused() {
    for name in [
        "../evil.txt",
        "a/../../evil.txt",
        "..\\evil.txt",
        "./../evil.txt",
    ] {
        let mut t = tar();
        t.file("ok.txt", b"fine").file(name, b"evil");
        let msg = refused(t.finish(), &limits(), |e| {
            matches!(e, UnpackError::UnsafePath { .. })
        });
        assert!(msg.contains("evil.txt") && msg.contains(".."), "{msg}");
    }
}

#[test]
fn absolute_paths_are_refused() {
    let scene = Scene::new();
    let target = scene.tmp.path().join("abs-evil.txt");
    for name in [
        target.to_str().unwrap(),
        "/etc/evil-perry-test",
        "C:/evil.txt",
        "c:evil.txt",
    ] {
        let mut t = tar();
        t.file(name, b"evil");
        let msg = refused(t.finish(), &limits(), |e| {
            matches!(e, UnpackError::UnsafePath { .. })
        });
        assert!(msg.contains("evil"), "{msg}");
    }
    assert!(!target.exists());
    assert!(!Path::new("/etc/evil-perry-test").exists());
}

#[test]
fn writing_through_a_symlink_is_refused() {
    // A link that stays inside is allowed, but nothing is ever written through it.
    let mut t = tar();
    t.dir("real/")
        .symlink("alias", "real")
        .file("alias/x.txt", b"through the link");
    let msg = refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::ThroughSymlink { .. })
    });
    assert!(msg.contains("alias"), "{msg}");

    let mut t = tar();
    t.symlink("up", ".").file("up/up/x.txt", b"x");
    refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::ThroughSymlink { .. })
    });
}

#[test]
fn symlinks_pointing_outside_are_refused() {
    for target in ["..", "../sentinel.txt", "a/../../x", "/etc/passwd", "/"] {
        let mut t = tar();
        t.symlink("escape", target).file("escape/x.txt", b"x");
        let msg = refused(t.finish(), &limits(), |e| {
            matches!(e, UnpackError::LinkEscapes { .. })
        });
        assert!(msg.contains("escape"), "{msg}");
    }
    // A chain of links that are each inside cannot be combined to leave: `r -> .` then
    // `t -> r/..` would resolve to the parent of the destination through `r`.
    let scene = Scene::new();
    let mut t = tar();
    t.symlink("r", ".").symlink("t", "r/..");
    // `t` is rewritten to point at the destination itself, so it stays inside.
    scene.extract(&t.finish(), &limits()).unwrap();
    assert_eq!(
        scene.dest().join("t").canonicalize().unwrap(),
        scene.dest().canonicalize().unwrap()
    );
    scene.assert_nothing_outside(&[]);
}

#[test]
fn hardlinks_outside_are_refused() {
    for target in ["/etc/passwd", "../sentinel.txt", "missing.txt", "dir"] {
        let mut t = tar();
        t.dir("dir/")
            .raw(b"passwd", EntryType::Link, target.as_bytes(), 0o644, b"");
        let msg = refused(t.finish(), &limits(), |e| {
            matches!(e, UnpackError::HardLink { .. })
        });
        assert!(msg.contains("passwd") && msg.contains("hard link"), "{msg}");
    }
    // A hard link to an in-tree symlink is not followed either.
    let mut t = tar();
    t.symlink("l", ".")
        .raw(b"h", EntryType::Link, b"l", 0o644, b"");
    refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::HardLink { .. })
    });
}

#[test]
fn devices_and_fifos_are_refused() {
    for (kind, word) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "FIFO"),
    ] {
        let mut t = tar();
        t.raw(b"dev/thing", kind, b"", 0o666, b"");
        let msg = refused(t.finish(), &limits(), |e| {
            matches!(e, UnpackError::SpecialFile { .. })
        });
        assert!(msg.contains(word) && msg.contains("dev/thing"), "{msg}");
    }
}

#[test]
fn too_many_entries_are_refused() {
    let scene = Scene::new();
    let archive = scene.tmp.path().join("many.tar.gz");
    let gz = GzEncoder::new(
        std::fs::File::create(&archive).unwrap(),
        Compression::fast(),
    );
    let mut t = Tar::new(gz);
    for i in 0..200_000u32 {
        t.file(&format!("d{}/f{i}", i / 1000), b"");
    }
    t.finish().finish().unwrap();
    // The default limit is 100 000; a smaller one keeps the test from creating 100 000
    // files, the check is the same.
    assert_eq!(ExtractLimits::default().max_entries, 100_000);
    let limits = ExtractLimits {
        max_entries: 5_000,
        ..ExtractLimits::default()
    };
    let err = unpack_tar_gz_file(&archive, &scene.dest(), &project(&limits)).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooManyEntries { limit: 5_000 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("5000"), "{err}");
    scene.assert_nothing_outside(&["many.tar.gz"]);
    let extracted = walk(&scene.dest()).iter().filter(|p| p.is_file()).count();
    assert_eq!(extracted, 5_000);
}

#[test]
fn gzip_bomb_stops_at_the_byte_limit() {
    let small = ExtractLimits {
        max_entries: 100_000,
        max_unpacked_bytes: 2 << 20,
    };
    // One file that declares more than the limit: refused before anything is written.
    let mut t = tar();
    t.big_file("big.bin", 3 << 20, 0);
    let msg = refused(t.finish(), &small, |e| {
        matches!(e, UnpackError::TooLarge { .. })
    });
    assert!(msg.contains("big.bin") && msg.contains("2097152"), "{msg}");

    // Many files each under the limit, 64 MiB in all, compressed to a small .tar.gz: the
    // extraction stops once the bytes actually written pass the limit.
    let scene = Scene::new();
    let archive = scene.tmp.path().join("bomb.tar.gz");
    let gz = GzEncoder::new(
        std::fs::File::create(&archive).unwrap(),
        Compression::fast(),
    );
    let mut t = Tar::new(gz);
    for i in 0..64 {
        t.big_file(&format!("zeros{i}.bin"), 1 << 20, 0);
    }
    t.finish().finish().unwrap();
    assert!(
        std::fs::metadata(&archive).unwrap().len() < 1 << 20,
        "the bomb should be small"
    );
    let err = unpack_tar_gz_file(&archive, &scene.dest(), &project(&small)).unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err:?}");
    let written: u64 = walk(&scene.dest())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(written <= 2 << 20, "{written} bytes written past the limit");
    scene.assert_nothing_outside(&["bomb.tar.gz"]);
}

#[test]
fn very_deep_and_very_long_paths_are_refused() {
    let deep = "a/".repeat(10_000) + "f.txt";
    let mut t = tar();
    t.raw(deep.as_bytes(), EntryType::Regular, b"", 0o644, b"x");
    let msg = refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::NameTooLong { .. })
    });
    assert!(msg.len() < 400, "message too long: {} bytes", msg.len());

    let deep = "d/".repeat(300) + "f.txt";
    let mut t = tar();
    t.raw(deep.as_bytes(), EntryType::Regular, b"", 0o644, b"x");
    let msg = refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::TooDeep { depth: 301, .. })
    });
    assert!(msg.contains("301") && msg.contains("256"), "{msg}");

    // A long link target is also capped.
    let mut t = tar();
    t.raw(
        b"l",
        EntryType::Symlink,
        "x/".repeat(3000).as_bytes(),
        0o777,
        b"",
    );
    let msg = refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::NameTooLong { .. })
    });
    assert!(msg.contains("link target"), "{msg}");
}

#[test]
fn non_utf8_names_are_refused() {
    let mut t = tar();
    t.raw(
        b"caf\xe9.txt",
        EntryType::Regular,
        b"",
        0o644,
        b"latin-1 name",
    );
    let msg = refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::NonUtf8Name { .. })
    });
    assert!(msg.contains("UTF-8") && msg.contains("caf"), "{msg}");
}

#[test]
fn duplicate_entries_are_refused() {
    let mut t = tar();
    t.file("a.txt", b"first").file("a.txt", b"second");
    let msg = refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::Duplicate { .. })
    });
    assert!(msg.contains("a.txt") && msg.contains("duplicate"), "{msg}");

    // Swapping a checked file for a link is the attack duplicates enable.
    let mut t = tar();
    t.file("main.ts", b"ok").symlink("main.ts", "/etc/passwd");
    refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::LinkEscapes { .. })
    });
    let mut t = tar();
    t.file("main.ts", b"ok").symlink("main.ts", "other.ts");
    refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::Duplicate { .. })
    });
    let mut t = tar();
    t.file("x", b"file").file("x/y", b"under a file");
    refused(t.finish(), &limits(), |e| {
        matches!(e, UnpackError::Duplicate { .. })
    });
}

#[test]
fn garbage_and_truncated_archives_are_corrupt() {
    let mut t = tar();
    t.big_file("f.bin", 10_000, 7);
    let mut bytes = t.finish();
    bytes.truncate(3000);
    let scene = Scene::new();
    let err = scene.extract(&bytes, &limits()).unwrap_err();
    assert!(matches!(err, UnpackError::Corrupt(_)), "{err:?}");
    scene.assert_nothing_outside(&[]);

    // A huge GNU long-name header is refused without being read into memory.
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(EntryType::GNULongName);
    h.set_size(1 << 40);
    h.set_cksum();
    let err = Scene::new().extract(h.as_bytes(), &limits()).unwrap_err();
    assert!(matches!(err, UnpackError::NameTooLong { .. }), "{err:?}");
}
