//! How the NSIS installer compresses its payload (`PERRY_NSIS_COMPRESSION`), decided per
//! build from the payload itself.
//!
//! makensis takes one compressor per installer, solid (one stream over everything) or
//! not (one stream per file, and `SetCompress off` stores a file as is). Measured with
//! makensis 3.08 on the 2-core build machine: solid LZMA runs at ~1.5 MiB/s on executables
//! and already-compressed media and ~0.6 MiB/s on text; bzip2 runs at ~10 MiB/s on all of
//! them and matches LZMA's size on text (0.95x) but not on executables (1.6x); zlib is
//! slower than bzip2 and larger on both, so `auto` never picks it. `auto`:
//! 1. a payload of at most `SOLID_MAX_BYTES` is small enough for solid LZMA (a few
//!    seconds, the smallest installer);
//! 2. otherwise every file is sampled (`super::compressibility`): files that do not
//!    compress are stored, and the others go through bzip2 when its predicted installer
//!    size is within 5 % of LZMA's, else LZMA;
//! 3. LZMA with less than `STORE_WORTH_BYTES` to store stays solid.

use super::bundle::BundleListing;
use super::compressibility::{probe_files, Probe};
use super::PackageError;

/// Payloads up to this size always get solid LZMA under `auto`.
pub(crate) const SOLID_MAX_BYTES: u64 = 8 << 20;
/// Under `auto`, LZMA goes non-solid only when at least this much can be stored.
pub(crate) const STORE_WORTH_BYTES: u64 = 4 << 20;
/// bzip2 is chosen when its predicted size is at most this factor of LZMA's.
const BZIP2_SIZE_TOLERANCE: f64 = 1.05;
/// Predicted makensis output per byte of level-1 deflate output (measured on generated
/// source text and on PE files): LZMA on anything, bzip2 on text, bzip2 on binaries.
const LZMA_PER_DEFLATE1: f64 = 0.55;
const BZIP2_PER_DEFLATE1_TEXT: f64 = 0.53;
const BZIP2_PER_DEFLATE1_BINARY: f64 = 0.85;

/// The operator's setting (`PERRY_NSIS_COMPRESSION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NsisCompression {
    /// Chosen per payload among bzip2, LZMA and solid LZMA (the default).
    #[default]
    Auto,
    /// `lzma-solid`: smallest, slowest.
    LzmaSolid,
    /// `bzip2`, non-solid; files that do not compress are stored.
    Bzip2,
    /// `zlib`, non-solid; files that do not compress are stored.
    Zlib,
    /// `store`: nothing compressed.
    Store,
}

impl NsisCompression {
    /// The accepted spellings, for error messages and docs.
    pub(crate) const VALUES: &'static str = "auto, lzma-solid, bzip2, zlib, store";

    /// Parses a setting (case-insensitive); the error lists the accepted values.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(NsisCompression::Auto),
            "lzma-solid" => Ok(NsisCompression::LzmaSolid),
            "bzip2" => Ok(NsisCompression::Bzip2),
            "zlib" => Ok(NsisCompression::Zlib),
            "store" => Ok(NsisCompression::Store),
            _ => Err(format!("{value:?} is not one of {}", Self::VALUES)),
        }
    }
}

/// The compressor makensis runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compressor {
    /// Solid LZMA: the whole payload as one stream.
    LzmaSolid,
    /// LZMA per file (so incompressible files can be stored).
    Lzma,
    /// bzip2 per file.
    Bzip2,
    /// zlib per file.
    Zlib,
    /// Nothing compressed.
    Store,
}

/// The compressor, and which payload files are stored (in listing order).
#[derive(Clone, Debug, PartialEq)]
pub struct CompressionPlan {
    /// The compressor makensis runs with.
    pub(crate) compressor: Compressor,
    stored: Vec<bool>,
    stored_bytes: u64,
}

impl CompressionPlan {
    /// A plan with no per-file decisions.
    pub(crate) fn uniform(compressor: Compressor, files: usize) -> Self {
        CompressionPlan {
            compressor,
            stored: vec![false; files],
            stored_bytes: 0,
        }
    }

    /// The script's compressor directives (replaces the template's `{{compressor}}`).
    pub(crate) fn directives(&self) -> &'static str {
        match self.compressor {
            Compressor::LzmaSolid => "SetCompressor /SOLID lzma",
            Compressor::Lzma => "SetCompressor lzma",
            Compressor::Bzip2 => "SetCompressor bzip2",
            Compressor::Zlib => "SetCompressor zlib",
            Compressor::Store => "SetCompressor zlib\nSetCompress off",
        }
    }

    /// True when the `index`-th listing file gets `SetCompress off` around its `File`.
    pub(crate) fn is_stored(&self, index: usize) -> bool {
        self.stored.get(index).copied().unwrap_or(false)
    }

    /// One line for the job log.
    pub fn describe(&self) -> String {
        let name = match self.compressor {
            Compressor::LzmaSolid => "solid LZMA",
            Compressor::Lzma => "LZMA",
            Compressor::Bzip2 => "bzip2",
            Compressor::Zlib => "zlib",
            Compressor::Store => "no compression",
        };
        let count = self.stored.iter().filter(|s| **s).count();
        if count == 0 {
            format!("installer compression: {name}")
        } else {
            format!(
                "installer compression: {name}; {count} file(s) ({:.1} MiB) stored because they do not compress",
                self.stored_bytes as f64 / 1048576.0
            )
        }
    }
}

/// Decides how the installer for `listing` is compressed under `setting`.
pub(crate) fn plan(
    listing: &BundleListing,
    setting: NsisCompression,
) -> Result<CompressionPlan, PackageError> {
    let n = listing.files.len();
    let fixed = match setting {
        NsisCompression::LzmaSolid => Some(Compressor::LzmaSolid),
        NsisCompression::Store => Some(Compressor::Store),
        NsisCompression::Auto if listing.total_size() <= SOLID_MAX_BYTES => {
            Some(Compressor::LzmaSolid)
        }
        _ => None,
    };
    if let Some(compressor) = fixed {
        return Ok(CompressionPlan::uniform(compressor, n));
    }
    let inputs: Vec<_> = listing
        .files
        .iter()
        .map(|f| (f.source.as_path(), f.size))
        .collect();
    let probes = probe_files(&inputs).map_err(PackageError::io("sampling the payload"))?;
    let sizes: Vec<u64> = listing.files.iter().map(|f| f.size).collect();
    Ok(plan_from_probes(setting, &sizes, &probes))
}

/// [`plan`] once the files are sampled (`sizes` and `probes` in listing order).
pub(crate) fn plan_from_probes(
    setting: NsisCompression,
    sizes: &[u64],
    probes: &[Probe],
) -> CompressionPlan {
    let stored: Vec<bool> = probes.iter().map(|p| !p.compresses()).collect();
    let stored_bytes: u64 = sizes
        .iter()
        .zip(&stored)
        .filter(|(_, s)| **s)
        .map(|(z, _)| z)
        .sum();
    let compressor = match setting {
        NsisCompression::Bzip2 => Compressor::Bzip2,
        NsisCompression::Zlib => Compressor::Zlib,
        NsisCompression::LzmaSolid => Compressor::LzmaSolid,
        NsisCompression::Store => Compressor::Store,
        NsisCompression::Auto => {
            let (mut lzma, mut bzip2) = (stored_bytes as f64, stored_bytes as f64);
            for ((size, probe), is_stored) in sizes.iter().zip(probes).zip(&stored) {
                if *is_stored {
                    continue;
                }
                let deflate1 = *size as f64 * probe.ratio();
                lzma += deflate1 * LZMA_PER_DEFLATE1;
                bzip2 += deflate1
                    * if probe.is_text() {
                        BZIP2_PER_DEFLATE1_TEXT
                    } else {
                        BZIP2_PER_DEFLATE1_BINARY
                    };
            }
            if bzip2 <= lzma * BZIP2_SIZE_TOLERANCE {
                Compressor::Bzip2
            } else if stored_bytes < STORE_WORTH_BYTES {
                Compressor::LzmaSolid
            } else {
                Compressor::Lzma
            }
        }
    };
    if matches!(compressor, Compressor::LzmaSolid | Compressor::Store) {
        return CompressionPlan::uniform(compressor, sizes.len());
    }
    CompressionPlan {
        compressor,
        stored,
        stored_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn probe(ratio: f64, text: bool) -> Probe {
        let sampled = 256 * 1024;
        Probe {
            sampled,
            deflated: (sampled as f64 * ratio) as u64,
            text_like: if text { sampled } else { sampled / 2 },
        }
    }

    #[test]
    fn settings_parse_and_bad_ones_list_the_values() {
        assert_eq!(NsisCompression::parse("auto"), Ok(NsisCompression::Auto));
        assert_eq!(
            NsisCompression::parse("LZMA-Solid"),
            Ok(NsisCompression::LzmaSolid)
        );
        assert_eq!(NsisCompression::parse("bzip2"), Ok(NsisCompression::Bzip2));
        assert_eq!(NsisCompression::parse("zlib"), Ok(NsisCompression::Zlib));
        assert_eq!(NsisCompression::parse("store"), Ok(NsisCompression::Store));
        let err = NsisCompression::parse("lzma").unwrap_err();
        assert!(
            err.contains("\"lzma\"") && err.contains(NsisCompression::VALUES),
            "{err}"
        );
    }

    #[test]
    fn media_is_stored_and_text_goes_to_bzip2() {
        let plan = plan_from_probes(
            NsisCompression::Auto,
            &[64 * MIB, 64 * MIB, MIB],
            &[probe(1.0, false), probe(0.45, true), probe(0.4, false)],
        );
        assert_eq!(plan.compressor, Compressor::Bzip2);
        assert!(plan.is_stored(0) && !plan.is_stored(1) && !plan.is_stored(2));
        assert!(
            plan.describe().contains("1 file(s) (64.0 MiB) stored"),
            "{}",
            plan.describe()
        );
    }

    #[test]
    fn executables_keep_lzma_solid_unless_media_can_be_stored() {
        let exes = plan_from_probes(
            NsisCompression::Auto,
            &[40 * MIB, MIB],
            &[probe(0.37, false), probe(1.0, false)],
        );
        assert_eq!(exes.compressor, Compressor::LzmaSolid);
        assert!(!exes.is_stored(1), "solid mode stores nothing");
        let with_media = plan_from_probes(
            NsisCompression::Auto,
            &[40 * MIB, 20 * MIB],
            &[probe(0.37, false), probe(1.0, false)],
        );
        assert_eq!(with_media.compressor, Compressor::Lzma);
        assert!(with_media.is_stored(1) && !with_media.is_stored(0));
        assert_eq!(with_media.directives(), "SetCompressor lzma");
    }

    #[test]
    fn explicit_settings_are_obeyed() {
        let sizes = [64 * MIB, 64 * MIB];
        let probes = [probe(1.0, false), probe(0.45, true)];
        let zlib = plan_from_probes(NsisCompression::Zlib, &sizes, &probes);
        assert_eq!(zlib.compressor, Compressor::Zlib);
        assert!(zlib.is_stored(0));
        let store = plan_from_probes(NsisCompression::Store, &sizes, &probes);
        assert_eq!(store.directives(), "SetCompressor zlib\nSetCompress off");
        assert!(
            !store.is_stored(0),
            "no per-file toggles when nothing is compressed"
        );
        let solid = plan_from_probes(NsisCompression::LzmaSolid, &sizes, &probes);
        assert_eq!(solid.directives(), "SetCompressor /SOLID lzma");
    }
}
