//! The in-toto Statement v1 with a SLSA v1 provenance predicate that describes one artifact:
//! what it is (name, sha256) and what it was built from (project, manifest, toolchain,
//! Perry and worker versions, full build or sign-only, signing certificate).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The statement's `_type`.
pub(crate) const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type: SLSA provenance v1.
pub(crate) const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The SLSA `buildType` of this worker's builds.
pub(crate) const BUILD_TYPE: &str = "https://perry.dev/perry-ship-windows/build/v1";

/// Full compile + package, or a precompiled bundle that was only packaged and signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum BuildKind {
    /// Compiled from source, then packaged and signed.
    Full,
    /// A precompiled bundle, only packaged and signed.
    SignOnly,
}

/// Everything a record says about its artifact's inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BuildInputs {
    /// `project.tar.gz` (the uploaded tarball) or `project-tree` (a local folder).
    pub(crate) project_name: String,
    /// SHA-256 of the project tarball or tree, lowercase hex.
    pub(crate) project_sha256: String,
    /// SHA-256 of the normalized manifest JSON (see [`super::inputs::manifest_sha256`]).
    pub(crate) manifest_sha256: String,
    /// `docker:<image>` or `host`.
    pub(crate) toolchain: String,
    /// The image ID (`sha256:…`) with Docker; empty on the host.
    pub(crate) toolchain_image_id: String,
    /// `perry --version` of the compiler used (`unknown` when it could not be read).
    pub(crate) perry_version: String,
    /// This worker's version.
    pub(crate) worker_version: String,
    /// Full build or sign-only.
    pub(crate) build_kind: BuildKind,
    /// `installer`, `msix` or `portable`.
    pub(crate) distribute: String,
    /// `SOURCE_DATE_EPOCH` the packages were written with, in seconds.
    pub(crate) source_date_epoch: u64,
    /// SHA-1 thumbprint of the signing certificate; `None` for an unsigned build.
    pub(crate) signing_thumbprint: Option<String>,
}

fn digest(sha256: &str) -> Value {
    json!({ "sha256": sha256 })
}

/// The statement for `artifact_name` with SHA-256 `artifact_sha256`.
pub(crate) fn statement(artifact_name: &str, artifact_sha256: &str, inputs: &BuildInputs) -> Value {
    let mut toolchain = json!({ "name": "toolchain", "uri": inputs.toolchain });
    if let Some(id) = inputs.toolchain_image_id.strip_prefix("sha256:") {
        toolchain["digest"] = digest(id);
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": artifact_name, "digest": digest(artifact_sha256) }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "buildKind": inputs.build_kind,
                    "distribute": inputs.distribute,
                    "sourceDateEpoch": inputs.source_date_epoch,
                },
                "internalParameters": {
                    "perryVersion": inputs.perry_version,
                    "workerVersion": inputs.worker_version,
                    "signingCertificateThumbprint": inputs.signing_thumbprint,
                },
                "resolvedDependencies": [
                    { "name": inputs.project_name, "digest": digest(&inputs.project_sha256) },
                    { "name": "manifest.json", "digest": digest(&inputs.manifest_sha256) },
                    toolchain,
                ],
            },
            "runDetails": {
                "builder": {
                    "id": "https://perry.dev/perry-ship-windows",
                    "version": { "perry-ship-windows": inputs.worker_version },
                },
            },
        },
    })
}

/// The subject of a statement: `(name, sha256)`.
pub(crate) fn subject(statement: &Value) -> Result<(String, String), String> {
    if statement["_type"] != STATEMENT_TYPE {
        return Err(format!(
            "not an in-toto Statement v1 ({})",
            statement["_type"]
        ));
    }
    let first = &statement["subject"][0];
    match (first["name"].as_str(), first["digest"]["sha256"].as_str()) {
        (Some(name), Some(sha)) => Ok((name.to_string(), sha.to_string())),
        _ => Err("the statement has no subject with a sha256 digest".into()),
    }
}

/// The SHA-256 a statement records for the input named `name`.
pub fn dependency_sha256<'a>(statement: &'a Value, name: &str) -> Option<&'a str> {
    statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == name)?["digest"]["sha256"]
        .as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_names_subject_and_inputs() {
        let inputs = BuildInputs {
            project_name: "project.tar.gz".into(),
            project_sha256: "aa".into(),
            manifest_sha256: "bb".into(),
            toolchain: "docker:perry-windows".into(),
            toolchain_image_id: "sha256:cc".into(),
            perry_version: "0.5.3".into(),
            worker_version: "0.1.0".into(),
            build_kind: BuildKind::SignOnly,
            distribute: "portable".into(),
            source_date_epoch: 1_700_000_000,
            signing_thumbprint: Some("AB12".into()),
        };
        let s = statement("App.zip", "dd", &inputs);
        assert_eq!(subject(&s).unwrap(), ("App.zip".into(), "dd".into()));
        assert_eq!(dependency_sha256(&s, "project.tar.gz"), Some("aa"));
        assert_eq!(dependency_sha256(&s, "manifest.json"), Some("bb"));
        assert_eq!(dependency_sha256(&s, "toolchain"), Some("cc"));
        let def = &s["predicate"]["buildDefinition"];
        assert_eq!(def["externalParameters"]["buildKind"], "sign-only");
        assert_eq!(
            def["internalParameters"]["signingCertificateThumbprint"],
            "AB12"
        );
        assert!(subject(&json!({"_type": "x"})).is_err());
    }
}
