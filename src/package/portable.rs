//! The portable ZIP `<App>-<version>-portable.zip`: one top folder `<ascii name>/` holding
//! the bundle (exe, DLLs, asset folders, recursively), every entry dated
//! [`super::source_date()`], so the same bundle gives the same bytes.
//!
//! Files that compress are deflated, the others (media, archives: see
//! `super::compressibility`) are stored. Deflating runs on every core in 512 KiB chunks
//! (`super::deflate_pool`); memory does not grow with the files' sizes.

use super::bundle::{dos_time_date, BundleListing};
use super::compressibility::probe_files;
use super::deflate_pool::{pack_files, PackFile, Packing, BULK_DEFLATE_LEVEL};
use super::zip_stream::{ZipStream, METHOD_DEFLATED, METHOD_STORED};
use super::{AppInfo, Bundle, PackageError};
use std::path::Path;

const CHUNK_BYTES: usize = 512 * 1024;

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
    let inputs: Vec<_> = listing
        .files
        .iter()
        .map(|f| (f.source.as_path(), f.size))
        .collect();
    let probes = probe_files(&inputs).map_err(PackageError::io("sampling the bundle"))?;
    let files: Vec<PackFile> = listing
        .files
        .iter()
        .zip(&probes)
        .map(|(f, probe)| PackFile {
            path: &f.source,
            packing: if probe.compresses() {
                Packing::Deflate(BULK_DEFLATE_LEVEL)
            } else {
                Packing::Store
            },
        })
        .collect();

    let io_err = || PackageError::io(format!("writing {}", out.display()));
    let mut zip = ZipStream::create(out).map_err(io_err())?;
    let top = &app.ascii_name;
    let folder_time = dos_time_date(super::source_date());
    zip.add_directory(&format!("{top}/"), folder_time, 0o755)
        .map_err(io_err())?;
    for dir in &listing.dirs {
        zip.add_directory(&format!("{top}/{dir}/"), folder_time, 0o755)
            .map_err(io_err())?;
    }
    let mut done = 0u64;
    pack_files(&files, CHUNK_BYTES, false, |chunk| {
        let f = &listing.files[chunk.file];
        if chunk.first {
            let method = match files[chunk.file].packing {
                Packing::Store => METHOD_STORED,
                Packing::Deflate(_) => METHOD_DEFLATED,
            };
            zip.begin_file(
                &format!("{top}/{}", f.rel),
                method,
                dos_time_date(f.mtime),
                0o644,
                f.size,
            )?;
        }
        zip.write_chunk(&chunk.bytes, chunk.raw_len, &chunk.crc)?;
        if chunk.last {
            zip.end_file()?;
        }
        done += chunk.raw_len as u64;
        progress(done, total);
        Ok(())
    })
    .map_err(io_err())?;
    zip.finish().map_err(io_err())
}
