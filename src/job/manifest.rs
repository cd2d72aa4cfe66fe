//! The build manifest (hub-protocol.md §4): parsed, validated and normalised.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribute {
    Installer,
    Msix,
    Portable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UacLevel {
    AsInvoker,
    HighestAvailable,
    RequireAdministrator,
}

impl UacLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            UacLevel::AsInvoker => "asInvoker",
            UacLevel::HighestAvailable => "highestAvailable",
            UacLevel::RequireAdministrator => "requireAdministrator",
        }
    }
}

/// A validated manifest. Free-text fields contain no control characters; they still must be
/// escaped for each target format (NSIS, XML, VERSIONINFO) by whoever writes them.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// 1–200 chars: letters, digits, space, `-`, `_`.
    pub app_name: String,
    /// letters, digits, `.`, `-`, `_`.
    pub bundle_id: String,
    /// The version as given (`1.2`).
    pub version: String,
    /// Normalised to four parts, each ≤ 65535.
    pub version4: [u16; 4],
    /// Relative, `/`-separated, no `..`, inside the project.
    pub entry: String,
    /// Relative path of a PNG, or None.
    pub icon: Option<String>,
    pub features: Vec<String>,
    pub distribute: Distribute,
    pub uac_level: UacLevel,
    /// `windows_dpi_aware` value for `<dpiAware>`: `true/pm` by default.
    pub dpi_aware: String,
    pub file_description: Option<String>,
    pub company_name: Option<String>,
    pub copyright: Option<String>,
}

impl Manifest {
    /// `1.2.3.4`
    pub fn version_string4(&self) -> String {
        let [a, b, c, d] = self.version4;
        format!("{a}.{b}.{c}.{d}")
    }
}

// ---- STAND-IN (hub branch only): replaced by the job helper's version at merge. ----
#[derive(Debug, thiserror::Error)]
#[error("manifest field `{field}`: {problem}")]
pub struct ManifestError {
    pub field: &'static str,
    pub problem: String,
}

impl Manifest {
    pub fn from_json(v: &serde_json::Value) -> Result<Manifest, ManifestError> {
        let s = |field: &'static str| -> Result<String, ManifestError> {
            v.get(field)
                .and_then(|x| x.as_str())
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .ok_or(ManifestError {
                    field,
                    problem: "missing or not a string".into(),
                })
        };
        let version = s("version")?;
        let mut version4 = [0u16; 4];
        for (i, p) in version.split('.').enumerate() {
            if i >= 4 {
                return Err(ManifestError {
                    field: "version",
                    problem: "too many parts".into(),
                });
            }
            version4[i] = p.parse().map_err(|_| ManifestError {
                field: "version",
                problem: "not a number".into(),
            })?;
        }
        Ok(Manifest {
            app_name: s("app_name")?,
            bundle_id: s("bundle_id")?,
            version,
            version4,
            entry: s("entry")?,
            icon: None,
            features: vec![],
            distribute: Distribute::Installer,
            uac_level: UacLevel::AsInvoker,
            dpi_aware: "true/pm".into(),
            file_description: None,
            company_name: None,
            copyright: None,
        })
    }
}
