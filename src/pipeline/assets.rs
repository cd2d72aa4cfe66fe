//! The `generating_assets` stage: the application icon as `app.ico` and a PNG for MSIX
//! logos, from the manifest's PNG, a precompiled bundle's `app.ico`, or a default.

use super::compile::CompiledApp;
use super::JobContext;
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use crate::package;
use std::path::{Path, PathBuf};

pub(crate) struct IconSet {
    pub(crate) ico: PathBuf,
    /// A PNG of at least 256 px, source of the MSIX logos.
    pub(crate) png: PathBuf,
}

pub(crate) fn generate(job: &JobContext, app: &CompiledApp) -> Result<IconSet, JobError> {
    let stage = Stage::GeneratingAssets;
    let fail = |e: &dyn std::fmt::Display| {
        JobError::new(ErrorCode::PackageFailed, Some(stage), e.to_string())
    };
    let dir = job.work_dir.join("assets");
    std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
    let ico = dir.join("app.ico");

    let png = match (&app.icon_png, &app.ico) {
        (Some(png), _) => {
            job.events
                .stage(stage, "Generating the icon from the manifest's PNG");
            package::icon::png_to_ico(png, &ico).map_err(|e| fail(&e))?;
            png.clone()
        }
        (None, Some(bundle_ico)) => {
            job.events.stage(stage, "Using the bundle's app.ico");
            std::fs::copy(bundle_ico, &ico).map_err(|e| fail(&e))?;
            let png = dir.join("icon-from-ico.png");
            largest_ico_image_as_png(bundle_ico, &png)
                .map_err(|e| fail(&format!("app.ico: {e:#}")))?;
            png
        }
        (None, None) => {
            job.events
                .stage(stage, "No icon in the manifest: using the default icon");
            let png = dir.join("default-icon.png");
            write_default_icon(&png).map_err(|e| fail(&format!("{e:#}")))?;
            package::icon::png_to_ico(&png, &ico).map_err(|e| fail(&e))?;
            png
        }
    };
    job.events.progress(stage, 100, Some("icon ready"));
    Ok(IconSet { ico, png })
}

/// Writes the biggest image of an `.ico` file as PNG (MSIX logos need a PNG source).
pub(crate) fn largest_ico_image_as_png(ico_path: &Path, png_out: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(ico_path)?;
    package::icon::check_ico_layout(&bytes).map_err(anyhow::Error::msg)?;
    let dir = ico::IconDir::read(std::io::Cursor::new(bytes))?;
    let entry = dir
        .entries()
        .iter()
        .max_by_key(|e| e.width())
        .ok_or_else(|| anyhow::anyhow!("holds no image"))?;
    let limit = package::icon::MAX_ICO_IMAGE_PX;
    if entry.width().max(entry.height()) > limit {
        anyhow::bail!(
            "its largest image is {}x{} px (at most {limit} px)",
            entry.width(),
            entry.height()
        );
    }
    let image = entry.decode()?;
    image.write_png(std::fs::File::create(png_out)?)?;
    Ok(())
}

/// A plain 256 px rounded square in Perry blue, used when a project has no icon.
fn write_default_icon(path: &Path) -> anyhow::Result<()> {
    let size = 256u32;
    let img = image::RgbaImage::from_fn(size, size, |x, y| {
        let (cx, cy) = (x.min(size - 1 - x), y.min(size - 1 - y));
        let corner = cx < 32 && cy < 32 && (32 - cx).pow(2) + (32 - cy).pow(2) > 32 * 32;
        if corner {
            image::Rgba([0, 0, 0, 0])
        } else {
            image::Rgba([36, 99, 235, 255])
        }
    });
    img.save_with_format(path, image::ImageFormat::Png)?;
    Ok(())
}
