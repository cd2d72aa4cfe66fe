//! Compression benchmark (issue 17): a bundle with 64 MiB of incompressible media and
//! 64 MiB of compressible source-like text, packed as NSIS installer, portable ZIP and
//! MSIX by our packagers, each against the same files packed with the format's most
//! compressing setting in the same run: makensis with solid LZMA (what the installer used
//! before), and a deflate-9 ZIP written by the `zip` crate on one thread.
//!
//! `cargo bench --bench compression` prints a table and writes
//! `$CARGO_TARGET_DIR/bench/compression.json`. `COMPRESSION_BENCH_MIB` overrides the size
//! of each half (default 64).

use perry_test_support::gate;
use perry_test_support::measure;
use perry_test_support::package_support::mixed_payload;

use perry_ship_windows::package::nsis_compression::NsisCompression;
use perry_ship_windows::package::nsis_uninstaller::Finalize;
use perry_ship_windows::package::{msix, nsis, portable, AppInfo, Bundle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn app_info() -> AppInfo {
    AppInfo {
        app_name: "Mixed App".into(),
        ascii_name: "Mixed App".into(),
        bundle_id: "com.example.mixed".into(),
        version4: [1, 0, 0, 0],
        version_display: "1.0".into(),
        publisher: "Example Co".into(),
        description: "Compression benchmark".into(),
        copyright: "(c) Example Co".into(),
        uac_level: perry_ship_windows::job::manifest::UacLevel::AsInvoker,
        dpi_aware: "true/pm".into(),
    }
}

fn peak_rss_mib() -> f64 {
    measure::status_kib("VmHWM") as f64 / 1024.0
}

/// Seconds taken by `f`.
fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Stages and builds the installer (one pass, as without a signer) under `compression`.
fn nsis_build(
    bundle: &Bundle,
    app: &AppInfo,
    work: &Path,
    compression: NsisCompression,
) -> (f64, u64) {
    let stage = work.join(format!("nsis-{compression:?}"));
    std::fs::create_dir_all(&stage).unwrap();
    let out_name = nsis::installer_file_name(app);
    let secs = timed(|| {
        let staged =
            nsis::stage_payload(bundle, app, &out_name, &stage, Finalize::None, compression)
                .unwrap();
        println!("{compression:?}: {}", staged.compression.describe());
        let status = Command::new("makensis")
            .current_dir(&stage)
            .args(["-V1", "-INPUTCHARSET", "UTF8", nsis::SCRIPT_NAME])
            .status()
            .unwrap();
        assert!(status.success(), "makensis failed");
    });
    (secs, size(&stage.join(&out_name)))
}

/// The same files as a deflate-9 ZIP, streamed through the `zip` crate on one thread.
fn deflate9_zip(bundle: &Bundle, out: &Path) {
    let listing = bundle.list().unwrap();
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(out).unwrap()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9));
    for f in &listing.files {
        zip.start_file(f.rel.as_str(), opts).unwrap();
        std::io::copy(&mut std::fs::File::open(&f.source).unwrap(), &mut zip).unwrap();
    }
    zip.finish().unwrap().flush().unwrap();
}

struct Row {
    metric: String,
    value: f64,
    unit: &'static str,
    target: Option<(&'static str, bool)>,
}

fn row(metric: impl Into<String>, value: f64, unit: &'static str) -> Row {
    Row {
        metric: metric.into(),
        value,
        unit,
        target: None,
    }
}

fn main() {
    let half_mib: u64 = std::env::var("COMPRESSION_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let work = tempfile::tempdir().unwrap();
    let (bundle, _) = mixed_payload::write_mixed_bundle(
        &work.path().join("bundle"),
        half_mib << 20,
        half_mib << 20,
    );
    let payload_mib = bundle.list().unwrap().total_size() as f64 / 1048576.0;
    let png = work.path().join("logo.png");
    image::RgbaImage::from_fn(256, 256, |x, y| image::Rgba([x as u8, y as u8, 99, 255]))
        .save(&png)
        .unwrap();
    let app = app_info();
    let mut rows = Vec::new();
    let label = format!("{half_mib}+{half_mib} MiB media+text");

    // Portable ZIP: ours vs deflate-9.
    let ours_zip = work.path().join("ours.zip");
    measure::reset_peak_rss();
    let zip_secs =
        timed(|| portable::write_portable_zip(&bundle, &app, &ours_zip, &|_, _| {}).unwrap());
    let zip_rss = peak_rss_mib();
    let d9 = work.path().join("deflate9.zip");
    let d9_secs = timed(|| deflate9_zip(&bundle, &d9));
    let zip_rate = payload_mib / zip_secs;
    rows.push(Row {
        target: Some((">= 50 MiB/s", zip_rate >= 50.0)),
        ..row(
            format!("portable ZIP throughput, {label}"),
            zip_rate,
            "MiB/s",
        )
    });
    rows.push(row(
        format!(
            "portable ZIP time ({:.2} s) / deflate-9 ZIP time ({d9_secs:.2} s)",
            zip_secs
        ),
        zip_secs / d9_secs,
        "x",
    ));
    rows.push(row(
        "portable ZIP size / deflate-9 ZIP size",
        size(&ours_zip) as f64 / size(&d9) as f64,
        "x",
    ));
    rows.push(row("portable ZIP peak RSS", zip_rss, "MiB"));

    // MSIX: ours vs the same deflate-9 ZIP.
    let ours_msix = work.path().join("ours.msix");
    measure::reset_peak_rss();
    let msix_secs = timed(|| {
        msix::write_msix(&bundle, &app, None, &png, &ours_msix, false)
            .unwrap()
            .finish_unsigned()
            .unwrap();
    });
    let msix_rss = peak_rss_mib();
    let msix_rate = payload_mib / msix_secs;
    rows.push(Row {
        target: Some((">= 50 MiB/s", msix_rate >= 50.0)),
        ..row(format!("MSIX throughput, {label}"), msix_rate, "MiB/s")
    });
    rows.push(row(
        format!("MSIX time ({msix_secs:.2} s) / deflate-9 ZIP time"),
        msix_secs / d9_secs,
        "x",
    ));
    rows.push(row(
        "MSIX size / deflate-9 ZIP size",
        size(&ours_msix) as f64 / size(&d9) as f64,
        "x",
    ));
    rows.push(row("MSIX peak RSS", msix_rss, "MiB"));

    // NSIS: auto vs solid LZMA.
    let have_makensis = Command::new("makensis").arg("-VERSION").output().is_ok();
    if have_makensis {
        let (auto_secs, auto_size) = nsis_build(&bundle, &app, work.path(), NsisCompression::Auto);
        let (solid_secs, solid_size) =
            nsis_build(&bundle, &app, work.path(), NsisCompression::LzmaSolid);
        let time_ratio = auto_secs / solid_secs;
        let size_ratio = auto_size as f64 / solid_size as f64;
        rows.push(row(
            format!("installer build, auto ({label})"),
            auto_secs,
            "s",
        ));
        rows.push(row(
            "installer build, solid LZMA (same files)",
            solid_secs,
            "s",
        ));
        rows.push(Row {
            target: Some(("<= 0.25x", time_ratio <= 0.25)),
            ..row("installer time auto / solid LZMA", time_ratio, "x")
        });
        rows.push(Row {
            target: Some(("<= 1.05x", size_ratio <= 1.05)),
            ..row(
                format!("installer size auto ({auto_size} B) / solid LZMA ({solid_size} B)"),
                size_ratio,
                "x",
            )
        });
    } else {
        let _: Option<()> =
            gate::skip_or_fail("makensis is not installed; the installer rows are left out");
    }

    println!("\n{:<72} {:>10} {:>7}  target", "figure", "value", "unit");
    for r in &rows {
        let target = r.target.map_or(String::new(), |(t, met)| {
            format!("{t} {}", if met { "met" } else { "NOT MET" })
        });
        println!("{:<72} {:>10.2} {:>7}  {target}", r.metric, r.value, r.unit);
    }
    let json = serde_json::json!({
        "name": "compression",
        "results": rows.iter().map(|r| serde_json::json!({
            "metric": r.metric,
            "value": (r.value * 1000.0).round() / 1000.0,
            "unit": r.unit,
            "target": r.target.map(|t| t.0),
            "met": r.target.map(|t| t.1),
        })).collect::<Vec<_>>(),
        "notes": [format!("payload {payload_mib:.1} MiB; {} CPUs; baselines: makensis solid LZMA, zip crate deflate-9 on one thread", std::thread::available_parallelism().map_or(1, |n| n.get()))],
    });
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("compression.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("wrote {}", path.display());
}
