//! Sign-only jobs: the project is a hand-off bundle compiled elsewhere (`perry-precompiled/`
//! with `metadata.json`, see the hub protocol). This stands in for the `compiling` stage:
//! it checks the metadata, says in the job log who compiled the bundle, and finds the exe,
//! its DLLs and asset folders.

use super::compile::{existing_asset_dirs, manifest_icon, CompiledApp};
use super::JobContext;
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Folder of a hand-off bundle inside the project.
const BUNDLE_DIR: &str = "perry-precompiled";
/// metadata.json is a few string fields; anything larger is not one.
const MAX_METADATA_BYTES: u64 = 64 * 1024;
/// Longest metadata value repeated in the job log.
const MAX_SHOWN_CHARS: usize = 120;

/// `perry-precompiled/` of a sign-only job, if this project is one.
pub(crate) fn bundle_dir(project_dir: &Path) -> Option<PathBuf> {
    let dir = project_dir.join(BUNDLE_DIR);
    dir.join("metadata.json").is_file().then_some(dir)
}

/// What `metadata.json` says about where the bundle comes from (all optional strings).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BundleMetadata {
    pub(crate) perry_version: Option<String>,
    pub(crate) compiled_by: Option<String>,
    pub(crate) compile_timestamp: Option<String>,
}

impl BundleMetadata {
    /// Parses `metadata.json`: a JSON object of at most 64 KiB whose known fields, when
    /// present, are strings. Unknown fields are ignored.
    pub(crate) fn read(path: &Path) -> Result<BundleMetadata, String> {
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_METADATA_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| format!("cannot read metadata.json: {e}"))?;
        if text.len() as u64 > MAX_METADATA_BYTES {
            return Err("metadata.json is larger than 64 KiB".into());
        }
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("metadata.json is not valid JSON: {e}"))?;
        let object = json
            .as_object()
            .ok_or("metadata.json is not a JSON object")?;
        let field = |name: &str| match object.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("metadata.json: \"{name}\" must be a string")),
        };
        Ok(BundleMetadata {
            perry_version: field("perry_version")?,
            compiled_by: field("compiled_by")?,
            compile_timestamp: field("compile_timestamp")?,
        })
    }

    /// One log line: `compiled by <who> with perry <version> at <time>`, each value shown
    /// without control characters and cut to a readable length.
    pub(crate) fn describe(&self) -> String {
        let shown = |v: &Option<String>| {
            let clean: String = v
                .as_deref()
                .unwrap_or("unknown")
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            if clean.chars().count() > MAX_SHOWN_CHARS {
                let cut: String = clean.chars().take(MAX_SHOWN_CHARS).collect();
                format!("{cut}…")
            } else {
                clean
            }
        };
        format!(
            "compiled by {} with perry {} at {}",
            shown(&self.compiled_by),
            shown(&self.perry_version),
            shown(&self.compile_timestamp)
        )
    }
}

fn bad_bundle(message: String) -> JobError {
    JobError::new(
        ErrorCode::PackageFailed,
        Some(Stage::Compiling),
        format!("the precompiled bundle is not usable: {message}"),
    )
}

/// Takes the exe and its files from a precompiled hand-off bundle.
pub(crate) fn take(job: &JobContext, dir: &Path) -> Result<CompiledApp, JobError> {
    let stage = Stage::Compiling;
    job.events
        .stage(stage, "Precompiled bundle: skipping compilation");
    let metadata = BundleMetadata::read(&dir.join("metadata.json")).map_err(bad_bundle)?;
    job.events
        .info(stage, &format!("bundle {}", metadata.describe()));
    let wanted = format!("{}.exe", job.manifest.app_name);
    let exe = if dir.join(&wanted).is_file() {
        dir.join(&wanted)
    } else {
        let exes: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| JobError::internal(Some(stage), format!("reading the bundle: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("exe")) && p.is_file())
            .collect();
        match exes.as_slice() {
            [one] => one.clone(),
            _ => return Err(bad_bundle(format!("it has no {wanted}"))),
        }
    };
    let ico = Some(dir.join("app.ico")).filter(|p| p.is_file());
    Ok(CompiledApp {
        exe,
        dll_dirs: vec![dir.join("dlls"), dir.to_path_buf()],
        asset_dirs: existing_asset_dirs(dir),
        root: dir.to_path_buf(),
        ico,
        icon_png: manifest_icon(job).filter(|p| p.is_file()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<BundleMetadata, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.json");
        std::fs::write(&path, text).unwrap();
        BundleMetadata::read(&path)
    }

    #[test]
    fn metadata_fields_are_optional_strings() {
        let m = read(
            r#"{"perry_version":"0.5.3","compiled_by":"mac-worker-2",
                "compile_timestamp":"2026-11-25T10:00:00Z","extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(m.perry_version.as_deref(), Some("0.5.3"));
        assert_eq!(
            m.describe(),
            "compiled by mac-worker-2 with perry 0.5.3 at 2026-11-25T10:00:00Z"
        );
        assert_eq!(read("{}").unwrap(), BundleMetadata::default());
        assert_eq!(
            read("{}").unwrap().describe(),
            "compiled by unknown with perry unknown at unknown"
        );
    }

    #[test]
    fn malformed_metadata_is_refused_with_the_reason() {
        for (text, expect) in [
            ("not json", "not valid JSON"),
            ("[1,2]", "not a JSON object"),
            (
                r#"{"perry_version": 5}"#,
                "\"perry_version\" must be a string",
            ),
            (
                r#"{"compiled_by": {"a": 1}}"#,
                "\"compiled_by\" must be a string",
            ),
        ] {
            let err = read(text).unwrap_err();
            assert!(err.contains(expect), "{text}: {err}");
        }
        let huge = format!(r#"{{"compiled_by":"{}"}}"#, "x".repeat(70 * 1024));
        assert!(read(&huge).unwrap_err().contains("larger than 64 KiB"));
    }

    #[test]
    fn described_values_lose_control_characters_and_length() {
        let m = BundleMetadata {
            compiled_by: Some(format!(
                "evil\r\n[signing] fake line\u{1b}[31m{}",
                "y".repeat(500)
            )),
            ..Default::default()
        };
        let line = m.describe();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.chars().count() < 250, "{}", line.len());
        assert!(line.contains('…'));
    }
}
