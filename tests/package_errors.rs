//! Bundles that must not be packaged fail every format with a clear error: a missing exe,
//! a symlink pointing outside the bundle, a file name NSIS/Windows cannot carry.
// Linux-host suite (shell-script stand-ins, Unix permissions and symlinks).
#![cfg(unix)]

use perry_test_support::package_support;

use package_support::*;
use perry_ship_windows::package::msix::write_msix;
use perry_ship_windows::package::nsis::render_installer_script;
use perry_ship_windows::package::portable::write_portable_zip;
use perry_ship_windows::package::{Bundle, PackageError};

fn small_bundle(dir: &std::path::Path) -> Bundle {
    let root = dir.join("bundle");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("Demo App.exe"), b"MZ").unwrap();
    std::fs::write(root.join("assets/a.txt"), b"a").unwrap();
    Bundle::new(root, "Demo App.exe")
}

/// Runs every format over `bundle` and returns the error messages (all must fail).
fn all_formats_fail(bundle: &Bundle, dir: &std::path::Path) -> Vec<String> {
    let png = dir.join("icon.png");
    write_test_png(&png, 256, 256);
    let app = app_info();
    let mut errors = vec![
        render_installer_script(bundle, &app, "x.exe").unwrap_err(),
        write_portable_zip(bundle, &app, &dir.join("p.zip"), &|_, _| {}).unwrap_err(),
    ];
    match write_msix(bundle, &app, None, &png, &dir.join("m.msix"), false) {
        Ok(_) => panic!("msix accepted a bad bundle"),
        Err(e) => errors.push(e),
    }
    assert!(!dir.join("m.msix").exists() && !dir.join("m.msix.partial").exists());
    errors.iter().map(|e| e.to_string()).collect()
}

#[test]
fn missing_exe_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = small_bundle(tmp.path());
    std::fs::remove_file(bundle.exe_path()).unwrap();
    for msg in all_formats_fail(&bundle, tmp.path()) {
        assert!(
            msg.contains("application exe not found") && msg.contains("Demo App.exe"),
            "{msg}"
        );
    }
}

#[test]
fn symlink_pointing_outside_the_bundle_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = small_bundle(tmp.path());
    std::os::unix::fs::symlink("/etc/passwd", bundle.root.join("assets/passwd")).unwrap();
    for msg in all_formats_fail(&bundle, tmp.path()) {
        assert!(
            msg.contains("assets/passwd is a symlink pointing outside the bundle"),
            "{msg}"
        );
    }
}

#[test]
fn symlinked_folder_escaping_via_dotdot_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = small_bundle(tmp.path());
    std::fs::create_dir_all(tmp.path().join("secret")).unwrap();
    std::os::unix::fs::symlink("../../secret", bundle.root.join("assets/up")).unwrap();
    for msg in all_formats_fail(&bundle, tmp.path()) {
        assert!(msg.contains("outside the bundle"), "{msg}");
    }
}

#[test]
fn symlink_to_a_file_inside_the_bundle_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = small_bundle(tmp.path());
    std::os::unix::fs::symlink("a.txt", bundle.root.join("assets/b.txt")).unwrap();
    let listing = bundle.list().unwrap();
    let b = listing
        .files
        .iter()
        .find(|f| f.rel == "assets/b.txt")
        .unwrap();
    assert_eq!(b.size, 1);
}

#[test]
fn file_names_with_quotes_or_control_characters_are_refused() {
    for name in ["a\"b.txt", "tab\there.txt", "colon:name.txt"] {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = small_bundle(tmp.path());
        std::fs::write(bundle.root.join("assets").join(name), b"x").unwrap();
        let err = bundle.list().unwrap_err();
        assert!(matches!(err, PackageError::UnsafeBundle(_)), "{err}");
        assert!(
            err.to_string().contains("cannot be installed on Windows"),
            "{err}"
        );
    }
}
