//! Import-table reading and DLL collection on real mingw-built PE files: a chain
//! app.exe → libhelper.dll → libdeep.dll, system DLLs left out, a missing DLL named.

use perry_test_support::package_support;

use package_support::*;
use perry_ship_windows::package::dlls::{collect_dlls, imported_dlls};
use perry_ship_windows::package::PackageError;
use std::process::Command;

fn build_chain(dir: &std::path::Path) {
    std::fs::write(
        dir.join("deep.c"),
        "__declspec(dllexport) int deep(int a) { return a * 2; }\n",
    )
    .unwrap();
    std::fs::write(dir.join("helper.c"), "int deep(int);\n__declspec(dllexport) int helper_add(int a, int b) { return deep(a) + b; }\n").unwrap();
    std::fs::write(
        dir.join("main.c"),
        "int helper_add(int, int);\nint main(void) { return helper_add(1, 2); }\n",
    )
    .unwrap();
    let gcc = |args: &[&str]| {
        run(Command::new("x86_64-w64-mingw32-gcc")
            .current_dir(dir)
            .args(args))
    };
    gcc(&[
        "-O2",
        "-s",
        "-shared",
        "-o",
        "libdeep.dll",
        "deep.c",
        "-Wl,--out-implib,libdeep.a",
    ]);
    gcc(&[
        "-O2",
        "-s",
        "-shared",
        "-o",
        "libhelper.dll",
        "helper.c",
        "-L.",
        "-ldeep",
        "-Wl,--out-implib,libhelper.a",
    ]);
    gcc(&["-O2", "-s", "-o", "app.exe", "main.c", "-L.", "-lhelper"]);
}

#[test]
fn imports_are_read_and_non_system_dlls_collected_transitively() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("build");
    std::fs::create_dir_all(&build).unwrap();
    build_chain(&build);
    let imports = imported_dlls(&build.join("app.exe")).unwrap();
    assert!(
        imports.contains(&"libhelper.dll".to_string()),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|d| d.eq_ignore_ascii_case("KERNEL32.dll")),
        "{imports:?}"
    );

    // The app sits alone in the bundle; its DLLs are in a precompiled folder.
    let bundle = tmp.path().join("bundle");
    let precompiled = tmp.path().join("perry-precompiled/dlls");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::create_dir_all(&precompiled).unwrap();
    std::fs::copy(build.join("app.exe"), bundle.join("app.exe")).unwrap();
    std::fs::copy(
        build.join("libhelper.dll"),
        precompiled.join("libhelper.dll"),
    )
    .unwrap();
    // Windows matches DLL names case-insensitively: so do we.
    std::fs::copy(build.join("libdeep.dll"), precompiled.join("LIBDEEP.DLL")).unwrap();
    let empty = tmp.path().join("compile-out");
    std::fs::create_dir_all(&empty).unwrap();
    let copied = collect_dlls(
        &bundle.join("app.exe"),
        &[empty, precompiled.clone()],
        &bundle,
    )
    .unwrap();
    assert_eq!(copied, ["LIBDEEP.DLL", "libhelper.dll"]);
    let mut in_bundle: Vec<String> = std::fs::read_dir(&bundle)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    in_bundle.sort();
    assert_eq!(
        in_bundle,
        ["LIBDEEP.DLL", "app.exe", "libhelper.dll"],
        "no system DLL copied"
    );
    assert_eq!(
        sha256_hex(&bundle.join("libhelper.dll")),
        sha256_hex(&build.join("libhelper.dll"))
    );
}

#[test]
fn a_missing_dll_is_named_with_its_importer() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    build_chain(tmp.path());
    let bundle = tmp.path().join("bundle");
    let dlls = tmp.path().join("dlls");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::create_dir_all(&dlls).unwrap();
    std::fs::copy(tmp.path().join("app.exe"), bundle.join("app.exe")).unwrap();
    std::fs::copy(tmp.path().join("libhelper.dll"), dlls.join("libhelper.dll")).unwrap();
    let err = collect_dlls(&bundle.join("app.exe"), &[dlls], &bundle).unwrap_err();
    match &err {
        PackageError::MissingDll { name, by, .. } => {
            assert_eq!(name, "libdeep.dll");
            assert_eq!(by, "libhelper.dll");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("libdeep.dll"));
}

#[test]
fn non_pe_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("x.exe");
    std::fs::write(&f, b"#!/bin/sh\necho hi\n").unwrap();
    let err = imported_dlls(&f).unwrap_err();
    assert!(matches!(err, PackageError::BadPe { .. }), "{err}");
}

/// Replaces every `from` in the file with `to` (same length): a hostile import name.
fn patch_bytes(file: &std::path::Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut data = std::fs::read(file).unwrap();
    let mut hits = 0;
    for i in 0..data.len().saturating_sub(from.len()) {
        if &data[i..i + from.len()] == from {
            data[i..i + from.len()].copy_from_slice(to);
            hits += 1;
        }
    }
    assert!(hits > 0, "{} holds no {:?}", file.display(), from);
    std::fs::write(file, data).unwrap();
}

#[test]
fn import_names_with_paths_or_device_names_are_refused_and_nothing_is_copied() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (exe, dll) = build_pe_fixtures(tmp.path());
    // "Another job's" file, one folder above the job's DLL folder.
    let victim = tmp.path().join("elper.dll");
    std::fs::copy(&dll, &victim).unwrap();
    for hostile in [
        &b"../elper.dll\0"[..],
        b"..\\elper.dll\0",
        b"C:elper.dll\0\0",
        b"nul.dll\0\0\0\0\0\0",
    ] {
        let case = tempfile::tempdir().unwrap();
        let bundle = case.path().join("bundle");
        let dlls = tmp.path().join("dlls");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::create_dir_all(&dlls).unwrap();
        let app = bundle.join("app.exe");
        std::fs::copy(&exe, &app).unwrap();
        patch_bytes(&app, b"libhelper.dll", &hostile[..13]);
        let err = collect_dlls(&app, &[dlls], &bundle)
            .unwrap_err()
            .to_string();
        let shown = String::from_utf8_lossy(&hostile[..13])
            .trim_end_matches('\0')
            .to_string();
        assert!(
            err.contains("imports") && err.contains(&shown.replace('\\', "\\\\")),
            "{err}"
        );
        let names: Vec<_> = std::fs::read_dir(&bundle)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["app.exe"], "nothing was copied for {shown:?}");
    }
}

#[cfg(unix)]
#[test]
fn a_dll_that_is_a_symlink_out_of_the_folder_is_not_taken() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (exe, dll) = build_pe_fixtures(tmp.path());
    let bundle = tmp.path().join("bundle");
    let dlls = tmp.path().join("dlls");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::create_dir_all(&dlls).unwrap();
    std::fs::copy(&exe, bundle.join("app.exe")).unwrap();
    std::os::unix::fs::symlink(&dll, dlls.join("libhelper.dll")).unwrap();
    let err = collect_dlls(&bundle.join("app.exe"), &[dlls], &bundle).unwrap_err();
    assert!(matches!(err, PackageError::MissingDll { .. }), "{err}");
    assert!(!bundle.join("libhelper.dll").exists());
}
