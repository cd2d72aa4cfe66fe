//! The app icon: `manifest.icon` (a PNG of at least 256 px) → `app.ico` with the sizes
//! Windows asks for, and the logo PNGs the MSIX manifest references.

use super::PackageError;
use image::{imageops::FilterType, DynamicImage, GenericImageView, ImageFormat, RgbaImage};
use std::path::Path;

/// Sizes written into `app.ico`, smallest first.
pub const ICO_SIZES: [u32; 7] = [16, 24, 32, 48, 64, 128, 256];
/// The smallest accepted source (longer side, in pixels).
pub(crate) const MIN_SOURCE_PX: u32 = 256;

/// MSIX logos: (path inside the package, width, height). `templates/AppxManifest.xml`
/// references exactly these.
pub(crate) const MSIX_LOGOS: [(&str, u32, u32); 4] = [
    ("Assets/StoreLogo.png", 50, 50),
    ("Assets/Square44x44Logo.png", 44, 44),
    ("Assets/Square150x150Logo.png", 150, 150),
    ("Assets/Wide310x150Logo.png", 310, 150),
];

/// Largest image side decoded from an ICO entry (Windows icons are at most 256 px; PNG
/// entries may be bigger, but not big enough to make decoding a memory bomb).
pub(crate) const MAX_ICO_IMAGE_PX: u32 = 1024;

/// Checks an ICO file's directory before a decoder copies its entries: the entries must fit
/// in the file and their data spans must not add up to more than the file (spans that all
/// point at the whole file would make a small ICO cost gigabytes to read).
pub(crate) fn check_ico_layout(bytes: &[u8]) -> Result<(), String> {
    let field = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let count = bytes
        .get(4..6)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize)
        .ok_or("the ICO header is truncated")?;
    if 6 + 16 * count > bytes.len() {
        return Err(format!(
            "the ICO lists {count} images but is too short for them"
        ));
    }
    let total: u64 = (0..count)
        .map(|i| u64::from(field(6 + 16 * i + 8).unwrap_or(0)))
        .sum();
    if total > bytes.len() as u64 {
        return Err(format!(
            "the ICO's images claim {total} bytes, more than the file's {} (overlapping images)",
            bytes.len()
        ));
    }
    Ok(())
}

/// Loads the source PNG, refusing anything that is not a PNG of at least 256 px, and pads
/// a non-square image to a transparent square (centred) so it never gets stretched.
pub(crate) fn load_square_png(png: &Path) -> Result<RgbaImage, PackageError> {
    let bad = |reason: String| PackageError::BadIcon {
        path: png.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(png).map_err(|e| bad(format!("cannot read: {e}")))?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(bad(
            "not a PNG file (the icon must be a PNG of at least 256x256 px)".into(),
        ));
    }
    let img = image::load_from_memory_with_format(&bytes, ImageFormat::Png)
        .map_err(|e| bad(format!("PNG cannot be decoded: {e}")))?;
    let (w, h) = img.dimensions();
    if w.max(h) < MIN_SOURCE_PX {
        return Err(bad(format!(
            "{w}x{h} px is too small; the icon must be at least {MIN_SOURCE_PX}x{MIN_SOURCE_PX} px"
        )));
    }
    if w.max(h) > 8192 {
        return Err(bad(format!("{w}x{h} px is too large (8192 px max)")));
    }
    Ok(pad_to_square(&img))
}

fn pad_to_square(img: &DynamicImage) -> RgbaImage {
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    if w == h {
        return rgba;
    }
    let side = w.max(h);
    let mut square = RgbaImage::new(side, side);
    image::imageops::overlay(
        &mut square,
        &rgba,
        ((side - w) / 2) as i64,
        ((side - h) / 2) as i64,
    );
    square
}

/// Writes `ico_out` with one entry per [`ICO_SIZES`] (the 256 px entry PNG-compressed,
/// the others as 32-bit BMP, as Windows' own tools do).
pub fn png_to_ico(png: &Path, ico_out: &Path) -> Result<(), PackageError> {
    let square = load_square_png(png)?;
    let mut dir = ico::IconDir::new(ico::ResourceType::Icon);
    for size in ICO_SIZES {
        let scaled = image::imageops::resize(&square, size, size, FilterType::Lanczos3);
        let icon = ico::IconImage::from_rgba_data(size, size, scaled.into_raw());
        let entry = if size >= 256 {
            ico::IconDirEntry::encode_as_png(&icon)
        } else {
            ico::IconDirEntry::encode_as_bmp(&icon)
        }
        .map_err(PackageError::io("encoding icon entry"))?;
        dir.add_entry(entry);
    }
    let file = std::fs::File::create(ico_out)
        .map_err(PackageError::io(format!("creating {}", ico_out.display())))?;
    dir.write(std::io::BufWriter::new(file))
        .map_err(PackageError::io(format!("writing {}", ico_out.display())))
}

/// Writes the [`MSIX_LOGOS`] under `out_dir` and returns them as (relative path, w, h).
/// The wide logo centres the square icon on a transparent background.
pub(crate) fn png_logos(
    png: &Path,
    out_dir: &Path,
) -> Result<Vec<(String, u32, u32)>, PackageError> {
    let square = load_square_png(png)?;
    let mut written = Vec::new();
    for (rel, w, h) in MSIX_LOGOS {
        let side = w.min(h);
        let scaled = image::imageops::resize(&square, side, side, FilterType::Lanczos3);
        let mut canvas = RgbaImage::new(w, h);
        image::imageops::overlay(
            &mut canvas,
            &scaled,
            ((w - side) / 2) as i64,
            ((h - side) / 2) as i64,
        );
        let path = out_dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(PackageError::io(format!("creating {}", parent.display())))?;
        }
        canvas
            .save_with_format(&path, ImageFormat::Png)
            .map_err(|e| PackageError::BadIcon {
                path: path.clone(),
                reason: format!("cannot write logo: {e}"),
            })?;
        written.push((rel.to_string(), w, h));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::check_ico_layout;

    fn ico(entries: &[(u32, u32)], len: usize) -> Vec<u8> {
        let mut d = vec![0, 0, 1, 0];
        d.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (size, offset) in entries {
            d.extend_from_slice(&[16, 16, 0, 0, 1, 0, 32, 0]);
            d.extend_from_slice(&size.to_le_bytes());
            d.extend_from_slice(&offset.to_le_bytes());
        }
        d.resize(len.max(d.len()), 0);
        d
    }

    #[test]
    fn ico_entries_must_fit_without_overlapping() {
        assert!(check_ico_layout(&ico(&[(100, 38), (100, 138)], 238)).is_ok());
        let whole = ico(&[(300, 0), (300, 0), (300, 0)], 300);
        assert!(check_ico_layout(&whole)
            .unwrap_err()
            .contains("overlapping"));
        let mut short = ico(&[(10, 22)], 32);
        short[4] = 200;
        assert!(check_ico_layout(&short).unwrap_err().contains("too short"));
        assert!(check_ico_layout(b"\0\0").is_err());
    }
}
