//! Fuzz targets for icons: an ICO file as a hand-off bundle carries it (`app.ico`: entry
//! sizes, the largest image decoded for the MSIX logos, the bytes embedded by editpe), and
//! the manifest's PNG (decoded, padded, scaled into `app.ico`). The structure-aware mutation
//! edits ICONDIR counts and entry fields, and PNG header sizes with their CRC fixed, so the
//! mutants reach the decoders instead of failing the signature checks.

use super::engine::{self, class, Rng, Target};
use super::mutate::{self, put_u32, u32_at, INTERESTING_U32};
use crate::package::{icon, resources};
use std::path::Path;
use std::time::Duration;

/// A PNG of `side` px (a gradient, so it compresses like a real icon).
pub(crate) fn test_png(side: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(side, side, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 90, 255])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Our own `app.ico` for a 256 px PNG (seven entries, BMP and PNG).
pub(crate) fn test_ico(dir: &Path) -> Vec<u8> {
    let png = dir.join("seed.png");
    std::fs::write(&png, test_png(256)).unwrap();
    let ico = dir.join("seed.ico");
    icon::png_to_ico(&png, &ico).unwrap();
    std::fs::read(ico).unwrap()
}

/// A one-entry ICO holding `png` as is.
fn ico_with_png(png: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 1, 0, 1, 0];
    out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 32, 0]);
    out.extend_from_slice(&(png.len() as u32).to_le_bytes());
    out.extend_from_slice(&22u32.to_le_bytes());
    out.extend_from_slice(png);
    out
}

/// Rewrites the width/height of every PNG header found and fixes its CRC.
fn mutate_png_headers(data: &mut [u8], rng: &mut Rng) {
    let sizes = [0u32, 1, 255, 256, 8192, 8193, 65535, 200_000, 0x7fff_ffff];
    let (w, h) = (*rng.pick(&sizes), *rng.pick(&sizes));
    let mut at = 0;
    while let Some(found) = memchr::memmem::find(&data[at..], b"IHDR") {
        let ihdr = at + found;
        if ihdr + 4 + 13 + 4 > data.len() {
            break;
        }
        data[ihdr + 4..ihdr + 8].copy_from_slice(&w.to_be_bytes());
        data[ihdr + 8..ihdr + 12].copy_from_slice(&h.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&data[ihdr..ihdr + 17]);
        data[ihdr + 17..ihdr + 21].copy_from_slice(&crc.sum().to_be_bytes());
        at = ihdr + 4;
    }
}

fn mutate_ico(data: &mut Vec<u8>, rng: &mut Rng) {
    let count = data
        .get(4..6)
        .map_or(0, |c| u16::from_le_bytes([c[0], c[1]]) as usize);
    match rng.below(4) {
        0 if data.len() >= 6 => {
            let n = *rng.pick(&[0u16, 1, 2, 7, 255, 4096, 65535]);
            data[4..6].copy_from_slice(&n.to_le_bytes());
        }
        1 if count > 0 => {
            let entry = 6 + 16 * rng.below(count.min(64));
            let field = *rng.pick(&[0usize, 1, 8, 12]);
            if field < 8 {
                if let Some(b) = data.get_mut(entry + field) {
                    *b = *rng.pick(&[0u8, 1, 16, 255]);
                }
            } else {
                let len = data.len() as u32;
                let edge = *rng.pick(INTERESTING_U32);
                let v = *rng.pick(&[len, len / 2, 0, 22, edge]);
                put_u32(data, entry + field, v);
            }
        }
        2 => mutate_png_headers(data, rng),
        _ if count > 0 => {
            // Point an entry at another entry's data (shared or overlapping spans).
            let a = 6 + 16 * rng.below(count.min(64));
            let b = 6 + 16 * rng.below(count.min(64));
            if let (Some(size), Some(offset)) = (u32_at(data, b + 8), u32_at(data, b + 12)) {
                put_u32(data, a + 8, size);
                put_u32(data, a + 12, offset);
            }
        }
        _ => mutate::bytes(data, &[], rng),
    }
}

#[test]
fn fuzz_ico() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.ico");
    let png_out = dir.path().join("largest.png");
    let seeds = vec![
        test_ico(dir.path()),
        ico_with_png(&test_png(16)),
        ico_with_png(&test_png(300)),
    ];
    engine::run(Target {
        name: "ico",
        seeds,
        mutate: &mutate_ico,
        check: &|input| {
            std::fs::write(&path, input).map_err(|e| e.to_string())?;
            let sizes = resources::ico_entry_sizes(&path, input);
            let largest = crate::pipeline::assets::largest_ico_image_as_png(&path, &png_out);
            let mut res = editpe::ResourceDirectory::default();
            let embedded = res.set_main_icon(input);
            Ok(class(&format!(
                "{} {} {}",
                sizes.is_ok(),
                largest.map_or_else(|e| e.to_string(), |_| "ok".into()),
                embedded.is_ok()
            )))
        },
        max_time: Duration::from_secs(3),
        max_memory: 384 << 20,
    });
}

#[test]
fn fuzz_png() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("icon.png");
    let ico = dir.path().join("app.ico");
    let logos = dir.path().join("logos");
    engine::run(Target {
        name: "png",
        seeds: vec![test_png(256), test_png(16), test_png(300)],
        mutate: &|data, rng| {
            if rng.chance(2) {
                mutate_png_headers(data, rng)
            } else {
                mutate::bytes(data, &[], rng)
            }
        },
        check: &|input| {
            std::fs::write(&path, input).map_err(|e| e.to_string())?;
            let square = icon::load_square_png(&path);
            if let Ok(img) = &square {
                if img.width() != img.height() || img.width() > 8192 {
                    return Err(format!("padded to {}x{}", img.width(), img.height()));
                }
                // Scaling a full 8192 px icon is legitimate but slow; keep runs quick.
                if img.width() <= 512 {
                    icon::png_to_ico(&path, &ico).map_err(|e| format!("valid PNG: {e}"))?;
                    icon::png_logos(&path, &logos).map_err(|e| format!("valid PNG: {e}"))?;
                }
            }
            Ok(square.map_or_else(|e| class(&e.to_string()), |_| "ok".into()))
        },
        max_time: Duration::from_secs(3),
        max_memory: 384 << 20,
    });
}
