//! Icon conversion and PE resources on a real mingw-built exe: every VERSIONINFO field,
//! the manifest, and the icon group read back; the exe still parses as PE, keeps its
//! imports and can be signed by osslsigncode afterwards.

use perry_test_support::package_support;

use package_support::*;
use perry_ship_windows::job::manifest::UacLevel;
use perry_ship_windows::package::icon::{png_to_ico, ICO_SIZES};
use perry_ship_windows::package::resources::{embed_resources, read_resources};
use perry_ship_windows::package::PackageError;
use std::process::Command;

#[test]
fn icon_has_every_size_and_pads_non_square_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("wide.png");
    // 512x256: opaque everywhere, so padding shows up as transparent rows.
    write_test_png(&png, 512, 256);
    let ico_path = tmp.path().join("app.ico");
    png_to_ico(&png, &ico_path).unwrap();
    let dir = ico::IconDir::read(std::fs::File::open(&ico_path).unwrap()).unwrap();
    let sizes: Vec<u32> = dir.entries().iter().map(|e| e.width()).collect();
    assert_eq!(sizes, ICO_SIZES);
    for e in dir.entries() {
        assert_eq!(e.width(), e.height());
    }
    let big = dir.entries().iter().find(|e| e.width() == 256).unwrap();
    assert!(big.is_png(), "256 px entry is PNG-compressed");
    let img = big.decode().unwrap();
    let alpha = |x: u32, y: u32| img.rgba_data()[((y * 256 + x) * 4 + 3) as usize];
    assert_eq!(alpha(128, 2), 0, "top padding is transparent");
    assert_eq!(alpha(128, 128), 255, "image centre is opaque");
}

#[test]
fn bad_icons_are_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small.png");
    write_test_png(&small, 64, 64);
    let err = png_to_ico(&small, &tmp.path().join("a.ico")).unwrap_err();
    assert!(matches!(err, PackageError::BadIcon { .. }));
    assert!(
        err.to_string().contains("64x64 px is too small") && err.to_string().contains("256"),
        "{err}"
    );

    let jpeg = tmp.path().join("photo.png");
    std::fs::write(&jpeg, b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00").unwrap();
    let err = png_to_ico(&jpeg, &tmp.path().join("b.ico")).unwrap_err();
    assert!(err.to_string().contains("not a PNG"), "{err}");

    let truncated = tmp.path().join("trunc.png");
    let mut bytes = std::fs::read(&small).unwrap();
    bytes.truncate(40);
    std::fs::write(&truncated, bytes).unwrap();
    let err = png_to_ico(&truncated, &tmp.path().join("c.ico")).unwrap_err();
    assert!(matches!(err, PackageError::BadIcon { .. }), "{err}");

    let err = png_to_ico(&tmp.path().join("missing.png"), &tmp.path().join("d.ico")).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn resources_read_back_field_by_field_and_the_exe_stays_signable() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (exe, _dll) = build_pe_fixtures(tmp.path());
    let png = tmp.path().join("icon.png");
    write_test_png(&png, 300, 300);
    let ico = tmp.path().join("app.ico");
    png_to_ico(&png, &ico).unwrap();
    let mut app = app_info();
    app.uac_level = UacLevel::RequireAdministrator;
    embed_resources(&exe, &ico, &app).unwrap();

    let r = read_resources(&exe).unwrap();
    let want = [
        ("CompanyName", "Example Co"),
        ("FileDescription", "A demo application"),
        ("FileVersion", "1.2.3.0"),
        ("InternalName", "app"),
        ("LegalCopyright", "(c) 2026 Example Co"),
        ("OriginalFilename", "app.exe"),
        ("ProductName", "Demo App"),
        ("ProductVersion", "1.2.3.0"),
    ];
    assert_eq!(
        r.version_strings.len(),
        want.len(),
        "{:?}",
        r.version_strings
    );
    for (k, v) in want {
        assert_eq!(r.version_strings.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_eq!(r.file_version, Some([1, 2, 3, 0]));
    assert_eq!(r.product_version, Some([1, 2, 3, 0]));
    let mut sizes = r.icon_sizes.clone();
    sizes.sort_unstable();
    assert_eq!(sizes, ICO_SIZES);

    let m = parse_xml(r.manifest.as_deref().expect("manifest"));
    let id = xml_find(&m, "assembly/assemblyIdentity");
    assert_eq!(id.attrs["name"], "com.example.demo_app");
    assert_eq!(id.attrs["version"], "1.2.3.0");
    assert_eq!(
        xml_find(
            &m,
            "assembly/trustInfo/security/requestedPrivileges/requestedExecutionLevel"
        )
        .attrs["level"],
        "requireAdministrator"
    );
    assert_eq!(
        xml_find(&m, "assembly/application/windowsSettings/dpiAware").text,
        "true/pm"
    );
    assert_eq!(
        xml_find(&m, "assembly/application/windowsSettings/dpiAwareness").text,
        "PerMonitorV2"
    );
    assert_eq!(
        xml_find(&m, "assembly/compatibility/application/supportedOS").attrs["Id"],
        "{8e0f7a12-bfb3-4fe8-b9a5-48fd50a15a9a}"
    );

    // Still a PE with its imports, and embedding again replaces rather than piles up.
    let dlls = perry_ship_windows::package::dlls::imported_dlls(&exe).unwrap();
    assert!(dlls.iter().any(|d| d == "libhelper.dll"), "{dlls:?}");
    embed_resources(&exe, &ico, &app).unwrap();
    assert_eq!(read_resources(&exe).unwrap(), r);
    assert!(!tmp.path().join(".app.exe.res-tmp").exists());

    if require_tool("osslsigncode") && require_tool("openssl") {
        self_signed_cert(tmp.path(), "Test Signer");
        run(Command::new("osslsigncode").current_dir(tmp.path()).args([
            "sign",
            "-certs",
            "c.pem",
            "-key",
            "k.pem",
            "-h",
            "sha256",
            "-in",
            "app.exe",
            "-out",
            "signed.exe",
        ]));
        let out = run(Command::new("osslsigncode").current_dir(tmp.path()).args([
            "verify",
            "-CAfile",
            "c.pem",
            "-in",
            "signed.exe",
        ]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Signature verification: ok"));
        assert_eq!(
            read_resources(&tmp.path().join("signed.exe")).unwrap(),
            r,
            "signing keeps the resources"
        );
    }
}

#[test]
fn embedding_into_a_non_pe_or_missing_file_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("icon.png");
    write_test_png(&png, 256, 256);
    let ico = tmp.path().join("app.ico");
    png_to_ico(&png, &ico).unwrap();
    let fake = tmp.path().join("fake.exe");
    std::fs::write(&fake, b"MZ not really a PE").unwrap();
    let err = embed_resources(&fake, &ico, &app_info()).unwrap_err();
    assert!(matches!(err, PackageError::BadPe { .. }), "{err}");
    assert_eq!(
        std::fs::read(&fake).unwrap(),
        b"MZ not really a PE",
        "input untouched"
    );
    let err = embed_resources(&tmp.path().join("nope.exe"), &ico, &app_info()).unwrap_err();
    assert!(matches!(err, PackageError::Missing { .. }), "{err}");
}

/// An ICO like other tools write: any set of sizes (here 16, 32, 48 and 256 px).
fn write_ico_with_sizes(path: &std::path::Path, sizes: &[u32]) {
    let mut dir = ico::IconDir::new(ico::ResourceType::Icon);
    for &size in sizes {
        let rgba = vec![0x80u8; (size * size * 4) as usize];
        let image = ico::IconImage::from_rgba_data(size, size, rgba);
        let entry = if size >= 256 {
            ico::IconDirEntry::encode_as_png(&image)
        } else {
            ico::IconDirEntry::encode_as_bmp(&image)
        };
        dir.add_entry(entry.unwrap());
    }
    dir.write(std::fs::File::create(path).unwrap()).unwrap();
}

#[test]
fn a_bundle_icon_with_other_sizes_is_kept_as_written() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (exe, _dll) = build_pe_fixtures(tmp.path());
    // First our own seven sizes, then the bundle's four replace them.
    let png = tmp.path().join("icon.png");
    write_test_png(&png, 256, 256);
    let ours = tmp.path().join("ours.ico");
    png_to_ico(&png, &ours).unwrap();
    embed_resources(&exe, &ours, &app_info()).unwrap();
    let bundle_ico = tmp.path().join("app.ico");
    write_ico_with_sizes(&bundle_ico, &[48, 16, 256, 32]);
    embed_resources(&exe, &bundle_ico, &app_info()).unwrap();
    let mut sizes = read_resources(&exe).unwrap().icon_sizes;
    sizes.sort_unstable();
    assert_eq!(sizes, [16, 32, 48, 256]);

    // A single-size icon is valid too.
    write_ico_with_sizes(&bundle_ico, &[32]);
    embed_resources(&exe, &bundle_ico, &app_info()).unwrap();
    assert_eq!(read_resources(&exe).unwrap().icon_sizes, [32]);
}

#[test]
fn an_invalid_bundle_icon_is_refused_and_the_exe_is_untouched() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (exe, _dll) = build_pe_fixtures(tmp.path());
    let before = std::fs::read(&exe).unwrap();
    let bad = tmp.path().join("app.ico");
    std::fs::write(&bad, b"\x00\x00\x01\x00garbage").unwrap();
    let err = embed_resources(&exe, &bad, &app_info()).unwrap_err();
    assert!(matches!(err, PackageError::BadIcon { .. }), "{err}");
    assert!(err.to_string().contains("not a valid ICO"), "{err}");
    assert_eq!(std::fs::read(&exe).unwrap(), before, "exe untouched");
}
