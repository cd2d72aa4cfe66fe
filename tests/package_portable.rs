//! The portable ZIP: exact listing (top folder, every folder including empty ones, every
//! file), content hashes, deflate, entry times from the source date (not the files' mtimes), and progress
//! reporting.

use perry_test_support::package_support;

use package_support::*;
use perry_ship_windows::package::portable::write_portable_zip;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::io::Read;
use std::time::{Duration, SystemTime};

#[test]
fn portable_zip_has_exact_listing_hashes_and_mtimes() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path());
    // 2025-11-25T12:34:56Z on one asset: the ZIP ignores it and carries the source date.
    let stamp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_074_096);
    std::fs::File::options()
        .write(true)
        .open(bundle.root.join("assets/data/level1.json"))
        .unwrap()
        .set_modified(stamp)
        .unwrap();
    let out = tmp.path().join("Demo App-1.2.3-portable.zip");
    let last = Cell::new((0u64, 0u64));
    write_portable_zip(&bundle, &app_info(), &out, &|done, total| {
        last.set((done, total))
    })
    .unwrap();
    let total: u64 = BUNDLE_FILES
        .iter()
        .map(|f| std::fs::metadata(bundle.root.join(f)).unwrap().len())
        .sum();
    assert_eq!(last.get(), (total, total), "progress ends at 100 %");

    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    let mut expected: Vec<String> = vec!["Demo App/".into()];
    expected.extend(BUNDLE_DIRS.iter().map(|d| format!("Demo App/{d}/")));
    expected.extend(BUNDLE_FILES.iter().map(|f| format!("Demo App/{f}")));
    expected.sort();
    assert_eq!(names, expected);

    for f in BUNDLE_FILES {
        let mut entry = zip.by_name(&format!("Demo App/{f}")).unwrap();
        assert_eq!(entry.compression(), zip::CompressionMethod::Deflated, "{f}");
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&data)),
            sha256_hex(&bundle.root.join(f)),
            "{f}"
        );
    }
    let entry = zip.by_name("Demo App/assets/data/level1.json").unwrap();
    let t = entry.last_modified().unwrap();
    assert_eq!(
        (
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        perry_ship_windows::package::bundle::utc_fields(perry_ship_windows::package::source_date())
    );
}

#[test]
fn portable_zip_of_a_bundle_without_exe_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("b/assets")).unwrap();
    let bundle = perry_ship_windows::package::Bundle::new(tmp.path().join("b"), "Demo App.exe");
    let err = write_portable_zip(&bundle, &app_info(), &tmp.path().join("x.zip"), &|_, _| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("application exe not found"),
        "{err}"
    );
    assert!(!tmp.path().join("x.zip").exists());
}

#[test]
fn portable_zip_stores_media_deflates_text_and_extracts_byte_exact() {
    use package_support::mixed_payload::{write_mixed_bundle, MIXED_EXE};
    let tmp = tempfile::tempdir().unwrap();
    // Files of several 512 KiB chunks each, so chunks are packed on several threads.
    let (bundle, files) = write_mixed_bundle(&tmp.path().join("b"), 6 << 20, 6 << 20);
    let out = tmp.path().join("mixed.zip");
    write_portable_zip(&bundle, &app_info(), &out, &|_, _| {}).unwrap();

    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut all: Vec<&String> = files.media.iter().chain(&files.text).collect();
    let exe = MIXED_EXE.to_string();
    all.push(&exe);
    for rel in all {
        let mut entry = zip.by_name(&format!("Demo App/{rel}")).unwrap();
        let expected = if files.media.contains(rel) {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        assert_eq!(entry.compression(), expected, "{rel}");
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&data)),
            sha256_hex(&bundle.root.join(rel)),
            "{rel}"
        );
    }
    let text_size: u64 = files
        .text
        .iter()
        .map(|r| {
            zip.by_name(&format!("Demo App/{r}"))
                .unwrap()
                .compressed_size()
        })
        .sum();
    assert!(text_size < (6 << 20) / 2, "text deflated: {text_size}");
    // A second, independent reader tests every CRC.
    if require_tool("7z") {
        let t = run(std::process::Command::new("7z").arg("t").arg(&out));
        assert!(String::from_utf8_lossy(&t.stdout).contains("Everything is Ok"));
    }
}
