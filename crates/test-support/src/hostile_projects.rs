//! Hostile changes to a copy of the example project, as the robustness tests use them
//! through a local `build` and through hub jobs.

use std::io::Write;
use std::path::Path;

/// `assets/` links that fan out: each of 20 levels links twice to the one below, so a
/// naive copy writes 2^20 files from a few hundred bytes of links.
#[cfg(unix)]
pub fn fan_out_assets(project: &Path) {
    let assets = project.join("assets");
    std::fs::create_dir_all(assets.join("d0")).unwrap();
    std::fs::write(assets.join("d0/f.txt"), "x").unwrap();
    for level in 1..=20 {
        let d = assets.join(format!("d{level}"));
        std::fs::create_dir_all(&d).unwrap();
        for link in ["a", "b"] {
            std::os::unix::fs::symlink(format!("../d{}", level - 1), d.join(link)).unwrap();
        }
    }
}

/// Writes a valid, fully transparent `side`×`side` RGBA PNG of a few hundred KiB that
/// takes `side² × 4` bytes to decode.
pub fn huge_png(path: &Path, side: u32) {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut ihdr = side.to_be_bytes().repeat(2);
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let row = vec![0u8; 1 + side as usize * 4];
    for _ in 0..side {
        zlib.write_all(&row).unwrap();
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    std::fs::write(path, png).unwrap();
}

/// The project's icon (`icon.png`, the manifest's) replaced by an 8000 px PNG: 256 MB
/// to decode.
pub fn icon_bomb(project: &Path) {
    huge_png(&project.join("icon.png"), 8000);
}
