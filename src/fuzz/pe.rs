//! Fuzz targets for PE files the project or its compiler made: resources (read back and
//! embedded with editpe), DLL import discovery and bundling, and the Authenticode digest,
//! signature embedding and checksum. Seeds come from a minimal PE32+ built here (a `.text`
//! and an `.idata` section), with our own resources embedded for the resource seeds.
//!
//! Structure-aware mutation overwrites 32-bit fields in the headers and the resource
//! section with edge values and self-references (`0x8000_0000 | offset` makes a resource
//! entry point at a table, which is how loops and DAGs are made), and import names with
//! path-like names.

use super::engine::{self, class, Rng, Target};
use super::mutate::{self, put_u32, INTERESTING_U32};
use crate::package::{dlls, resources, AppInfo};
use crate::sign::pe as authenticode;
use std::path::Path;
use std::time::Duration;

const TEXT_RVA: u32 = 0x1000;
const IDATA_RVA: u32 = 0x2000;
const SECTION_ALIGN: u32 = 0x1000;

fn put16(d: &mut [u8], at: usize, v: u16) {
    d[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// The import section for `dlls` at `IDATA_RVA`: descriptors, one thunk each (importing
/// `Func`), the hint/name entry and the DLL names.
fn idata(dlls: &[&str]) -> Vec<u8> {
    let n = dlls.len();
    let desc_len = (n + 1) * 20;
    let thunks_at = desc_len;
    let hint_at = thunks_at + n * 32;
    let names_at = hint_at + 8;
    let mut d = vec![0u8; names_at];
    d[hint_at + 2..hint_at + 7].copy_from_slice(b"Func\0");
    for (i, dll) in dlls.iter().enumerate() {
        let name_rva = IDATA_RVA + d.len() as u32;
        d.extend_from_slice(dll.as_bytes());
        d.push(0);
        let ilt = thunks_at + i * 32;
        let iat = ilt + 16;
        for t in [ilt, iat] {
            d[t..t + 8].copy_from_slice(&u64::from(IDATA_RVA + hint_at as u32).to_le_bytes());
        }
        let at = i * 20;
        put_u32(&mut d, at, IDATA_RVA + ilt as u32);
        put_u32(&mut d, at + 12, name_rva);
        put_u32(&mut d, at + 16, IDATA_RVA + iat as u32);
    }
    d
}

/// A minimal, well-formed PE32+ console exe importing `dlls`.
pub(crate) fn minimal_pe(dlls: &[&str]) -> Vec<u8> {
    let imports = idata(dlls);
    let idata_raw = (imports.len() as u32).div_ceil(0x200) * 0x200;
    let mut d = vec![0u8; 0x400 + idata_raw as usize];
    d[..2].copy_from_slice(b"MZ");
    put_u32(&mut d, 0x3c, 0x40);
    d[0x40..0x44].copy_from_slice(b"PE\0\0");
    put16(&mut d, 0x44, 0x8664);
    put16(&mut d, 0x46, 2);
    put16(&mut d, 0x54, 240);
    put16(&mut d, 0x56, 0x0022);
    let o = 0x58;
    put16(&mut d, o, 0x20b);
    put_u32(&mut d, o + 4, 0x200);
    put_u32(&mut d, o + 8, idata_raw);
    put_u32(&mut d, o + 16, TEXT_RVA);
    put_u32(&mut d, o + 20, TEXT_RVA);
    d[o + 24..o + 32].copy_from_slice(&0x1_4000_0000u64.to_le_bytes());
    put_u32(&mut d, o + 32, SECTION_ALIGN);
    put_u32(&mut d, o + 36, 0x200);
    put16(&mut d, o + 40, 6);
    put16(&mut d, o + 48, 6);
    let image_size = IDATA_RVA + idata_raw.div_ceil(SECTION_ALIGN) * SECTION_ALIGN;
    put_u32(&mut d, o + 56, image_size);
    put_u32(&mut d, o + 60, 0x200);
    put16(&mut d, o + 68, 3);
    put16(&mut d, o + 70, 0x8160);
    for (at, v) in [
        (72, 0x10_0000u64),
        (80, 0x1000),
        (88, 0x10_0000),
        (96, 0x1000),
    ] {
        d[o + at..o + at + 8].copy_from_slice(&v.to_le_bytes());
    }
    put_u32(&mut d, o + 108, 16);
    put_u32(&mut d, o + 112 + 8, IDATA_RVA);
    put_u32(&mut d, o + 112 + 12, imports.len() as u32);
    let sections = [
        (b".text\0\0\0", TEXT_RVA, 0x200u32, 0x200u32, 0x6000_0020u32),
        (b".idata\0\0", IDATA_RVA, idata_raw, 0x400, 0xc000_0040),
    ];
    for (i, (name, rva, raw_size, raw_at, flags)) in sections.iter().enumerate() {
        let s = 0x148 + i * 40;
        d[s..s + 8].copy_from_slice(*name);
        put_u32(&mut d, s + 8, *raw_size);
        put_u32(&mut d, s + 12, *rva);
        put_u32(&mut d, s + 16, *raw_size);
        put_u32(&mut d, s + 20, *raw_at);
        put_u32(&mut d, s + 36, *flags);
    }
    d[0x200] = 0xc3;
    d[0x400..0x400 + imports.len()].copy_from_slice(&imports);
    d
}

pub(crate) fn app_info() -> AppInfo {
    AppInfo {
        app_name: "Fuzz App".into(),
        ascii_name: "Fuzz App".into(),
        bundle_id: "com.example.fuzz".into(),
        version4: [1, 2, 3, 4],
        version_display: "1.2.3.4".into(),
        publisher: "Example".into(),
        description: "fuzzing".into(),
        copyright: "(c) 2026".into(),
        uac_level: crate::job::manifest::UacLevel::AsInvoker,
        dpi_aware: "true/pm".into(),
    }
}

/// The minimal PE with our icon, VERSIONINFO and manifest embedded.
pub(crate) fn pe_with_resources(dir: &Path) -> Vec<u8> {
    let exe = dir.join("seed.exe");
    std::fs::write(&exe, minimal_pe(&["KERNEL32.dll"])).unwrap();
    let ico = dir.join("seed.ico");
    std::fs::write(&ico, super::images::test_ico(dir)).unwrap();
    resources::embed_resources(&exe, &ico, &app_info()).expect("seed resources embed");
    std::fs::read(exe).unwrap()
}

/// File range of the section named `name`, from the section table.
pub(crate) fn section_range(d: &[u8], name: &[u8]) -> Option<(usize, usize)> {
    let pe = mutate::u32_at(d, 0x3c)? as usize;
    let count = u16::from_le_bytes(d.get(pe + 6..pe + 8)?.try_into().ok()?) as usize;
    let opt = u16::from_le_bytes(d.get(pe + 20..pe + 22)?.try_into().ok()?) as usize;
    let table = pe + 24 + opt;
    (0..count.min(96)).find_map(|i| {
        let s = table + i * 40;
        let n = d.get(s..s + 8)?;
        if !n.starts_with(name) {
            return None;
        }
        let size = mutate::u32_at(d, s + 16)? as usize;
        let at = mutate::u32_at(d, s + 20)? as usize;
        (at < d.len()).then(|| (at, (at + size).min(d.len())))
    })
}

fn mutate_pe(data: &mut Vec<u8>, rng: &mut Rng) {
    let rsrc = section_range(data, b".rsrc");
    match rng.below(4) {
        0 | 1 if rsrc.is_some() => {
            let (start, end) = rsrc.unwrap_or_default();
            let span = end.saturating_sub(start);
            if span < 8 {
                return;
            }
            let at = start + (rng.below(span - 4) & !3);
            let v = if rng.chance(2) {
                0x8000_0000 | (rng.below(span) as u32 & !7)
            } else {
                *rng.pick(INTERESTING_U32)
            };
            put_u32(data, at, v);
        }
        2 => {
            let header_end = data.len().min(0x400);
            if header_end > 4 {
                let at = rng.below(header_end - 4) & !1;
                put_u32(data, at, *rng.pick(INTERESTING_U32));
            }
        }
        _ => mutate_import_name(data, rng),
    }
}

const DLL_NAMES: &[&str] = &[
    "../outside/secret.dll",
    "..\\outside\\secret.dll",
    "/etc/passwd",
    "C:\\x.dll",
    "CON",
    "nul.dll",
    "helper.dll",
    "HELPER.DLL",
    "kernel32.dll",
    "",
    "self.exe",
];

/// Overwrites one NUL-terminated `*.dll` name with a path-like one.
fn mutate_import_name(data: &mut Vec<u8>, rng: &mut Rng) {
    let hits: Vec<usize> = memchr::memmem::find_iter(data, b".dll\0").collect();
    if hits.is_empty() {
        mutate::bytes(data, &[], rng);
        return;
    }
    let end = *rng.pick(&hits) + 5;
    let start = data[..end - 1]
        .iter()
        .rposition(|&b| b == 0)
        .map_or(0, |p| p + 1);
    let mut name = rng.pick(DLL_NAMES).as_bytes().to_vec();
    name.push(0);
    data.splice(start..end, name);
}

fn seeds(dir: &Path) -> Vec<Vec<u8>> {
    vec![
        minimal_pe(&["KERNEL32.dll", "helper.dll"]),
        minimal_pe(&[
            "helper.dll",
            "api-ms-win-crt-runtime-l1-1-0.dll",
            "USER32.dll",
        ]),
        pe_with_resources(dir),
    ]
}

#[test]
fn fuzz_pe_resources() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("app.exe");
    let ico = dir.path().join("app.ico");
    std::fs::write(&ico, super::images::test_ico(dir.path())).unwrap();
    let app = app_info();
    engine::run(Target {
        name: "pe_resources",
        seeds: seeds(dir.path()),
        mutate: &mutate_pe,
        check: &|input| {
            std::fs::write(&exe, input).map_err(|e| e.to_string())?;
            let read = resources::read_resources(&exe);
            let embedded = resources::embed_resources(&exe, &ico, &app);
            if embedded.is_ok() {
                let back = resources::read_resources(&exe).map_err(|e| e.to_string())?;
                if back.file_version != Some(app.version4) || back.icon_sizes.len() != 7 {
                    return Err(format!("embedded, but read back {back:?}"));
                }
            }
            Ok(class(&format!(
                "{} {}",
                read.map_or_else(|e| e.to_string(), |_| "read".into()),
                embedded.map_or_else(|e| e.to_string(), |_| "embedded".into())
            )))
        },
        max_time: Duration::from_secs(3),
        max_memory: 128 << 20,
    });
}

#[test]
fn fuzz_dll_imports() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["search", "outside", "job"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(
        root.join("search/helper.dll"),
        minimal_pe(&["KERNEL32.dll"]),
    )
    .unwrap();
    // Another job's file, next to the search folder: a valid PE, so only the path rule stops it.
    std::fs::write(
        root.join("outside/secret.dll"),
        minimal_pe(&["KERNEL32.dll"]),
    )
    .unwrap();
    let search = vec![root.join("search")];
    let seed_dir = tempfile::tempdir().unwrap();
    engine::run(Target {
        name: "dll_imports",
        seeds: seeds(seed_dir.path()),
        mutate: &mutate_pe,
        check: &|input| {
            let bundle = root.join("job/bundle");
            let _ = std::fs::remove_dir_all(&bundle);
            std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
            let exe = bundle.join("self.exe");
            std::fs::write(&exe, input).map_err(|e| e.to_string())?;
            let imported = dlls::imported_dlls(&exe);
            let collected = dlls::collect_dlls(&exe, &search, &bundle);
            for entry in std::fs::read_dir(&bundle)
                .map_err(|e| e.to_string())?
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name != "self.exe" && !root.join("search").join(&name).is_file() {
                    return Err(format!(
                        "bundled {name:?}, which is not in the search folders"
                    ));
                }
            }
            if std::fs::read_dir(root.join("job"))
                .map_err(|e| e.to_string())?
                .count()
                != 1
            {
                return Err("wrote next to the bundle".into());
            }
            Ok(class(&format!(
                "{} {}",
                imported.map_or_else(|e| e.to_string(), |d| d.len().to_string()),
                collected.map_or_else(|e| e.to_string(), |d| format!("{d:?}"))
            )))
        },
        max_time: Duration::from_secs(2),
        max_memory: 64 << 20,
    });
}

#[test]
fn fuzz_authenticode() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("app.exe");
    let mut signed = minimal_pe(&["KERNEL32.dll"]);
    {
        std::fs::write(&exe, &signed).unwrap();
        let mut f = std::fs::File::open(&exe).unwrap();
        let layout = authenticode::read_layout(&mut f).unwrap();
        let scan = authenticode::scan_content(&mut f, &layout).unwrap();
        authenticode::embed_signature(&exe, &layout, &scan, &[0x30, 0x03, 1, 2, 3]).unwrap();
        signed = std::fs::read(&exe).unwrap();
    }
    let mut seeds = seeds(dir.path());
    seeds.push(signed);
    engine::run(Target {
        name: "authenticode",
        seeds,
        mutate: &mutate_pe,
        check: &|input| {
            std::fs::write(&exe, input).map_err(|e| e.to_string())?;
            let mut f = std::fs::File::open(&exe).map_err(|e| e.to_string())?;
            let layout = match authenticode::read_layout(&mut f) {
                Ok(l) => l,
                Err(e) => return Ok(class(&e.to_string())),
            };
            let _ = authenticode::read_signature(&mut f, &layout);
            let scan = authenticode::scan_content(&mut f, &layout).map_err(|e| e.to_string())?;
            let blob = [0x30, 0x04, 9, 8, 7, 6];
            authenticode::embed_signature(&exe, &layout, &scan, &blob)
                .map_err(|e| format!("embedding into a file whose layout was accepted: {e}"))?;
            let mut f = std::fs::File::open(&exe).map_err(|e| e.to_string())?;
            let after = authenticode::read_layout(&mut f)
                .map_err(|e| format!("the signed file has no valid layout: {e}"))?;
            let digest =
                authenticode::authenticode_digest(&mut f, &after).map_err(|e| e.to_string())?;
            if digest != scan.digest {
                return Err("embedding changed the Authenticode digest".into());
            }
            let sig = authenticode::read_signature(&mut f, &after).map_err(|e| e.to_string())?;
            if !sig.starts_with(&blob) {
                return Err("the embedded signature does not read back".into());
            }
            let sum = authenticode::pe_checksum(&mut f, after.checksum_offset)
                .map_err(|e| e.to_string())?;
            if authenticode::stored_checksum(&mut f, &after).map_err(|e| e.to_string())? != sum {
                return Err("the stored PE checksum is wrong after embedding".into());
            }
            Ok("signed".into())
        },
        max_time: Duration::from_secs(2),
        max_memory: 64 << 20,
    });
}
