//! The portable ZIP `<App>-<version>-portable.zip`: one top folder `<ascii name>/` holding
//! the bundle (exe, DLLs, asset folders, recursively), deflated, every entry dated [`super::source_date`].
//! Files are streamed through the compressor; memory does not grow with their size.

use super::bundle::{utc_fields, BundleListing};
use super::{AppInfo, Bundle, PackageError};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Writes the portable ZIP to `out`; `progress(done_bytes, total_bytes)` after each chunk.
pub fn write_portable_zip(
    bundle: &Bundle,
    app: &AppInfo,
    out: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<(), PackageError> {
    let listing = bundle.list()?;
    let partial = out.with_extension("zip.partial");
    let result = write_zip(&listing, app, &partial, progress).and_then(|()| {
        std::fs::rename(&partial, out)
            .map_err(PackageError::io(format!("moving ZIP to {}", out.display())))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn write_zip(
    listing: &BundleListing,
    app: &AppInfo,
    out: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<(), PackageError> {
    let total = listing.total_size();
    let zip_err = |e: zip::result::ZipError| PackageError::Io {
        context: format!("writing {}", out.display()),
        source: std::io::Error::other(e),
    };
    let file = std::fs::File::create(out)
        .map_err(PackageError::io(format!("creating {}", out.display())))?;
    let mut zip = ZipWriter::new(BufWriter::new(file));
    let top = &app.ascii_name;
    let (y, mo, d, h, mi, s) = utc_fields(super::source_date());
    let dir_stamp = DateTime::from_date_and_time(y, mo, d, h, mi, s).unwrap_or_default();
    let dir_opts = SimpleFileOptions::default()
        .last_modified_time(dir_stamp)
        .unix_permissions(0o755);
    zip.add_directory(format!("{top}/"), dir_opts)
        .map_err(zip_err)?;
    for dir in &listing.dirs {
        zip.add_directory(format!("{top}/{dir}/"), dir_opts)
            .map_err(zip_err)?;
    }
    let mut done = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for f in &listing.files {
        let (y, mo, d, h, mi, s) = utc_fields(f.mtime);
        let stamp = DateTime::from_date_and_time(y, mo, d, h, mi, s).unwrap_or_default();
        let opts = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(stamp)
            .unix_permissions(0o644)
            .large_file(f.size >= u32::MAX as u64);
        zip.start_file(format!("{top}/{}", f.rel), opts)
            .map_err(zip_err)?;
        let mut src = std::fs::File::open(&f.source)
            .map_err(PackageError::io(format!("reading {}", f.source.display())))?;
        loop {
            let n = src
                .read(&mut buf)
                .map_err(PackageError::io(format!("reading {}", f.source.display())))?;
            if n == 0 {
                break;
            }
            zip.write_all(&buf[..n])
                .map_err(PackageError::io(format!("writing {}", out.display())))?;
            done += n as u64;
            progress(done, total);
        }
    }
    let mut inner = zip.finish().map_err(zip_err)?;
    inner
        .flush()
        .map_err(PackageError::io(format!("writing {}", out.display())))?;
    Ok(())
}
