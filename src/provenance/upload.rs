//! Opt-in upload of build records (`PERRY_PROVENANCE_UPLOAD=true`): the hub keeps one
//! download per job (the last upload), so each record goes up just before its artifact
//! and the artifact stays what the CLI downloads.

use crate::pipeline::Artifact;

/// `x-artifact-target` of a build record.
pub const RECORD_TARGET: &str = "windows-provenance";

/// The upload order: with `upload_records`, each artifact's record (when it exists) right
/// before the artifact; otherwise the artifacts alone.
pub fn with_records(artifacts: Vec<Artifact>, upload_records: bool) -> Vec<Artifact> {
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
                target: RECORD_TARGET.into(),
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
        assert_eq!(both[0].target, RECORD_TARGET);
        assert_eq!(both[1].name, "App.zip");
    }
}
