//! Manifest parsing and validation (hub-protocol.md §4), including hostile values.

use perry_ship_windows::job::manifest::{Distribute, Manifest, ManifestError, UacLevel};
use serde_json::{json, Value};

fn base() -> Value {
    json!({
        "app_name": "My App",
        "bundle_id": "com.example.myapp",
        "version": "1.2",
        "entry": "src/main.ts",
    })
}

fn with(field: &str, value: Value) -> Value {
    let mut m = base();
    m[field] = value;
    m
}

fn without(field: &str) -> Value {
    let mut m = base();
    m.as_object_mut().unwrap().remove(field);
    m
}

fn err(v: Value) -> ManifestError {
    match Manifest::from_json(&v) {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e,
    }
}

fn err_field(v: Value) -> String {
    err(v).field
}

#[test]
fn minimal_manifest_gets_defaults() {
    let m = Manifest::from_json(&base()).unwrap();
    assert_eq!(m.app_name, "My App");
    assert_eq!(m.bundle_id, "com.example.myapp");
    assert_eq!(m.version, "1.2");
    assert_eq!(m.version4, [1, 2, 0, 0]);
    assert_eq!(m.version_string4(), "1.2.0.0");
    assert_eq!(m.entry, "src/main.ts");
    assert_eq!(m.icon, None);
    assert!(m.features.is_empty());
    assert_eq!(m.distribute, Distribute::Installer);
    assert_eq!(m.uac_level, UacLevel::AsInvoker);
    assert_eq!(m.dpi_aware, "true/pm");
    assert_eq!(m.file_description, None);
}

#[test]
fn full_manifest_parses_and_ignores_unknown_fields() {
    let m = Manifest::from_json(&json!({
        "app_name": "Café Ünïcødé 2",
        "bundle_id": "com.example.cafe",
        "version": "1.2.3.4",
        "short_version": "1.2",
        "minimum_os_version": null,
        "entry": ".\\src\\main.ts",
        "icon": "assets/icon.png",
        "targets": ["windows"],
        "features": ["gpu", "net_io", "gpu"],
        "windows_distribute": "msix",
        "windows_uac_level": "requireAdministrator",
        "windows_dpi_aware": false,
        "windows_file_description": "A café app",
        "windows_company_name": "Example Ltd.",
        "windows_copyright": "© 2026 Example",
        "something_new": {"nested": true},
    }))
    .unwrap();
    assert_eq!(m.version4, [1, 2, 3, 4]);
    assert_eq!(m.entry, "src/main.ts");
    assert_eq!(m.icon.as_deref(), Some("assets/icon.png"));
    assert_eq!(m.features, vec!["gpu", "net_io"]);
    assert_eq!(m.distribute, Distribute::Msix);
    assert_eq!(m.uac_level, UacLevel::RequireAdministrator);
    assert_eq!(m.dpi_aware, "false");
    assert_eq!(m.copyright.as_deref(), Some("© 2026 Example"));
    assert_eq!(m.ascii_app_name(), "Cafe Unicode 2");
}

#[test]
fn required_fields_are_named_when_missing() {
    for field in ["app_name", "bundle_id", "version", "entry"] {
        let e = err(without(field));
        assert_eq!(e.field, field);
        assert!(e.to_string().contains("is required"), "{e}");
    }
    assert_eq!(err_field(json!([1, 2])), "manifest");
    assert_eq!(err_field(json!(null)), "manifest");
}

#[test]
fn wrong_types_are_named() {
    assert_eq!(err_field(with("app_name", json!(5))), "app_name");
    assert_eq!(err_field(with("version", json!(1.2))), "version");
    assert_eq!(err_field(with("entry", json!(["a"]))), "entry");
    assert_eq!(err_field(with("icon", json!(true))), "icon");
    assert_eq!(err_field(with("features", json!("gpu"))), "features");
    assert_eq!(err_field(with("features", json!(["ok", 3]))), "features[1]");
    assert_eq!(err_field(with("targets", json!("windows"))), "targets");
    assert_eq!(
        err_field(with("windows_dpi_aware", json!(1))),
        "windows_dpi_aware"
    );
    assert_eq!(
        err_field(with("windows_copyright", json!({}))),
        "windows_copyright"
    );
}

#[test]
fn app_name_rules() {
    assert!(Manifest::from_json(&with("app_name", json!("Ünïcode_App-2 日本"))).is_ok());
    assert_eq!(
        Manifest::from_json(&with("app_name", json!("  Padded  ")))
            .unwrap()
            .app_name,
        "Padded"
    );
    for bad in [
        "",
        "   ",
        "\tname",
        "name\n",
        "a/b",
        "$INSTDIR",
        "x\"y",
        "<!ENTITY x>",
        "tab\there",
        "a.b",
        "nul\0",
    ] {
        assert_eq!(
            err_field(with("app_name", json!(bad))),
            "app_name",
            "{bad:?}"
        );
    }
    assert!(Manifest::from_json(&with("app_name", json!("a".repeat(200)))).is_ok());
    let e = err(with("app_name", json!("a".repeat(201))));
    assert!(e.problem.contains("201 characters"), "{e}");
}

#[test]
fn bundle_id_rules() {
    assert!(Manifest::from_json(&with("bundle_id", json!("a.B-c_9"))).is_ok());
    for bad in [
        "",
        "com.exämple",
        "com example",
        "com/example",
        "$INSTDIR",
        "a\"b",
    ] {
        assert_eq!(
            err_field(with("bundle_id", json!(bad))),
            "bundle_id",
            "{bad:?}"
        );
    }
    assert!(Manifest::from_json(&with("bundle_id", json!("a".repeat(255)))).is_ok());
    assert_eq!(
        err_field(with("bundle_id", json!("a".repeat(256)))),
        "bundle_id"
    );
}

#[test]
fn version_rules() {
    let v4 = |v: &str| Manifest::from_json(&with("version", json!(v))).map(|m| m.version4);
    assert_eq!(v4("7").unwrap(), [7, 0, 0, 0]);
    assert_eq!(v4("1.2.3").unwrap(), [1, 2, 3, 0]);
    assert_eq!(v4("65535.0.001.65535").unwrap(), [65535, 0, 1, 65535]);
    assert_eq!(v4("0000000000000001").unwrap(), [1, 0, 0, 0]);
    for bad in [
        "",
        "1.2.3.4.5",
        "99999.1",
        "65536",
        "1..2",
        "1.2.",
        ".1",
        "v1.2",
        "1.2-beta",
        "-1",
        "1 .2",
        "１.２",
    ] {
        let e = v4(bad).unwrap_err();
        assert_eq!(e.field, "version", "{bad:?}");
    }
    assert!(v4("99999.1").unwrap_err().problem.contains("65535"));
    assert_eq!(
        err_field(with("short_version", json!("1.x"))),
        "short_version"
    );
    assert_eq!(
        err_field(with("minimum_os_version", json!("99999"))),
        "minimum_os_version"
    );
}

#[test]
fn entry_and_icon_paths_stay_inside_the_project() {
    let entry = |p: &str| Manifest::from_json(&with("entry", json!(p))).map(|m| m.entry);
    assert_eq!(entry("main.ts").unwrap(), "main.ts");
    assert_eq!(entry("src\\app\\main.ts").unwrap(), "src/app/main.ts");
    assert_eq!(entry("./src/main.ts").unwrap(), "src/main.ts");
    assert_eq!(entry("dir..name/x..ts").unwrap(), "dir..name/x..ts");
    for bad in [
        "",
        "../x",
        "src/../../x",
        "..\\x",
        "/etc/passwd",
        "\\etc\\passwd",
        "C:\\x",
        "c:x",
        "\\\\server\\share\\x",
        "src//main.ts",
        "src/./main.ts",
        "src/",
        "a\nb",
        "main.ts\n",
        "file.ts:stream",
    ] {
        assert_eq!(entry(bad).unwrap_err().field, "entry", "{bad:?}");
    }
    assert_eq!(err_field(with("icon", json!("../icon.png"))), "icon");
    assert_eq!(err_field(with("icon", json!("/tmp/icon.png"))), "icon");
    assert_eq!(
        Manifest::from_json(&with("icon", json!(""))).unwrap().icon,
        None
    );
    assert_eq!(
        Manifest::from_json(&with("icon", json!(null)))
            .unwrap()
            .icon,
        None
    );
}

#[test]
fn features_rules() {
    assert!(Manifest::from_json(&with("features", json!(null)))
        .unwrap()
        .features
        .is_empty());
    for bad in ["", "a b", "a,b", "--x; rm -rf /", "ü"] {
        assert_eq!(
            err_field(with("features", json!([bad]))),
            "features[0]",
            "{bad:?}"
        );
    }
    let many: Vec<String> = (0..65).map(|i| format!("f{i}")).collect();
    assert_eq!(err_field(with("features", json!(many))), "features");
}

#[test]
fn enumerations() {
    let m = |f: &str, v: Value| Manifest::from_json(&with(f, v));
    assert_eq!(
        m("windows_distribute", json!("portable"))
            .unwrap()
            .distribute,
        Distribute::Portable
    );
    assert_eq!(
        m("windows_distribute", json!("Installer"))
            .unwrap()
            .distribute,
        Distribute::Installer
    );
    assert_eq!(
        m("windows_distribute", json!("zip")).unwrap_err().field,
        "windows_distribute"
    );
    assert_eq!(
        m("windows_uac_level", json!("highestAvailable"))
            .unwrap()
            .uac_level,
        UacLevel::HighestAvailable
    );
    assert_eq!(
        m("windows_uac_level", json!("root")).unwrap_err().field,
        "windows_uac_level"
    );
    let dpi = |v: Value| m("windows_dpi_aware", v).map(|m| m.dpi_aware);
    assert_eq!(dpi(json!(true)).unwrap(), "true/pm");
    assert_eq!(dpi(json!(false)).unwrap(), "false");
    assert_eq!(dpi(json!("true")).unwrap(), "true");
    assert_eq!(dpi(json!("PerMonitorV2")).unwrap(), "true/pm");
    assert_eq!(dpi(json!("permonitor")).unwrap(), "true/pm");
    assert_eq!(dpi(json!("true/pm")).unwrap(), "true/pm");
    assert_eq!(
        dpi(json!("unaware</dpiAware><x>")).unwrap_err().field,
        "windows_dpi_aware"
    );
}

#[test]
fn free_text_rejects_control_characters_and_huge_values() {
    for field in [
        "windows_file_description",
        "windows_company_name",
        "windows_copyright",
    ] {
        for bad in [
            "line\nbreak",
            "tab\t",
            "bell\u{7}",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            assert_eq!(err_field(with(field, json!(bad))), field, "{bad:?}");
        }
        assert_eq!(err_field(with(field, json!("x".repeat(1025)))), field);
    }
    // Characters that are dangerous in NSIS/XML but not control characters are kept for the
    // writers to escape.
    let m = Manifest::from_json(&with(
        "windows_company_name",
        json!("$INSTDIR \"<!ENTITY x>\" & Co"),
    ))
    .unwrap();
    assert_eq!(
        m.company_name.as_deref(),
        Some("$INSTDIR \"<!ENTITY x>\" & Co")
    );
    assert_eq!(
        Manifest::from_json(&with("windows_copyright", json!("  ")))
            .unwrap()
            .copyright,
        None
    );
}

#[test]
fn errors_never_echo_huge_values() {
    let huge = "\u{1}".to_string() + &"A".repeat(1 << 20);
    for field in [
        "app_name",
        "bundle_id",
        "version",
        "entry",
        "windows_copyright",
        "windows_uac_level",
    ] {
        let e = err(with(field, json!(huge.clone())));
        assert_eq!(e.field, field);
        assert!(
            e.to_string().len() < 300,
            "{field}: message is {} bytes",
            e.to_string().len()
        );
    }
    let e = err(with("features", json!([huge])));
    assert!(e.to_string().len() < 300);
}

#[test]
fn ascii_names_are_never_empty() {
    let name = |app: &str, bundle: &str| {
        let mut m = base();
        m["app_name"] = json!(app);
        m["bundle_id"] = json!(bundle);
        Manifest::from_json(&m).unwrap().ascii_app_name()
    };
    assert_eq!(name("My App", "x"), "My App");
    assert_eq!(name("Straße Æther", "x"), "Strasse AEther");
    assert_eq!(name("日本 アプリ", "com.example.jp_app"), "jp_app");
    assert_eq!(name("日本", "..."), "app");
    assert_eq!(name("Ünï 日本 App", "x"), "Uni App");
    assert_eq!(name("日本", "com.example.9"), "9");
}
