//! Clean upgrades under wine (Debian's wine64, own WINEPREFIX, silent installers): 1.2.0 then
//! 1.3.0 leaves exactly 1.3.0's files (a file only 1.2.0 shipped is gone), reinstalling the
//! same version and a silent downgrade work the same way, shortcuts and the Add/Remove entry
//! exist exactly once, and uninstalling leaves nothing behind.

use perry_test_support::package_support;

use package_support::*;
use perry_ship_windows::package::nsis::build_installer;
use perry_ship_windows::package::{AppInfo, Bundle};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const REG_KEY: &str =
    "[Software\\\\Microsoft\\\\Windows\\\\CurrentVersion\\\\Uninstall\\\\com.example.demo_app]";

/// A bundle with the app exe and `files` (relative path, content).
fn bundle(dir: &Path, exe: &Path, files: &[(&str, &str)]) -> Bundle {
    let root = dir.join("bundle");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(exe, root.join(APP_EXE)).unwrap();
    for (rel, content) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    Bundle::new(root, APP_EXE)
}

fn app(version: [u16; 4]) -> AppInfo {
    AppInfo {
        version4: version,
        version_display: format!("{}.{}.{}", version[0], version[1], version[2]),
        ..app_info()
    }
}

async fn installer(dir: &Path, bundle: &Bundle, app: &AppInfo) -> PathBuf {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (ctx, _sink) = step_context(&out);
    build_installer(
        &host_makensis(),
        &ctx,
        bundle,
        app,
        &dir.join("scratch"),
        None,
    )
    .await
    .expect("installer builds")
}

/// wine with a private prefix and home (so nothing lands in the real ~/.local).
struct Wine {
    prefix: PathBuf,
    home: PathBuf,
}

impl Wine {
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("WINEPREFIX", &self.prefix)
            .env("HOME", &self.home)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "winemenubuilder.exe=d")
            .env_remove("DISPLAY");
        c
    }

    /// Runs `exe /S` (or a Windows path) and waits for every wine process to end.
    fn run_silent(&self, exe: &str) {
        let out = self.cmd("wine").arg(exe).arg("/S").output().unwrap();
        assert!(out.status.success(), "wine {exe} /S failed: {out:?}");
        self.wait();
    }

    fn wait(&self) {
        run(self.cmd("wineserver").arg("-w"));
    }

    fn drive_c(&self) -> PathBuf {
        self.prefix.join("drive_c")
    }

    fn install_dir(&self) -> PathBuf {
        self.drive_c().join("Program Files/Demo App")
    }

    /// Installed files relative to the install folder.
    fn installed(&self) -> BTreeSet<String> {
        let root = self.install_dir();
        sign_fixtures::files_under(&root)
            .into_iter()
            .map(|p| {
                p.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    /// Every `Demo App*.lnk` anywhere under drive_c.
    fn shortcuts(&self) -> Vec<String> {
        sign_fixtures::files_under(&self.drive_c())
            .into_iter()
            .map(|p| {
                p.strip_prefix(self.drive_c())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|p| p.ends_with(".lnk") && p.contains("Demo App"))
            .collect()
    }

    fn system_reg(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.prefix.join("system.reg")).unwrap())
            .into_owned()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn upgrade_reinstall_downgrade_and_uninstall_leave_exactly_the_right_files() {
    for tool in ["makensis", "x86_64-w64-mingw32-gcc", "wine"] {
        if !require_tool(tool) {
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let pe = tmp.path().join("pe");
    std::fs::create_dir_all(&pe).unwrap();
    let (exe, _) = build_pe_fixtures(&pe);
    let v12 = tmp.path().join("v12");
    let v13 = tmp.path().join("v13");
    let old = bundle(
        &v12,
        &exe,
        &[
            ("shared.txt", "1.2.0"),
            ("only-in-1.2.txt", "stale"),
            ("data/a.json", "{}"),
        ],
    );
    let new = bundle(
        &v13,
        &exe,
        &[
            ("shared.txt", "1.3.0"),
            ("only-in-1.3.txt", "fresh"),
            ("data/a.json", "{}"),
        ],
    );
    let setup12 = installer(&v12, &old, &app([1, 2, 0, 0])).await;
    let setup13 = installer(&v13, &new, &app([1, 3, 0, 0])).await;
    let files12 = set(&[
        APP_EXE,
        "Uninstall.exe",
        "shared.txt",
        "only-in-1.2.txt",
        "data/a.json",
    ]);
    let files13 = set(&[
        APP_EXE,
        "Uninstall.exe",
        "shared.txt",
        "only-in-1.3.txt",
        "data/a.json",
    ]);

    let wine = Wine {
        prefix: tmp.path().join("wine-prefix"),
        home: tmp.path().join("home"),
    };
    std::fs::create_dir_all(wine.home.join("Desktop")).unwrap();
    run(wine.cmd("wine").args(["wineboot", "--init"]));
    wine.wait();

    let check = |files: &BTreeSet<String>, version: &str| {
        assert_eq!(&wine.installed(), files, "installed files for {version}");
        assert_eq!(
            std::fs::read_to_string(wine.install_dir().join("shared.txt")).unwrap(),
            version
        );
        let shortcuts = wine.shortcuts();
        assert_eq!(
            shortcuts.len(),
            3,
            "app + uninstall in the Start menu, desktop: {shortcuts:?}"
        );
        let reg = wine.system_reg();
        assert_eq!(reg.matches(REG_KEY).count(), 1, "one Add/Remove entry");
        let entry = &reg[reg.find(REG_KEY).unwrap()..];
        let entry = &entry[..entry[1..].find("\n[").map_or(entry.len(), |i| i + 1)];
        assert!(
            entry.contains(&format!("\"DisplayVersion\"=\"{version}\"")),
            "{entry}"
        );
    };

    wine.run_silent(setup12.to_str().unwrap());
    check(&files12, "1.2.0");
    wine.run_silent(setup13.to_str().unwrap());
    check(&files13, "1.3.0");
    // the same version again: still exactly its files, one entry
    wine.run_silent(setup13.to_str().unwrap());
    check(&files13, "1.3.0");
    // a silent downgrade proceeds (interactive installs ask first)
    wine.run_silent(setup12.to_str().unwrap());
    check(&files12, "1.2.0");

    wine.run_silent("C:\\Program Files\\Demo App\\Uninstall.exe");
    assert!(
        !wine.install_dir().exists(),
        "install folder removed: {:?}",
        wine.installed()
    );
    assert!(wine.shortcuts().is_empty(), "{:?}", wine.shortcuts());
    assert!(
        !wine.system_reg().contains(REG_KEY),
        "Add/Remove entry removed"
    );
}
