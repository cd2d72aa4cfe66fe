//! Opt-in upload of build records (`PERRY_PROVENANCE_UPLOAD=true`): the hub keeps one
//! download per job (the last upload), so each record goes up just before its artifact
//! and the artifact stays what the CLI downloads.
//!
//! The hub contract (hub-protocol.md, section 3) knows two `x-artifact-target` values:
//! `windows` for a Windows artifact and `windows-precompiled` for a hand-off bundle. A
//! record is a file about its artifact, so it travels under its artifact's target, with
//! `x-artifact-name` = `<artifact name>.intoto.jsonl` (ASCII whenever the artifact's name is)
//! telling the two apart; no target outside the contract is ever sent.

use crate::pipeline::Artifact;

/// The upload order: with `upload_records`, each artifact's record (when it exists) right
/// before the artifact; otherwise the artifacts alone.
pub(crate) fn with_records(artifacts: Vec<Artifact>, upload_records: bool) -> Vec<Artifact> {
    if !upload_records {
        return artifacts;
    }
    let mut out = Vec::with_capacity(artifacts.len() * 2);
    for artifact in artifacts {
        let record = super::record_path(&artifact.path);
        if record.is_file() {
            out.push(Artifact {
                path: record,
                name: format!("{}{}", artifact.name, super::RECORD_SUFFIX),
                target: artifact.target.clone(),
            });
        }
        out.push(artifact);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_first_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("App.zip");
        std::fs::write(&path, b"zip").unwrap();
        std::fs::write(super::super::record_path(&path), b"{}").unwrap();
        let artifact = Artifact {
            path,
            name: "App.zip".into(),
            target: "windows".into(),
        };
        assert_eq!(with_records(vec![artifact.clone()], false).len(), 1);
        let both = with_records(vec![artifact], true);
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].name, "App.zip.intoto.jsonl");
        assert_eq!(both[0].target, "windows", "a target the hub contract lists");
        assert_eq!(both[1].name, "App.zip");
    }
}
