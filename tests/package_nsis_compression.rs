//! The NSIS installer of a media-heavy app under `PERRY_NSIS_COMPRESSION=auto`: media is
//! stored, text compressed with bzip2; the installer installs under wine with every file
//! byte-exact and uninstalls cleanly; the two-pass (signed uninstaller) build exports the
//! same uninstaller as the real payload gives, in non-solid mode too.

use perry_test_support::package_support;

use package_support::mixed_payload::{write_mixed_bundle, MixedFiles, MIXED_EXE};
use package_support::*;
use perry_ship_windows::package::nsis::{build_installer, render_installer_script_with};
use perry_ship_windows::package::nsis_compression::NsisCompression;
use perry_ship_windows::package::nsis_uninstaller::UninstallerSigner;
use perry_ship_windows::package::{Bundle, PackageError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// 6 MiB of media + 4 MiB of text: above the solid-LZMA limit, so `auto` plans per file.
fn mixed(dir: &Path) -> (Bundle, MixedFiles) {
    write_mixed_bundle(&dir.join("bundle"), 6 << 20, 4 << 20)
}

#[test]
fn auto_stores_media_and_compresses_text_with_bzip2() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, files) = mixed(tmp.path());
    let script =
        render_installer_script_with(&bundle, &app_info(), "x.exe", NsisCompression::Auto).unwrap();
    assert!(script.contains("\nSetCompressor bzip2\n"), "{script}");
    assert!(!script.contains("/SOLID"));
    let lines: Vec<&str> = script.lines().map(str::trim).collect();
    for rel in files.media.iter().chain(&files.text) {
        let leaf = rel.rsplit('/').next().unwrap();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("File \"/oname={leaf}\"")))
            .unwrap_or_else(|| panic!("no File line for {rel}"));
        let wrapped = lines[at - 1] == "SetCompress off" && lines[at + 1] == "SetCompress auto";
        assert_eq!(
            wrapped,
            files.media.contains(rel),
            "{rel}: only media is stored"
        );
    }
    let store = render_installer_script_with(&bundle, &app_info(), "x.exe", NsisCompression::Store)
        .unwrap();
    assert!(store.contains("\nSetCompressor zlib\nSetCompress off\n"));
    assert!(!store.contains("SetCompress auto"));
    let solid =
        render_installer_script_with(&bundle, &app_info(), "x.exe", NsisCompression::LzmaSolid)
            .unwrap();
    assert!(solid.contains("\nSetCompressor /SOLID lzma\n"));
    assert!(!solid.contains("SetCompress off"));
}

/// Remembers the SHA-256 of the uninstaller pass 1 exported; signs nothing.
struct RecordingSigner(Mutex<Option<String>>);

#[async_trait::async_trait]
impl UninstallerSigner for RecordingSigner {
    async fn sign_uninstaller(&self, exe: &Path) -> Result<(), PackageError> {
        *self.0.lock().unwrap() = Some(sha256_hex(exe));
        Ok(())
    }
}

#[tokio::test]
async fn installer_installs_under_wine_byte_exact_and_uninstalls_cleanly() {
    for tool in ["makensis", "7z", "wine", "wineserver"] {
        if !require_tool(tool) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, files) = mixed(tmp.path());
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let (ctx, sink) = step_context(&out_dir);
    let signer = RecordingSigner(Mutex::new(None));
    let setup = build_installer(
        &host_makensis(),
        &ctx,
        &bundle,
        &app_info(),
        &tmp.path().join("scratch"),
        Some(&signer),
    )
    .await
    .expect("two-pass installer builds");
    let lines = sink.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("installer compression: bzip2; 4 file(s) (6.0 MiB) stored")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.to_lowercase().contains("warning")),
        "{lines:?}"
    );
    let size = std::fs::metadata(&setup).unwrap().len();
    assert!(
        size < (6 << 20) + (2 << 20),
        "text compressed: {size} bytes"
    );

    // Pass 1 (empty placeholders) exported the uninstaller the real payload gives.
    let x = tmp.path().join("x");
    run(Command::new("7z")
        .arg("x")
        .arg(format!("-o{}", x.display()))
        .arg(&setup));
    assert_eq!(
        signer.0.lock().unwrap().as_deref(),
        Some(sha256_hex(&x.join("Uninstall.exe")).as_str())
    );

    let wine = Wine::new(tmp.path());
    wine.run(&[setup.to_str().unwrap(), "/S", "/D=C:\\MixedApp"]);
    let installed = wine.drive_c().join("MixedApp");
    let mut all: Vec<&String> = files.media.iter().chain(&files.text).collect();
    let exe = MIXED_EXE.to_string();
    all.push(&exe);
    for rel in all {
        let got = installed.join(rel);
        assert!(got.is_file(), "{rel} installed");
        assert_eq!(
            sha256_hex(&got),
            sha256_hex(&bundle.root.join(rel)),
            "{rel}"
        );
    }
    assert!(installed.join("Uninstall.exe").is_file());
    assert!(
        wine.registry().contains("com.example.demo_app"),
        "uninstall key written"
    );

    wine.run(&["C:\\MixedApp\\Uninstall.exe", "/S"]);
    assert!(!installed.exists(), "install folder removed");
    assert!(
        !wine.registry().contains("com.example.demo_app"),
        "uninstall key removed"
    );
}

/// A private wine prefix under the test's temp folder (never `~/.wine`).
struct Wine {
    prefix: PathBuf,
    home: PathBuf,
}

impl Wine {
    fn new(dir: &Path) -> Wine {
        let home = dir.join("home");
        std::fs::create_dir_all(home.join("Desktop")).unwrap();
        Wine {
            prefix: dir.join("wineprefix"),
            home,
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("WINEPREFIX", &self.prefix)
            .env("HOME", &self.home)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "winemenubuilder.exe=d");
        cmd
    }

    /// Runs `wine args…` and waits until every process of the prefix has exited
    /// (NSIS uninstallers re-launch themselves from %TEMP%).
    fn run(&self, args: &[&str]) {
        run(self.command("wine").args(args));
        run(self.command("wineserver").arg("-w"));
    }

    fn drive_c(&self) -> PathBuf {
        self.prefix.join("drive_c")
    }

    fn registry(&self) -> String {
        std::fs::read_to_string(self.prefix.join("system.reg")).unwrap_or_default()
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = self.command("wineserver").arg("-k").output();
    }
}
