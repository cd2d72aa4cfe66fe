//! A small package written by the writer, for the read-side unit tests.

use super::{write_msix, PendingMsix};
use crate::job::manifest::UacLevel;
use crate::package::{AppInfo, Bundle};
use std::path::Path;

fn app() -> AppInfo {
    AppInfo {
        app_name: "Demo".into(),
        ascii_name: "Demo".into(),
        bundle_id: "com.example.demo".into(),
        version4: [1, 0, 0, 0],
        version_display: "1.0".into(),
        publisher: "Example".into(),
        description: "demo".into(),
        copyright: "(c) Example".into(),
        uac_level: UacLevel::AsInvoker,
        dpi_aware: "true/pm".into(),
    }
}

/// A package of a small bundle, written up to its central directory.
pub(crate) fn pending(dir: &Path, will_sign: bool) -> PendingMsix {
    let root = dir.join("bundle");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("Demo.exe"), b"MZ not really a program").unwrap();
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(root.join("assets/big.txt"), text).unwrap();
    let png = dir.join("logo.png");
    image::RgbaImage::from_pixel(256, 256, image::Rgba([9, 99, 199, 255]))
        .save(&png)
        .unwrap();
    let bundle = Bundle::new(root, "Demo.exe");
    write_msix(
        &bundle,
        &app(),
        None,
        &png,
        &dir.join("Demo.msix"),
        will_sign,
    )
    .unwrap()
}
