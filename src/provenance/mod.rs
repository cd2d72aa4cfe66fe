//! Build records: for each artifact, an in-toto Statement v1 with a SLSA v1 provenance
//! predicate ([`statement`]) naming the artifact's SHA-256 and its inputs ([`inputs`]),
//! wrapped in a DSSE envelope (`dsse`) signed with the job's signing identity (unsigned
//! builds get an envelope without signatures). The record is one JSON line in
//! `<artifact>.intoto.jsonl`. [`check`] verifies artifacts and records (`verify` command);
//! [`compare`] (with `compare_msix` and `compare_installer`) matches an artifact with an
//! unsigned rebuild; `unpack` unpacks installers with 7z; `upload` orders hub uploads.

pub mod check;
pub mod compare;
pub(crate) mod compare_installer;
pub(crate) mod compare_msix;
pub(crate) mod dsse;
pub mod inputs;
pub mod statement;
pub(crate) mod unpack;
pub(crate) mod upload;

use crate::sign::SigningSession;
use anyhow::{Context, Result};
use dsse::Envelope;
use statement::BuildInputs;
use std::path::{Path, PathBuf};

/// Appended to the artifact's file name.
pub(crate) const RECORD_SUFFIX: &str = ".intoto.jsonl";

/// `<artifact>.intoto.jsonl` beside `artifact`.
pub fn record_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.file_name().unwrap_or_default().to_os_string();
    name.push(RECORD_SUFFIX);
    artifact.with_file_name(name)
}

/// A written record: its SHA-256 (it is written at [`record_path`] of the artifact).
#[derive(Clone, Debug)]
pub(crate) struct WrittenRecord {
    /// SHA-256 of the record file, lowercase hex.
    pub(crate) sha256: String,
}

/// Writes the record of `artifact` (whose user-facing name is `name`) beside it, signed by
/// `session` when there is one.
pub(crate) async fn write_record(
    artifact: &Path,
    name: &str,
    inputs: &BuildInputs,
    session: Option<&SigningSession>,
) -> Result<WrittenRecord> {
    let artifact_sha256 =
        inputs::sha256_file(artifact).with_context(|| format!("hashing {}", artifact.display()))?;
    let statement = statement::statement(name, &artifact_sha256, inputs);
    let payload = serde_json::to_vec(&statement).context("encoding the statement")?;
    let envelope = match session {
        Some(session) => Envelope::sign(&payload, session)
            .await
            .context("signing the build record")?,
        None => Envelope::unsigned(&payload),
    };
    let mut line = serde_json::to_vec(&envelope).context("encoding the envelope")?;
    line.push(b'\n');
    let path = record_path(artifact);
    std::fs::write(&path, &line).with_context(|| format!("writing {}", path.display()))?;
    let sha256 =
        inputs::sha256_file(&path).with_context(|| format!("hashing {}", path.display()))?;
    Ok(WrittenRecord { sha256 })
}

/// Reads the first envelope of a `.intoto.jsonl` file.
pub fn read_record(path: &Path) -> Result<Envelope> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .with_context(|| format!("{} holds no record", path.display()))?;
    serde_json::from_str(line).with_context(|| format!("{} is not a DSSE envelope", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_sits_beside_the_artifact() {
        assert_eq!(
            record_path(Path::new("/out/App-1.0-Setup.exe")),
            PathBuf::from("/out/App-1.0-Setup.exe.intoto.jsonl")
        );
    }
}
