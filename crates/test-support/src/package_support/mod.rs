//! Shared fixtures for the package_* tests: real PE files built with the host's mingw gcc,
//! a test icon, a bundle with nested asset folders, an AppInfo, a step context for the
//! sandbox's HostRunner, and a strict XML reader.

pub mod mixed_payload;
pub mod msix_verify;

use perry_ship_windows::events::{CollectingSink, Stage};
use perry_ship_windows::job::manifest::UacLevel;
use perry_ship_windows::package::{AppInfo, Bundle};
use perry_ship_windows::sandbox::StepContext;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub const APP_EXE: &str = "Demo App.exe";

pub use crate::sign_fixtures;
pub use sign_fixtures::run;

/// True when a host tool exists; when it does not, tests fail under CI=true and skip
/// with a printed note otherwise.
pub fn require_tool(tool: &str) -> bool {
    sign_fixtures::require_tools(&[tool])
}

/// Builds `libhelper.dll` and an exe importing it (plus KERNEL32/msvcrt) into `dir`.
/// Returns (exe, dll).
pub fn build_pe_fixtures(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join("helper.c"),
        "__declspec(dllexport) int helper_add(int a, int b) { return a + b; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.c"),
        "#include <stdio.h>\nint helper_add(int, int);\nint main(void) { printf(\"%d\\n\", helper_add(2, 3)); return 0; }\n",
    )
    .unwrap();
    run(Command::new("x86_64-w64-mingw32-gcc")
        .current_dir(dir)
        .args([
            "-O2",
            "-s",
            "-shared",
            "-o",
            "libhelper.dll",
            "helper.c",
            "-Wl,--out-implib,libhelper.a",
        ]));
    run(Command::new("x86_64-w64-mingw32-gcc")
        .current_dir(dir)
        .args(["-O2", "-s", "-o", "app.exe", "main.c", "-L.", "-lhelper"]));
    (dir.join("app.exe"), dir.join("libhelper.dll"))
}

/// A 320x256 RGBA PNG (non-square on purpose).
pub fn write_test_png(path: &Path, w: u32, h: u32) {
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
    });
    img.save(path).unwrap();
}

pub fn app_info() -> AppInfo {
    AppInfo {
        app_name: "Demo App".into(),
        ascii_name: "Demo App".into(),
        bundle_id: "com.example.demo_app".into(),
        version4: [1, 2, 3, 0],
        version_display: "1.2.3".into(),
        publisher: "Example Co".into(),
        description: "A demo application".into(),
        copyright: "(c) 2026 Example Co".into(),
        uac_level: UacLevel::AsInvoker,
        dpi_aware: "true/pm".into(),
    }
}

/// Bundle layout (relative paths) produced by [`make_bundle`], files only.
pub const BUNDLE_FILES: &[&str] = &[
    "Demo App.exe",
    "app.ico",
    "assets/data/level1.json",
    "assets/file $1 (copy).txt",
    "assets/img/logo.png",
    "libhelper.dll",
];
pub const BUNDLE_DIRS: &[&str] = &["assets", "assets/data", "assets/empty", "assets/img"];

/// A bundle under `dir/bundle` with the fixture exe (resources not embedded), its DLL,
/// an icon and nested asset folders, one of them empty.
pub fn make_bundle(dir: &Path) -> Bundle {
    let pe_dir = dir.join("pe");
    std::fs::create_dir_all(&pe_dir).unwrap();
    let (exe, dll) = build_pe_fixtures(&pe_dir);
    let root = dir.join("bundle");
    for d in BUNDLE_DIRS {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(&exe, root.join(APP_EXE)).unwrap();
    std::fs::copy(&dll, root.join("libhelper.dll")).unwrap();
    let png = dir.join("icon.png");
    write_test_png(&png, 320, 256);
    perry_ship_windows::package::icon::png_to_ico(&png, &root.join("app.ico")).unwrap();
    std::fs::write(root.join("assets/data/level1.json"), b"{\"level\":1}\n").unwrap();
    std::fs::write(root.join("assets/file $1 (copy).txt"), b"dollar file\n").unwrap();
    write_test_png(&root.join("assets/img/logo.png"), 64, 64);
    Bundle::new(root, APP_EXE)
}

/// A packaging-stage step context whose events (makensis output lines) land in the sink.
/// makensis as a host process (the tests do not need the container image).
pub fn host_makensis() -> perry_ship_windows::package::nsis::Makensis<'static> {
    static HOST: perry_ship_windows::sandbox::host::HostRunner =
        perry_ship_windows::sandbox::host::HostRunner::new();
    perry_ship_windows::package::nsis::Makensis {
        runner: &HOST,
        image: "unused",
        program: "makensis",
        timeout: std::time::Duration::from_secs(120),
        compression: perry_ship_windows::package::nsis_compression::NsisCompression::Auto,
    }
}

pub fn step_context(output_dir: &Path) -> (StepContext, Arc<CollectingSink>) {
    let sink = CollectingSink::new();
    let ctx = StepContext {
        job_id: "test-job".into(),
        attempt: 1,
        stage: Stage::Packaging,
        events: sink.clone(),
        cancel: CancellationToken::new(),
        output_dir: output_dir.to_path_buf(),
    };
    (ctx, sink)
}

pub use crate::measure::sha256_file as sha256_hex;

/// A throwaway self-signed RSA certificate for signing tests: `k.pem` + `c.pem` in `dir`.
pub fn self_signed_cert(dir: &Path, common_name: &str) {
    let subject = format!("/CN={common_name}");
    run(Command::new("openssl").current_dir(dir).args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "c.pem",
        "-days", "2", "-subj", &subject,
    ]));
}

/// One element of a parsed XML document (flattened, document order).
#[derive(Debug, Clone)]
pub struct XmlElem {
    /// Local names from the root, joined by `/`.
    pub path: String,
    pub attrs: std::collections::BTreeMap<String, String>,
    /// Character data directly inside the element, entities resolved.
    pub text: String,
}

/// Parses `xml` strictly with quick-xml: a DOCTYPE, an unknown entity or malformed
/// markup fails the test.
pub fn parse_xml(xml: &str) -> Vec<XmlElem> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<usize> = Vec::new();
    let mut out: Vec<XmlElem> = Vec::new();
    let open = |e: &quick_xml::events::BytesStart, stack: &Vec<usize>, out: &mut Vec<XmlElem>| {
        let name = e.local_name().as_ref().to_string();
        let parent = stack.last().map(|&i| out[i].path.clone());
        let path = match parent {
            Some(p) => format!("{p}/{name}"),
            None => name,
        };
        let mut attrs = std::collections::BTreeMap::new();
        for a in e.attributes() {
            let a = a.expect("well-formed attribute");
            let key = a.key.local_name().as_ref().to_string();
            attrs.insert(
                key,
                a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                    .expect("attribute value unescapes")
                    .into_owned(),
            );
        }
        out.push(XmlElem {
            path,
            attrs,
            text: String::new(),
        });
        out.len() - 1
    };
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => {
                let i = open(&e, &stack, &mut out);
                stack.push(i);
            }
            Event::Empty(e) => {
                open(&e, &stack, &mut out);
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                if let Some(&i) = stack.last() {
                    out[i].text.push_str(&t[..]);
                }
            }
            Event::CData(t) => {
                if let Some(&i) = stack.last() {
                    out[i].text.push_str(&t[..]);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .expect("valid char ref")
                        .expect("char ref")
                        .to_string()
                } else {
                    match &r[..] {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => panic!("undeclared entity &{other};"),
                    }
                };
                if let Some(&i) = stack.last() {
                    out[i].text.push_str(&resolved);
                }
            }
            Event::DocType(_) => panic!("XML must not carry a DOCTYPE"),
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements");
    out
}

pub fn xml_find<'a>(elems: &'a [XmlElem], path: &str) -> &'a XmlElem {
    elems
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no element {path}"))
}
