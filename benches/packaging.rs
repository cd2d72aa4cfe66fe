//! Packaging benchmark: a bundle with N MiB of random assets (several files and folders).
//! Times our in-process work (icon, PE resources, portable ZIP, MSIX) against makensis on
//! the same bundle in the same run, and records the peak RSS (VmHWM, reset before each
//! phase via /proc/self/clear_refs) to show memory stays flat as the assets grow.
//!
//! `cargo bench --bench packaging` prints a table and writes
//! `$CARGO_TARGET_DIR/bench/packaging.json` (default `target/bench/packaging.json`).
//! `PACKAGING_BENCH_MIB` overrides the large size (default 50).
// Linux-host benchmark (Docker engine, /proc, rusage): empty on other targets, so that
// `cargo clippy --all-targets --target x86_64-pc-windows-gnu` checks the rest.
#![cfg_attr(not(unix), no_main)]
#![cfg(unix)]

use perry_ship_windows::package::nsis_compression::NsisCompression;
use perry_ship_windows::package::nsis_uninstaller::Finalize;
use perry_ship_windows::package::{icon, msix, nsis, portable, resources, AppInfo, Bundle};
use perry_test_support::gate;
use perry_test_support::measure;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn app_info() -> AppInfo {
    AppInfo {
        app_name: "Bench App".into(),
        ascii_name: "Bench App".into(),
        bundle_id: "com.example.bench".into(),
        version4: [1, 0, 0, 0],
        version_display: "1.0".into(),
        publisher: "Example Co".into(),
        description: "Packaging benchmark".into(),
        copyright: "(c) Example Co".into(),
        uac_level: perry_ship_windows::job::manifest::UacLevel::AsInvoker,
        dpi_aware: "true/pm".into(),
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn peak_rss_kib() -> u64 {
    measure::status_kib("VmHWM")
}

fn children_max_rss_kib() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as u64
}

/// Writes `mib` MiB of xorshift bytes spread over 3 folders × 4 files.
fn write_assets(root: &Path, mib: u64) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    let files: Vec<PathBuf> = (0..12)
        .map(|i| root.join(format!("assets/group{}/sub{}/data{i}.bin", i % 3, i % 2)))
        .collect();
    for (i, f) in files.iter().enumerate() {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        let mut out = std::io::BufWriter::new(std::fs::File::create(f).unwrap());
        let share = mib / 12 + u64::from((i as u64) < mib % 12);
        for _ in 0..share {
            for chunk in buf.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            out.write_all(&buf).unwrap();
        }
    }
}

struct Run {
    mib: u64,
    phases: Vec<(String, f64, u64)>,
}

fn time<T>(phases: &mut Vec<(String, f64, u64)>, name: &str, f: impl FnOnce() -> T) -> T {
    measure::reset_peak_rss();
    let start = Instant::now();
    let out = f();
    phases.push((
        name.to_string(),
        start.elapsed().as_secs_f64() * 1000.0,
        peak_rss_kib(),
    ));
    out
}

fn run(work: &Path, mib: u64, with_makensis: bool) -> Run {
    let dir = work.join(format!("b{mib}"));
    let root = dir.join("bundle");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(dir.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    let ok = Command::new("x86_64-w64-mingw32-gcc")
        .current_dir(&dir)
        .args(["-O2", "-s", "-o", "bundle/Bench App.exe", "main.c"])
        .status()
        .unwrap();
    assert!(ok.success());
    write_assets(&root, mib);
    let png = dir.join("icon.png");
    image::RgbaImage::from_fn(512, 512, |x, y| image::Rgba([x as u8, y as u8, 99, 255]))
        .save(&png)
        .unwrap();
    let bundle = Bundle::new(&root, "Bench App.exe");
    let app = app_info();
    let mut phases = Vec::new();

    time(&mut phases, "icon (png_to_ico)", || {
        icon::png_to_ico(&png, &root.join("app.ico")).unwrap()
    });
    time(&mut phases, "resources (embed + read back)", || {
        resources::embed_resources(&bundle.exe_path(), &root.join("app.ico"), &app).unwrap()
    });
    time(&mut phases, "portable ZIP", || {
        portable::write_portable_zip(&bundle, &app, &dir.join("p.zip"), &|_, _| {}).unwrap()
    });
    time(&mut phases, "MSIX (write + finish)", || {
        msix::write_msix(&bundle, &app, None, &png, &dir.join("p.msix"), false)
            .unwrap()
            .finish_unsigned()
            .unwrap()
    });
    if with_makensis {
        let stage = dir.join("nsis");
        std::fs::create_dir_all(&stage).unwrap();
        let out_name = nsis::installer_file_name(&app);
        time(&mut phases, "NSIS staging (script + links)", || {
            nsis::stage_payload(
                &bundle,
                &app,
                &out_name,
                &stage,
                Finalize::None,
                NsisCompression::LzmaSolid,
            )
            .unwrap()
        });
        let before = children_max_rss_kib();
        let start = Instant::now();
        let status = Command::new("makensis")
            .current_dir(&stage)
            .args(["-V1", "-INPUTCHARSET", "UTF8", nsis::SCRIPT_NAME])
            .status()
            .unwrap();
        assert!(status.success(), "makensis failed");
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        phases.push((
            "makensis (external, lzma solid)".into(),
            ms,
            children_max_rss_kib().max(before),
        ));
    }
    Run { mib, phases }
}

fn main() {
    if !gate::require(
        have("x86_64-w64-mingw32-gcc"),
        "x86_64-w64-mingw32-gcc is needed for the benchmark's exe",
    ) {
        return;
    }
    let large: u64 = std::env::var("PACKAGING_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let with_makensis = have("makensis");
    let work = tempfile::tempdir().unwrap();
    let runs = [
        run(work.path(), 10, false),
        run(work.path(), large, with_makensis),
    ];

    println!(
        "\n{:<34} {:>8} {:>12} {:>14}",
        "phase", "MiB", "time ms", "peak RSS MiB"
    );
    for r in &runs {
        for (name, ms, rss) in &r.phases {
            println!(
                "{name:<34} {:>8} {ms:>12.1} {:>14.1}",
                r.mib,
                *rss as f64 / 1024.0
            );
        }
    }
    let big = &runs[1];
    let ours: f64 = big
        .phases
        .iter()
        .filter(|p| !p.0.starts_with("makensis"))
        .map(|p| p.1)
        .sum();
    if let Some(m) = big.phases.iter().find(|p| p.0.starts_with("makensis")) {
        println!(
            "\nin-process total at {} MiB: {ours:.1} ms; makensis: {:.1} ms",
            big.mib, m.1
        );
    }

    let json = serde_json::json!({
        "runs": runs.iter().map(|r| serde_json::json!({
            "asset_mib": r.mib,
            "phases": r.phases.iter().map(|(n, ms, rss)| serde_json::json!({"phase": n, "ms": ms, "peak_rss_kib": rss})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "in_process_total_ms_large": ours,
        "note": "peak_rss_kib is VmHWM after a clear_refs reset for in-process phases, and the children's max RSS for makensis",
    });
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("packaging.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("wrote {}", path.display());
}
