//! The fixture of tests/windows_wine.rs: a hand-off bundle, PFX credentials with a local
//! TSA, an SDK folder with the signtool double, and local `build`s of the bundle under wine.

use crate::example_project;
use crate::sign_fixtures as fixtures;
use crate::sign_servers as servers;
use crate::wine::{self, win_path, Wine};
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PFX_PASSWORD: &str = "wine-Pfx-Passw0rd!";
const TOOLS: &[&str] = &["openssl", "osslsigncode"];
pub const SDK_VERSION: &str = "10.0.22621.0";
pub const RUN_LIMIT: Duration = Duration::from_secs(240);

/// A hand-off bundle, PFX credentials with a local TSA, and an SDK folder holding the
/// signtool double, all under one temporary folder.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub pki: fixtures::Pki,
    _tsa: servers::Tsa,
    pub credentials: Value,
    pub bundle: PathBuf,
}

impl Setup {
    pub async fn new(wine: &Wine) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let pki = fixtures::Pki::create(&dir.path().join("pki"));
        let pfx = pki.pfx("wine", "rsa.key", "rsa.crt", PFX_PASSWORD, &[]);
        let tsa = servers::start_tsa(pki.dir.clone()).await;
        let credentials = json!({
            "windows_pfx_base64": base64::engine::general_purpose::STANDARD.encode(pfx),
            "windows_pfx_password": PFX_PASSWORD,
            "windows_timestamp_url": tsa.url,
        });
        let bundle = dir.path().join("bundle");
        let pre = bundle.join("perry-precompiled");
        std::fs::create_dir_all(pre.join("assets")).unwrap();
        let exe = fixtures::mingw_exe(dir.path(), "hello");
        std::fs::copy(&exe, pre.join("Hello Perry.exe")).unwrap();
        std::fs::write(pre.join("assets/readme.txt"), "bundled asset").unwrap();
        std::fs::write(
            pre.join("metadata.json"),
            r#"{"perry_version":"0.5.3","compiled_by":"linux-01","compile_timestamp":"2026-11-25T12:00:00Z"}"#,
        )
        .unwrap();
        wine.mingw_tool(
            "fake_signtool",
            &dir.path().join("sdk/bin").join(SDK_VERSION).join("x64"),
            "signtool.exe",
        );
        Setup {
            dir,
            pki,
            _tsa: tsa,
            credentials,
            bundle,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn manifest(distribute: &str) -> Value {
        let mut manifest = example_project::example_manifest(distribute);
        manifest["targets"] = json!(["windows-sign"]);
        manifest["icon"] = Value::Null;
        manifest
    }

    /// The worker's environment: work dir, a small free-disk floor (the free-space check
    /// runs for real) and the SDK folder.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PERRY_WORK_DIR", win_path(&self.path("work"))),
            ("PERRY_MIN_FREE_DISK", "1m".to_string()),
            ("PERRY_DOCKER_ENABLED", "false".to_string()),
            ("PERRY_BUILD_WINDOWS_SDK_PATH", win_path(&self.path("sdk"))),
        ]
    }

    /// `perry-ship-windows.exe build` of the bundle as `distribute`, signed.
    pub async fn local_build(
        &self,
        wine: &Wine,
        distribute: &str,
        extra_env: &[(&'static str, String)],
    ) -> std::process::Output {
        let manifest = self.path(&format!("manifest-{distribute}.json"));
        std::fs::write(&manifest, Setup::manifest(distribute).to_string()).unwrap();
        let credentials = self.path("credentials.json");
        std::fs::write(&credentials, self.credentials.to_string()).unwrap();
        let args = [
            "build".to_string(),
            win_path(&self.bundle),
            "--manifest".into(),
            win_path(&manifest),
            "--credentials".into(),
            win_path(&credentials),
            "--distribute".into(),
            distribute.into(),
            "--out".into(),
            win_path(&self.path("out")),
            "--no-docker".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut env = self.env();
        env.extend_from_slice(extra_env);
        wine.run(&args, &env, RUN_LIMIT).await
    }

    /// Where the signtool double lives and writes its log.
    fn signtool_dir(&self) -> PathBuf {
        self.path("sdk/bin").join(SDK_VERSION).join("x64")
    }

    /// Makes the signtool double reject every file with `reason`.
    pub fn reject_signatures(&self, reason: &str) {
        std::fs::write(self.signtool_dir().join("reject.txt"), reason).unwrap();
    }

    pub fn signtool_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.signtool_dir().join("signtool.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

pub async fn prerequisites() -> Option<&'static Wine> {
    if !fixtures::require_tools(TOOLS) {
        return None;
    }
    wine::require_wine()
}

/// Extracts one entry of a ZIP into `to`.
pub fn unzip_entry(zip: &Path, name: &str, to: &Path) -> PathBuf {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut entry = archive
        .by_name(name)
        .unwrap_or_else(|_| panic!("{name} missing from {}", zip.display()));
    let out = to.join(Path::new(name).file_name().unwrap());
    let mut file = std::fs::File::create(&out).unwrap();
    std::io::copy(&mut entry, &mut file).unwrap();
    out
}
