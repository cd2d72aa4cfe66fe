//! The NSIS installer built with the real makensis: payload listing via `7z l`, PE header,
//! icon and version info of Setup.exe, and the rendered script's install/uninstall lists.

use perry_test_support::package_support;

use package_support::*;
use perry_ship_windows::package::nsis::{build_installer, render_installer_script};
use perry_ship_windows::package::resources::read_resources;
use std::process::Command;

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
    let (ctx, sink) = step_context(&out_dir);
    let setup = build_installer(
        &host_makensis(),
        &ctx,
        &bundle,
        &app,
        &tmp.path().join("scratch"),
        None,
    )
    .await
    .expect("installer builds");
    assert_eq!(setup, out_dir.join("Demo App-1.2.3-Setup.exe"));
    let warnings: Vec<String> = sink
        .lines()
        .into_iter()
        .filter(|l| l.to_lowercase().contains("warning"))
        .collect();
    assert!(warnings.is_empty(), "makensis warned: {warnings:?}");
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
            f.replace('/', "\\").replace('$', "${U+24}${U+24}")
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

/// Signs with osslsigncode and a throwaway self-signed certificate; counts its calls.
struct OsslSigner {
    dir: std::path::PathBuf,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl perry_ship_windows::package::nsis_uninstaller::UninstallerSigner for OsslSigner {
    async fn sign_uninstaller(
        &self,
        exe: &std::path::Path,
    ) -> Result<(), perry_ship_windows::package::PackageError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let signed = exe.with_extension("tmp-signed");
        run(Command::new("osslsigncode")
            .current_dir(&self.dir)
            .args([
                "sign", "-certs", "c.pem", "-key", "k.pem", "-h", "sha256", "-in",
            ])
            .arg(exe)
            .arg("-out")
            .arg(&signed));
        std::fs::rename(&signed, exe).unwrap();
        Ok(())
    }
}

#[tokio::test]
async fn two_pass_build_embeds_a_signed_uninstaller() {
    for tool in [
        "makensis",
        "7z",
        "x86_64-w64-mingw32-gcc",
        "osslsigncode",
        "openssl",
    ] {
        if !require_tool(tool) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path());
    self_signed_cert(tmp.path(), "Uninstaller Test");
    let signer = OsslSigner {
        dir: tmp.path().to_path_buf(),
        calls: Default::default(),
    };
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let (ctx, sink) = step_context(&out_dir);
    let setup = build_installer(
        &host_makensis(),
        &ctx,
        &bundle,
        &app_info(),
        &tmp.path().join("scratch"),
        Some(&signer),
    )
    .await
    .expect("two-pass build");
    // the two plugin DLLs and the uninstaller
    assert_eq!(signer.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(
        sink.lines()
            .iter()
            .all(|l| !l.to_lowercase().contains("warning")),
        "{:?}",
        sink.lines()
    );
    let mut left: Vec<_> = std::fs::read_dir(tmp.path().join("scratch"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["nsis-signed"],
        "scratch cleaned except the signed inputs kept for the artifact check"
    );
    let kept: Vec<String> =
        perry_ship_windows::package::nsis_plugins::signed_inputs(&tmp.path().join("scratch"))
            .into_iter()
            .map(|(name, path)| {
                assert!(path.is_file(), "{name} kept at {}", path.display());
                name
            })
            .collect();
    assert_eq!(
        kept,
        [
            "$PLUGINSDIR\\System.dll",
            "$PLUGINSDIR\\nsDialogs.dll",
            "Uninstall.exe"
        ]
    );

    let x = tmp.path().join("x");
    run(Command::new("7z")
        .arg("x")
        .arg(format!("-o{}", x.display()))
        .arg(&setup));
    // every PE inside: the uninstaller and the plugins under $PLUGINSDIR, which are the
    // signed copies kept for the artifact check (the uninstaller's built-in pages load no
    // plugin; pass 1 builds it with the same !addplugindir folder anyway)
    let mut pes = vec![x.join("Uninstall.exe")];
    let plugins: Vec<_> = std::fs::read_dir(x.join("$PLUGINSDIR"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dll"))
        .collect();
    assert_eq!(
        plugins.len(),
        2,
        "System.dll and nsDialogs.dll: {plugins:?}"
    );
    for p in &plugins {
        let kept = tmp
            .path()
            .join("scratch/nsis-signed/plugins")
            .join(p.file_name().unwrap());
        assert_eq!(sha256_hex(p), sha256_hex(&kept), "{}", p.display());
    }
    pes.extend(plugins);
    for pe in &pes {
        let out = run(Command::new("osslsigncode")
            .current_dir(tmp.path())
            .args(["verify", "-CAfile", "c.pem", "-in"])
            .arg(pe));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Signature verification: ok"),
            "{}",
            pe.display()
        );
    }
    for f in BUNDLE_FILES {
        assert_eq!(
            sha256_hex(&x.join(f)),
            sha256_hex(&bundle.root.join(f)),
            "{f}"
        );
    }
    // The unsigned single-pass build embeds an unsigned uninstaller (the check above can fail).
    let plain = build_installer(
        &host_makensis(),
        &ctx,
        &bundle,
        &app_info(),
        &tmp.path().join("scratch"),
        None,
    )
    .await
    .unwrap();
    let y = tmp.path().join("y");
    run(Command::new("7z")
        .arg("x")
        .arg(format!("-o{}", y.display()))
        .arg(&plain));
    let status = Command::new("osslsigncode")
        .current_dir(tmp.path())
        .args(["verify", "-CAfile", "c.pem", "-in"])
        .arg(y.join("Uninstall.exe"))
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "unsigned uninstaller must not verify"
    );
    // ...and takes the toolchain's unsigned plugins
    let status = Command::new("osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(tmp.path().join("c.pem"))
        .arg("-in")
        .arg(y.join("$PLUGINSDIR/System.dll"))
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "the plain build uses the stock plugins"
    );
}
