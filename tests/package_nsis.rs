//! The NSIS installer built with the real makensis: payload listing via `7z l`, PE header,
//! icon and version info of Setup.exe, and the rendered script's install/uninstall lists.

mod package_support;

use package_support::*;
use perry_ship_windows::package::nsis::{build_installer, render_installer_script};
use perry_ship_windows::package::resources::read_resources;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn installer_builds_and_lists_every_file_and_the_uninstaller() {
    if !require_tool("makensis") || !require_tool("7z") || !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path());
    let app = app_info();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let ctx = step_context(&out_dir);
    let setup = build_installer(
        &LocalRunner,
        &ctx,
        "unused",
        "makensis",
        &bundle,
        &app,
        &tmp.path().join("scratch"),
        Duration::from_secs(120),
    )
    .await
    .expect("installer builds");
    assert_eq!(setup, out_dir.join("Demo App-1.2.3-Setup.exe"));
    assert!(
        !tmp.path().join("scratch/nsis-input").exists(),
        "staging folder is removed"
    );

    let listing =
        String::from_utf8(run(Command::new("7z").args(["l", "-slt"]).arg(&setup)).stdout).unwrap();
    assert!(listing.contains("Type = Nsis"), "{listing}");
    let mut paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("Path = "))
        .filter(|p| !p.starts_with("$PLUGINSDIR/") && !p.ends_with("-Setup.exe"))
        .collect();
    paths.sort_unstable();
    let mut expected: Vec<&str> = BUNDLE_FILES.to_vec();
    expected.push("Uninstall.exe");
    expected.sort_unstable();
    assert_eq!(
        paths, expected,
        "7z l shows exactly the bundle files and the uninstaller"
    );

    // The payload extracts byte-identical.
    let x = tmp.path().join("x");
    run(Command::new("7z")
        .arg("x")
        .arg(format!("-o{}", x.display()))
        .arg(&setup));
    for f in BUNDLE_FILES {
        assert_eq!(
            sha256_hex(&x.join(f)),
            sha256_hex(&bundle.root.join(f)),
            "{f}"
        );
    }

    // A real PE carrying our icon and version info.
    let bytes = std::fs::read(&setup).unwrap();
    assert_eq!(&bytes[..2], b"MZ");
    let pe_off = u32::from_le_bytes(bytes[0x3c..0x40].try_into().unwrap()) as usize;
    assert_eq!(&bytes[pe_off..pe_off + 4], b"PE\0\0");
    assert_eq!(
        u16::from_le_bytes([bytes[pe_off + 4], bytes[pe_off + 5]]),
        0x8664,
        "amd64 installer"
    );
    let res = read_resources(&setup).unwrap();
    assert_eq!(
        res.version_strings.get("ProductName").map(String::as_str),
        Some("Demo App")
    );
    assert_eq!(
        res.version_strings.get("CompanyName").map(String::as_str),
        Some("Example Co")
    );
    assert_eq!(res.file_version, Some([1, 2, 3, 0]));
    assert!(!res.icon_sizes.is_empty(), "installer carries an icon");
    let ico =
        ico::IconDir::read(std::fs::File::open(bundle.root.join("app.ico")).unwrap()).unwrap();
    let mut ours: Vec<u32> = ico.entries().iter().map(|e| e.width()).collect();
    ours.sort_unstable();
    let mut theirs = res.icon_sizes.clone();
    theirs.sort_unstable();
    assert_eq!(theirs, ours, "installer icon group has our app.ico sizes");
}

#[test]
fn script_installs_and_removes_exactly_the_bundle() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path());
    let script = render_installer_script(&bundle, &app_info(), "Demo App-1.2.3-Setup.exe").unwrap();
    println!("{script}");
    for line in [
        "Unicode true",
        "Target amd64-unicode",
        "SetCompressor /SOLID lzma",
        "RequestExecutionLevel admin",
        "SetShellVarContext all",
        "InstallDir \"$PROGRAMFILES64\\Demo App\"",
        "!include \"MUI2.nsh\"",
        "SetDateSave off",
    ] {
        assert!(script.contains(line), "missing {line}");
    }
    for f in BUNDLE_FILES {
        let del = format!(
            "Delete \"$INSTDIR\\{}\"",
            f.replace('/', "\\").replace('$', "$$")
        );
        assert_eq!(script.matches(&del).count(), 1, "{del}");
    }
    // Folders removed deepest first, never recursively.
    let rm: Vec<&str> = script
        .lines()
        .filter(|l| l.trim_start().starts_with("RMDir \"$INSTDIR"))
        .map(str::trim)
        .collect();
    assert_eq!(
        rm,
        [
            "RMDir \"$INSTDIR\\assets\\img\"",
            "RMDir \"$INSTDIR\\assets\\empty\"",
            "RMDir \"$INSTDIR\\assets\\data\"",
            "RMDir \"$INSTDIR\\assets\"",
            "RMDir \"$INSTDIR\"",
        ]
    );
    assert!(!script.contains("RMDir /r"));
    assert!(
        script.contains("SetOutPath \"$INSTDIR\\assets\\empty\""),
        "empty folders are created"
    );
    let size: u64 = BUNDLE_FILES
        .iter()
        .map(|f| std::fs::metadata(bundle.root.join(f)).unwrap().len())
        .sum();
    assert!(script.contains(&format!("\"EstimatedSize\" {}", size.div_ceil(1024))));
    for key in [
        "DisplayName",
        "DisplayVersion",
        "Publisher",
        "DisplayIcon",
        "UninstallString",
        "QuietUninstallString",
        "NoModify",
        "NoRepair",
    ] {
        assert!(script.contains(&format!("\"{key}\"")), "{key}");
    }
}
