//! MSIX `<App>-<version>.msix` written in Rust on any host, in MakeAppx's layout: payload
//! entries, `AppxManifest.xml`, `AppxBlockMap.xml`, `[Content_Types].xml`, then (when signed)
//! `AppxSignature.p7x` and the zip64 central directory.
//!
//! [`write_msix`] writes everything up to the central directory and returns a
//! [`PendingMsix`] holding the four package digests the signer needs; the caller then
//! either finishes it unsigned or hands in the PKCS#7 made over [`AppxDigests::to_blob`].
//! The read side (`verify`): `read` computes the same digests back from a finished
//! package (and returns its signature); `blockmap_check` holds its block map against its
//! files.

mod blockmap;
pub(crate) mod blockmap_check;
pub mod manifest;
pub(crate) mod read;
#[cfg(test)]
mod test_package;
mod zip64;

pub use blockmap::BLOCK_SIZE;
pub use manifest::UNSIGNED_PUBLISHER;

use crate::package::bundle::dos_time_date;
use crate::package::compressibility::probe_files;
use crate::package::deflate_pool::{pack_files, PackFile, Packing, BULK_DEFLATE_LEVEL};
use crate::package::icon::png_logos;
use crate::package::{AppInfo, Bundle, PackageError};
use blockmap::{render_block_map, write_blocked_entry, BlockMapFile, ChunkedEntry};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use zip64::{central_directory, write_plain_stored, EntryRecord, HashingWriter};

/// The package digests an APPX/MSIX signature covers (all SHA-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppxDigests {
    /// Every local record (header, data, descriptor) before the signature entry.
    pub(crate) axpc: [u8; 32],
    /// The central directory and end records as they are without the signature entry.
    pub(crate) axcd: [u8; 32],
    /// Uncompressed `[Content_Types].xml`.
    pub(crate) axct: [u8; 32],
    /// Uncompressed `AppxBlockMap.xml`.
    pub(crate) axbm: [u8; 32],
    /// Uncompressed `AppxMetadata/CodeIntegrity.cat`, when the package has one (ours never
    /// do; the reader finds it in packages made elsewhere).
    pub(crate) axci: Option<[u8; 32]>,
}

impl AppxDigests {
    /// `"APPX" + "AXPC"‖h + "AXCD"‖h + "AXCT"‖h + "AXBM"‖h [+ "AXCI"‖h]`: the value that goes
    /// into the signature's `SpcIndirectDataContent` digest (with `SpcSipInfo` for packages).
    pub fn to_blob(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(4 + 5 * 36);
        b.extend_from_slice(b"APPX");
        for (tag, h) in self.tagged() {
            b.extend_from_slice(tag);
            b.extend_from_slice(h);
        }
        b
    }

    /// The digests in blob order with their tags.
    pub(crate) fn tagged(&self) -> Vec<(&'static [u8; 4], &[u8; 32])> {
        let mut parts = vec![
            (b"AXPC", &self.axpc),
            (b"AXCD", &self.axcd),
            (b"AXCT", &self.axct),
            (b"AXBM", &self.axbm),
        ];
        if let Some(axci) = &self.axci {
            parts.push((b"AXCI", axci));
        }
        parts
    }
}

/// An MSIX written up to its central directory.
pub struct PendingMsix {
    out: PathBuf,
    partial: PathBuf,
    writer: Option<BufWriter<File>>,
    entries: Vec<EntryRecord>,
    data_end: u64,
    unsigned_cd: Vec<u8>,
    digests: AppxDigests,
    will_sign: bool,
    dos: (u16, u16),
}

impl PendingMsix {
    /// The digests the package's signature must cover.
    pub fn digests(&self) -> &AppxDigests {
        &self.digests
    }

    /// Writes the central directory and returns the final path.
    pub fn finish_unsigned(mut self) -> Result<PathBuf, PackageError> {
        let mut w = self.writer.take().expect("writer present until finished");
        w.write_all(&self.unsigned_cd)
            .map_err(PackageError::io("writing MSIX central directory"))?;
        self.close(w)
    }

    /// Writes `AppxSignature.p7x` (`"PKCX"` + the DER PKCS#7) and the central directory.
    pub fn finish_signed(mut self, pkcs7_der: &[u8]) -> Result<PathBuf, PackageError> {
        if !self.will_sign {
            return Err(PackageError::Msix(
                "package was written without the signature content type; call write_msix with will_sign = true".into(),
            ));
        }
        if pkcs7_der.first() != Some(&0x30) || pkcs7_der.len() > u32::MAX as usize - 4 {
            return Err(PackageError::Msix(
                "signature is not a DER PKCS#7 SEQUENCE".into(),
            ));
        }
        let mut w = self.writer.take().expect("writer present until finished");
        let mut p7x = Vec::with_capacity(pkcs7_der.len() + 4);
        p7x.extend_from_slice(b"PKCX");
        p7x.extend_from_slice(pkcs7_der);
        let err = PackageError::io("writing AppxSignature.p7x");
        let record = write_plain_stored(
            &mut w,
            "AppxSignature.p7x",
            &p7x,
            self.dos.0,
            self.dos.1,
            self.data_end,
        )
        .map_err(err)?;
        let cd_offset = self.data_end + 30 + record.name.len() as u64 + p7x.len() as u64;
        let mut entries = std::mem::take(&mut self.entries);
        entries.push(record);
        w.write_all(&central_directory(&entries, cd_offset))
            .map_err(PackageError::io("writing MSIX central directory"))?;
        self.close(w)
    }

    fn close(&mut self, mut w: BufWriter<File>) -> Result<PathBuf, PackageError> {
        w.flush().map_err(PackageError::io("flushing MSIX"))?;
        drop(w);
        std::fs::rename(&self.partial, &self.out).map_err(PackageError::io(format!(
            "moving MSIX to {}",
            self.out.display()
        )))?;
        Ok(self.out.clone())
    }
}

impl Drop for PendingMsix {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Writes the package for `bundle` to `out` (finished by [`PendingMsix`]).
///
/// `publisher_dn` is the signing certificate's subject as Windows renders it (reverse RDN
/// order, e.g. `CN=Name, O=Org, C=US`); `None` writes [`UNSIGNED_PUBLISHER`]. Logos are
/// generated from `logos_src_png`. When `will_sign`, `[Content_Types].xml` already carries
/// the signature's content type, so signing does not change any digest. Empty folders are
/// not representable in an MSIX and are left out.
pub fn write_msix(
    bundle: &Bundle,
    app: &AppInfo,
    publisher_dn: Option<&str>,
    logos_src_png: &Path,
    out: &Path,
    will_sign: bool,
) -> Result<PendingMsix, PackageError> {
    let listing = bundle.list()?;
    let exe_mtime = listing
        .files
        .iter()
        .find(|f| f.rel == bundle.exe_name)
        .map(|f| f.mtime)
        .unwrap_or(std::time::UNIX_EPOCH);
    // Generated parts carry the exe's time so the same inputs give the same package.
    let generated_dos = dos_time_date(exe_mtime);
    let manifest_xml = manifest::appx_manifest(
        app,
        &bundle.exe_name,
        publisher_dn.unwrap_or(UNSIGNED_PUBLISHER),
    )?;

    let logo_dir = tempfile::tempdir().map_err(PackageError::io("creating logo folder"))?;
    let logos = png_logos(logos_src_png, logo_dir.path())?;
    // (bundle-relative path, source, mtime) in package order.
    let mut payload: Vec<(String, PathBuf, (u16, u16))> = listing
        .files
        .iter()
        .map(|f| (f.rel.clone(), f.source.clone(), dos_time_date(f.mtime)))
        .collect();
    for (rel, _, _) in &logos {
        if payload.iter().any(|(p, _, _)| p.eq_ignore_ascii_case(rel)) {
            return Err(PackageError::UnsafeBundle(format!(
                "{rel} is reserved for the generated MSIX logo"
            )));
        }
        payload.push((rel.clone(), logo_dir.path().join(rel), generated_dos));
    }
    for reserved in [
        "AppxManifest.xml",
        "AppxBlockMap.xml",
        "[Content_Types].xml",
        "AppxSignature.p7x",
        "AppxMetadata",
    ] {
        if payload.iter().any(|(p, _, _)| {
            p.eq_ignore_ascii_case(reserved)
                || p.to_ascii_lowercase()
                    .starts_with(&format!("{}/", reserved.to_ascii_lowercase()))
        }) {
            return Err(PackageError::UnsafeBundle(format!(
                "{reserved} is reserved inside an MSIX package"
            )));
        }
    }

    let partial = out.with_extension("msix.partial");
    let written = write_parts(&payload, &manifest_xml, generated_dos, &partial, will_sign);
    let (w, entries, data_end, unsigned_cd, digests) = match written {
        Ok(parts) => parts,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    Ok(PendingMsix {
        out: out.to_path_buf(),
        partial,
        writer: Some(w),
        entries,
        data_end,
        unsigned_cd,
        digests,
        will_sign,
        dos: generated_dos,
    })
}

type WrittenParts = (BufWriter<File>, Vec<EntryRecord>, u64, Vec<u8>, AppxDigests);

/// Writes payload, manifest, block map and content types to `partial`.
fn write_parts(
    payload: &[(String, PathBuf, (u16, u16))],
    manifest_xml: &str,
    generated_dos: (u16, u16),
    partial: &Path,
    will_sign: bool,
) -> Result<WrittenParts, PackageError> {
    let file = File::create(partial)
        .map_err(PackageError::io(format!("creating {}", partial.display())))?;
    let mut w = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let mut entries = Vec::new();
    let mut map_files: Vec<BlockMapFile> = Vec::new();
    let mut part_names = Vec::new();
    let io_err =
        |what: &str| PackageError::io(format!("writing {what} into {}", partial.display()));

    // Payload: files that compress are deflated, the others stored; 64 KiB blocks are
    // packed and hashed on every core.
    let mut sized = Vec::with_capacity(payload.len());
    for (_, source, _) in payload {
        let size = std::fs::metadata(source)
            .map_err(PackageError::io(format!("stat {}", source.display())))?
            .len();
        sized.push((source.as_path(), size));
    }
    let probes = probe_files(&sized).map_err(PackageError::io("sampling the payload"))?;
    let files: Vec<PackFile> = sized
        .iter()
        .zip(&probes)
        .map(|(&(path, size), probe)| PackFile {
            path,
            packing: if size > 0 && probe.compresses() {
                Packing::Deflate(BULK_DEFLATE_LEVEL)
            } else {
                Packing::Store
            },
        })
        .collect();
    let mut current: Option<ChunkedEntry> = None;
    pack_files(&files, BLOCK_SIZE, true, |chunk| {
        let (rel, _, dos) = &payload[chunk.file];
        if chunk.first {
            let part = manifest::part_name(rel);
            let deflate = files[chunk.file].packing != Packing::Store;
            let offset = w.written;
            current = Some(ChunkedEntry::begin(&mut w, offset, &part, deflate, *dos)?);
            part_names.push(part);
        }
        let entry = current.as_mut().expect("entry begun by its first chunk");
        entry.add(&mut w, &chunk)?;
        if chunk.last {
            let (record, mut map) = current.take().expect("entry open").finish(&mut w)?;
            map.name = rel.replace('/', "\\");
            entries.push(record);
            map_files.push(map);
        }
        Ok(())
    })
    .map_err(PackageError::io(format!(
        "writing the payload into {}",
        partial.display()
    )))?;
    let offset = w.written;
    let (record, mut map) = write_blocked_entry(
        &mut w,
        offset,
        "AppxManifest.xml",
        &mut manifest_xml.as_bytes(),
        true,
        generated_dos,
    )
    .map_err(io_err("AppxManifest.xml"))?;
    map.name = "AppxManifest.xml".into();
    entries.push(record);
    map_files.push(map);

    let block_map = render_block_map(&map_files)?;
    let offset = w.written;
    let (record, _) = write_blocked_entry(
        &mut w,
        offset,
        "AppxBlockMap.xml",
        &mut block_map.as_bytes(),
        true,
        generated_dos,
    )
    .map_err(io_err("AppxBlockMap.xml"))?;
    entries.push(record);

    let content_types = manifest::content_types(&part_names, will_sign);
    let offset = w.written;
    let (record, _) = write_blocked_entry(
        &mut w,
        offset,
        "[Content_Types].xml",
        &mut content_types.as_bytes(),
        true,
        generated_dos,
    )
    .map_err(io_err("[Content_Types].xml"))?;
    entries.push(record);

    let data_end = w.written;
    let axpc = w.digest();
    let unsigned_cd = central_directory(&entries, data_end);
    let digests = AppxDigests {
        axpc,
        axcd: Sha256::digest(&unsigned_cd).into(),
        axct: Sha256::digest(content_types.as_bytes()).into(),
        axbm: Sha256::digest(block_map.as_bytes()).into(),
        axci: None,
    };
    Ok((w.into_inner(), entries, data_end, unsigned_cd, digests))
}
