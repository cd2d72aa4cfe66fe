//! Hostile free-text values go through every output format as data only: the NSIS script
//! (real makensis build, no `!system` runs, VERSIONINFO of Setup.exe holds the literal
//! text), the app manifest XML, the exe's VERSIONINFO and AppxManifest.xml (parsed with
//! quick-xml, literal text back, no DOCTYPE/entity).

use perry_test_support::package_support;

use package_support::*;
use perry_ship_windows::package::msix::manifest::appx_manifest;
use perry_ship_windows::package::nsis::{build_installer, render_installer_script};
use perry_ship_windows::package::resources::{app_manifest, embed_resources, read_resources};
use perry_ship_windows::package::{ascii_file_name, AppInfo};
use std::path::Path;

const PWNED: &str = "/tmp/pwned";

const HOSTILE: &[&str] = &[
    "quote \" inside \"\"",
    "$INSTDIR and $PROGRAMFILES64 and $$ and $\\n",
    "${APPNAME} ${__FILE__} $(^Name) ${NSISDIR}",
    "line1\nline2\r\n\ttabbed",
    "!system \"touch /tmp/pwned\"",
    "x\n!system \"touch /tmp/pwned\"\n!error \"broken\"",
    "]]> <![CDATA[ x ]]> -->",
    "<!ENTITY x SYSTEM \"file:///etc/passwd\"> &x; &amp;",
    "& < > ' `backtick` \\ trailing backslash \\",
    "; comment # hash {{app_name}} {{nope}}",
];

fn hostile_app(h: &str) -> AppInfo {
    AppInfo {
        description: h.to_string(),
        publisher: format!("Co {h}"),
        copyright: format!("{h} ©"),
        ..app_info()
    }
}

fn check_xml_formats(app: &AppInfo) {
    let m = parse_xml(&app_manifest(app).unwrap());
    assert_eq!(xml_find(&m, "assembly/description").text, app.description);

    let publisher = "CN=Demo Publisher, O=Example Co, C=US";
    let appx = parse_xml(&appx_manifest(app, "Demo App.exe", publisher).unwrap());
    assert_eq!(
        xml_find(&appx, "Package/Properties/Description").text,
        app.description
    );
    assert_eq!(
        xml_find(&appx, "Package/Properties/PublisherDisplayName").text,
        app.publisher
    );
    assert_eq!(
        xml_find(&appx, "Package/Applications/Application/VisualElements").attrs["Description"],
        app.description
    );
    assert_eq!(
        xml_find(&appx, "Package/Identity").attrs["Publisher"],
        publisher
    );
}

#[test]
fn hostile_values_stay_data_in_xml_outputs() {
    for h in HOSTILE {
        check_xml_formats(&hostile_app(h));
    }
}

#[test]
fn hostile_values_stay_data_in_the_exe_versioninfo() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (exe, _) = build_pe_fixtures(tmp.path());
    let png = tmp.path().join("icon.png");
    write_test_png(&png, 256, 256);
    let ico = tmp.path().join("app.ico");
    perry_ship_windows::package::icon::png_to_ico(&png, &ico).unwrap();
    for h in HOSTILE {
        let app = hostile_app(h);
        embed_resources(&exe, &ico, &app).unwrap();
        let r = read_resources(&exe).unwrap();
        assert_eq!(r.version_strings["FileDescription"], app.description);
        assert_eq!(r.version_strings["CompanyName"], app.publisher);
        assert_eq!(r.version_strings["LegalCopyright"], app.copyright);
        let m = parse_xml(r.manifest.as_deref().unwrap());
        assert_eq!(xml_find(&m, "assembly/description").text, app.description);
    }
}

async fn build(
    tmp: &Path,
    app: &AppInfo,
    bundle: &perry_ship_windows::package::Bundle,
) -> std::path::PathBuf {
    let out = tmp.join("out");
    std::fs::create_dir_all(&out).unwrap();
    build_installer(
        &host_makensis(),
        &step_context(&out).0,
        bundle,
        app,
        &tmp.join("scratch"),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("makensis build with {:?}: {e}", app.description))
}

#[tokio::test]
async fn hostile_values_stay_data_in_the_nsis_installer() {
    if !require_tool("makensis") || !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let _ = std::fs::remove_file(PWNED);
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path());
    for h in HOSTILE {
        let app = hostile_app(h);
        let script = render_installer_script(&bundle, &app, "x.exe").unwrap();
        for line in script.lines() {
            let t = line.trim_start();
            assert!(
                !t.starts_with("!system") && !t.starts_with("!error"),
                "directive leaked: {line}"
            );
        }
        let setup = build(tmp.path(), &app, &bundle).await;
        assert!(!Path::new(PWNED).exists(), "!system ran for {h:?}");
        let r = read_resources(&setup).unwrap();
        assert_eq!(r.version_strings["Comments"], app.description, "{h:?}");
        assert_eq!(r.version_strings["CompanyName"], app.publisher, "{h:?}");
        assert_eq!(r.version_strings["LegalCopyright"], app.copyright, "{h:?}");
        std::fs::remove_file(setup).unwrap();
    }
}

#[tokio::test]
async fn app_name_and_bundle_id_extremes_build() {
    if !require_tool("makensis") || !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path());
    let long = "A".repeat(200);
    for (name, id) in [
        ("Ünïcødé 日本 App_-", "a_b"),
        (long.as_str(), "com.example.x_y-z.Long_Name_123"),
    ] {
        let app = AppInfo {
            app_name: name.to_string(),
            ascii_name: ascii_file_name(name, id),
            bundle_id: id.to_string(),
            ..app_info()
        };
        assert!(app.ascii_name.is_ascii() && !app.ascii_name.is_empty());
        let setup = build(tmp.path(), &app, &bundle).await;
        let r = read_resources(&setup).unwrap();
        assert_eq!(r.version_strings["ProductName"], name);
        assert!(setup
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&app.ascii_name));
        check_xml_formats(&app);
        std::fs::remove_file(setup).unwrap();
    }
    assert_eq!(
        ascii_file_name("Ünïcødé 日本 App_-", "a_b"),
        "Unicode App_-"
    );
    assert_eq!(ascii_file_name("日本", "com.example.demo"), "demo");
    assert_eq!(ascii_file_name("日本", "日本"), "app");
}
