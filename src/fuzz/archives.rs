//! Fuzz targets for the tar unpacker (`untrusted::archive`) under its two policies:
//! project tarballs and container copy-outs. Seeds are real tarballs (files, folders,
//! links, GNU long names, PAX headers, a gzip bomb); the structure-aware mutation edits one
//! header field (name, type, link target, size, mode) and fixes the header checksum, so
//! the mutant gets past the tar reader into our checks.
//!
//! Invariants: nothing appears outside the destination, the sentinel file next to it is
//! untouched, every link under the destination stays inside it, and the entry and byte
//! limits hold on disk.

use super::engine::{self, class, Rng, Target};
use super::mutate::{self, INTERESTING_NAMES};
use crate::config::ExtractLimits;
use crate::untrusted::archive::{self, UnpackPolicy};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const LIMITS: ExtractLimits = ExtractLimits {
    max_entries: 64,
    max_unpacked_bytes: 256 * 1024,
};
const SENTINEL: &[u8] = b"outside the destination";

fn builder_seed(top: &str, gnu: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, link: &str, data: &[u8]| {
        let mut h = if gnu {
            tar::Header::new_gnu()
        } else {
            tar::Header::new_ustar()
        };
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            b.append_link(&mut h, path, link).unwrap();
        } else {
            b.append_data(&mut h, path, data).unwrap();
        }
    };
    add(&format!("{top}/"), tar::EntryType::Directory, "", b"");
    add(
        &format!("{top}/main.ts"),
        tar::EntryType::Regular,
        "",
        b"console.log(1)\n",
    );
    add(
        &format!("{top}/sub/deep/file.bin"),
        tar::EntryType::Regular,
        "",
        &[7u8; 3000],
    );
    add(
        &format!("{top}/link"),
        tar::EntryType::Symlink,
        "main.ts",
        b"",
    );
    add(
        &format!("{top}/sub/up"),
        tar::EntryType::Symlink,
        "../main.ts",
        b"",
    );
    add(
        &format!("{top}/hard"),
        tar::EntryType::Link,
        &format!("{top}/main.ts"),
        b"",
    );
    let long = format!("{top}/{}/x.txt", "long-folder-name".repeat(9));
    add(&long, tar::EntryType::Regular, "", b"long");
    b.into_inner().unwrap()
}

fn pax_seed(top: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = tar::Builder::new(&mut out);
    b.append_pax_extensions([("path", format!("{top}/pax-name.txt").as_bytes())])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "short", &b"pax"[..]).unwrap();
    b.finish().unwrap();
    drop(b);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A tar whose one file holds 4 MiB of zeros, gzipped to a few KiB.
fn gzip_bomb(top: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    let zeros = vec![0u8; 4 << 20];
    h.set_size(zeros.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, format!("{top}/zeros"), &zeros[..])
        .unwrap();
    gzip(&b.into_inner().unwrap())
}

fn seeds(top: &str) -> Vec<Vec<u8>> {
    let plain = builder_seed(top, false);
    vec![
        gzip(&plain),
        plain,
        builder_seed(top, true),
        pax_seed(top),
        gzip_bomb(top),
    ]
}

/// Offsets of the blocks that look like tar headers (their checksum is right).
fn header_offsets(data: &[u8]) -> Vec<usize> {
    (0..data.len() / 512)
        .map(|i| i * 512)
        .filter(|&at| {
            let block = &data[at..at + 512];
            let stored = std::str::from_utf8(&block[148..156])
                .ok()
                .and_then(|s| u32::from_str_radix(s.trim_matches(['\0', ' ']), 8).ok());
            stored.is_some() && stored == Some(checksum(block))
        })
        .collect()
}

fn checksum(block: &[u8]) -> u32 {
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum()
}

fn set_field(block: &mut [u8], range: std::ops::Range<usize>, value: &[u8]) {
    let field = &mut block[range];
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Edits one header field of an uncompressed tar, then fixes that header's checksum.
fn mutate_tar(data: &mut Vec<u8>, top: &str, rng: &mut Rng) {
    let headers = header_offsets(data);
    if headers.is_empty() {
        mutate::bytes(data, &[], rng);
        return;
    }
    let at = *rng.pick(&headers);
    let block = &mut data[at..at + 512];
    let pick = *rng.pick(INTERESTING_NAMES);
    let name = if rng.chance(2) {
        format!("{top}/{pick}")
    } else {
        pick.to_string()
    };
    match rng.below(6) {
        0 => set_field(block, 0..100, name.as_bytes()),
        1 => block[156] = *rng.pick(b"0123456789LKxgSDV\0"),
        2 => set_field(block, 157..257, name.as_bytes()),
        3 => {
            let size = *rng.pick(&[0u64, 1, 511, 512, 4096, 1 << 20, 1 << 33, u64::MAX >> 30]);
            set_field(block, 124..136, format!("{size:011o}").as_bytes());
        }
        4 => set_field(
            block,
            100..108,
            format!("{:07o}", rng.below(0o10000)).as_bytes(),
        ),
        _ => set_field(block, 345..500, name.as_bytes()),
    }
    let sum = checksum(block);
    set_field(block, 148..156, format!("{sum:06o}\0 ").as_bytes());
}

/// The destination layout one check uses: `root/dest` plus a sentinel next to it.
struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
}

fn scene() -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("sentinel"), SENTINEL).unwrap();
    let dest = root.join("dest");
    Scene {
        _dir: dir,
        root,
        dest,
    }
}

/// The invariants after one extraction, whatever its result.
fn verify(scene: &Scene) -> Result<(), String> {
    let mut names: Vec<String> = std::fs::read_dir(&scene.root)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    if names.iter().any(|n| n != "dest" && n != "sentinel") {
        return Err(format!("wrote next to the destination: {names:?}"));
    }
    if std::fs::read(scene.root.join("sentinel")).ok().as_deref() != Some(SENTINEL) {
        return Err("the sentinel next to the destination changed".into());
    }
    let (mut leaves, mut bytes) = (0u64, 0u64);
    let mut stack = vec![scene.dest.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            leaves += 1;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| e.to_string())?;
                if !stays_inside(&scene.dest, &dir, &target) {
                    return Err(format!(
                        "link {} -> {} leaves",
                        path.display(),
                        target.display()
                    ));
                }
            } else {
                bytes += meta.len();
            }
        }
    }
    if leaves > LIMITS.max_entries || bytes > LIMITS.max_unpacked_bytes {
        return Err(format!(
            "{leaves} entries / {bytes} bytes on disk exceed the limits"
        ));
    }
    Ok(())
}

/// Lexically: does `target`, read from folder `from`, stay under `dest`?
fn stays_inside(dest: &Path, from: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let Ok(rel) = from.strip_prefix(dest) else {
        return false;
    };
    let mut depth = rel.components().count() as i64;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

#[test]
fn fuzz_project_tarball() {
    engine::run(Target {
        name: "project_tarball",
        seeds: seeds("proj"),
        mutate: &|data, rng| mutate_tar(data, "proj", rng),
        check: &|input| {
            let scene = scene();
            let project = UnpackPolicy::project_tarball(LIMITS);
            let result = if input.starts_with(&[0x1f, 0x8b]) {
                let gz = scene.root.parent().unwrap().join("in.tar.gz");
                std::fs::write(&gz, input).map_err(|e| e.to_string())?;
                archive::unpack_tar_gz_file(&gz, &scene.dest, &project)
            } else {
                archive::unpack(input, &scene.dest, &project)
            };
            verify(&scene)?;
            Ok(match result {
                Ok(_) => "ok".into(),
                Err(e) => class(&e.to_string()),
            })
        },
        max_time: Duration::from_secs(2),
        max_memory: 64 << 20,
    });
}

#[test]
fn fuzz_copy_out_unpack() {
    let seeds: Vec<Vec<u8>> = seeds("dist")
        .into_iter()
        .filter(|s| !s.starts_with(&[0x1f, 0x8b]))
        .collect();
    engine::run(Target {
        name: "copy_out_unpack",
        seeds,
        mutate: &|data, rng| mutate_tar(data, "dist", rng),
        check: &|input| {
            let scene = scene();
            let policy = UnpackPolicy::container_output("dist", LIMITS, CancellationToken::new());
            let result = archive::unpack(input, &scene.dest, &policy);
            verify(&scene)?;
            Ok(match result {
                Ok(_) => "ok".into(),
                Err(e) => class(&format!("{e:#}")),
            })
        },
        max_time: Duration::from_secs(2),
        max_memory: 64 << 20,
    });
}
