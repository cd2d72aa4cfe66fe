//! GNU long-name/long-link and PAX extended headers of an untrusted tar, read with size
//! caps so a hostile header cannot exhaust memory.

use super::{corrupt, UnpackError};
use crate::untrusted::path::MAX_PATH_BYTES;
use std::io::Read;
use tar::EntryType;

/// Largest PAX extended header accepted.
const MAX_PAX_BYTES: u64 = 1 << 20;

/// GNU long-name/long-link and PAX headers that apply to the next real entry.
#[derive(Default)]
pub(crate) struct Extensions {
    pub(crate) path: Option<Vec<u8>>,
    pub(crate) link: Option<Vec<u8>>,
    pub(crate) size: Option<u64>,
}

impl Extensions {
    pub(crate) fn any(&self) -> bool {
        self.path.is_some() || self.link.is_some() || self.size.is_some()
    }

    /// Consumes `entry` when it is an extension header; `Ok(false)` for a real entry.
    pub(crate) fn absorb<R: Read>(
        &mut self,
        kind: EntryType,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<bool, UnpackError> {
        match kind {
            EntryType::GNULongName => self.path = Some(read_long_name(entry, "(GNU long name)")?),
            EntryType::GNULongLink => {
                self.link = Some(read_long_name(entry, "(GNU long link target)")?)
            }
            EntryType::XHeader => {
                let data = read_capped(entry, MAX_PAX_BYTES, "PAX header")?;
                for ext in tar::PaxExtensions::new(&data) {
                    let ext = ext.map_err(corrupt)?;
                    match ext.key_bytes() {
                        b"path" => self.path = Some(ext.value_bytes().to_vec()),
                        b"linkpath" => self.link = Some(ext.value_bytes().to_vec()),
                        b"size" => {
                            let size = ext.value().ok().and_then(|v| v.parse().ok());
                            self.size = Some(
                                size.ok_or_else(|| UnpackError::Corrupt("bad PAX size".into()))?,
                            );
                        }
                        _ => {}
                    }
                }
            }
            // Global PAX headers carry defaults we do not use; their data is skipped.
            EntryType::XGlobalHeader => {}
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A GNU long name: at most [`MAX_PATH_BYTES`] plus its NUL terminator.
fn read_long_name<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    what: &str,
) -> Result<Vec<u8>, UnpackError> {
    let size = entry.header().entry_size().map_err(corrupt)?;
    if size > MAX_PATH_BYTES as u64 + 1 {
        return Err(UnpackError::NameTooLong {
            entry: what.into(),
            len: usize::try_from(size).unwrap_or(usize::MAX),
            limit: MAX_PATH_BYTES,
        });
    }
    let mut data = read_capped(entry, size, what)?;
    while data.last() == Some(&0) {
        data.pop();
    }
    Ok(data)
}

fn read_capped<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    cap: u64,
    what: &str,
) -> Result<Vec<u8>, UnpackError> {
    let size = entry.header().entry_size().map_err(corrupt)?;
    if size > cap {
        return Err(UnpackError::Corrupt(format!(
            "{what} of {size} bytes is larger than {cap}"
        )));
    }
    let mut data = Vec::with_capacity(size as usize);
    entry.take(cap).read_to_end(&mut data).map_err(corrupt)?;
    Ok(data)
}
