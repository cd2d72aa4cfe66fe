//! The build manifest (hub-protocol.md §4): parsed, validated and normalised.

mod ascii;
mod rules;

pub(crate) use rules::{parse_relative_path, parse_version};

use ascii::ascii_name;
use rules::{
    check_targets, free_text, parse_app_name, parse_bundle_id, parse_dpi_aware, parse_features,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `windows_distribute`: what the job ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribute {
    /// An NSIS `Setup.exe` (the default).
    Installer,
    /// An MSIX package.
    Msix,
    /// A portable ZIP of the app folder.
    Portable,
}

/// `windows_uac_level`: the `requestedExecutionLevel` in the app's manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UacLevel {
    /// Runs with the caller's rights (the default).
    AsInvoker,
    /// Runs elevated when the user is an administrator.
    HighestAvailable,
    /// Always asks for administrator rights.
    RequireAdministrator,
}

impl UacLevel {
    /// The value as written in the application manifest, e.g. `asInvoker`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UacLevel::AsInvoker => "asInvoker",
            UacLevel::HighestAvailable => "highestAvailable",
            UacLevel::RequireAdministrator => "requireAdministrator",
        }
    }
}

/// A validated manifest. Free-text fields contain no control characters; they still must be
/// escaped for each target format (NSIS, XML, VERSIONINFO) by whoever writes them.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// Compiler features, passed as `perry compile --features a,b`.
    pub features: Vec<String>,
    /// `windows_distribute`: installer, MSIX or portable ZIP.
    pub distribute: Distribute,
    /// `windows_uac_level`.
    pub uac_level: UacLevel,
    /// `windows_dpi_aware` value for `<dpiAware>`: `true/pm` by default.
    pub dpi_aware: String,
    /// `windows_file_description`: the description in version info and installers.
    pub file_description: Option<String>,
    /// `windows_company_name`: the publisher in version info and installers.
    pub company_name: Option<String>,
    /// `windows_copyright`: the copyright line in version info.
    pub copyright: Option<String>,
}

impl Manifest {
    /// `1.2.3.4`
    pub fn version_string4(&self) -> String {
        let [a, b, c, d] = self.version4;
        format!("{a}.{b}.{c}.{d}")
    }
}

/// A manifest rule that failed: which field, and why (never the whole value).
#[derive(Debug, thiserror::Error)]
#[error("manifest field `{field}`: {problem}")]
pub struct ManifestError {
    /// The manifest field at fault.
    pub field: String,
    /// The rule it breaks (quoting at most `PREVIEW_CHARS` of the value).
    pub problem: String,
}

/// How many characters of a rejected value an error message quotes.
pub(crate) const PREVIEW_CHARS: usize = 60;
/// Longest accepted `app_name`, in characters.
pub(crate) const MAX_APP_NAME_CHARS: usize = 200;
/// Longest accepted `bundle_id`, in bytes (ASCII only).
pub(crate) const MAX_BUNDLE_ID_LEN: usize = 255;
/// Longest accepted free-text field (`windows_file_description`, …), in characters.
pub(crate) const MAX_FREE_TEXT_CHARS: usize = 1024;
/// Longest accepted relative path (`entry`, `icon`), in bytes.
pub(crate) const MAX_PATH_LEN: usize = 1024;
/// Most features a manifest may list, and the longest feature name.
pub(crate) const MAX_FEATURES: usize = 64;
/// Longest accepted feature name, in bytes.
pub(crate) const MAX_FEATURE_LEN: usize = 64;

fn fail(field: &str, problem: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// `"abc…"` quoted with escapes, cut to [`PREVIEW_CHARS`] characters.
pub(crate) fn preview(value: &str) -> String {
    let mut cut: String = value.chars().take(PREVIEW_CHARS).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The field as a string; `Ok(None)` when it is absent or null.
fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ManifestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(fail(
            field,
            format!("must be a string, got {}", type_name(other)),
        )),
    }
}

fn required_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, ManifestError> {
    optional_str(obj, field)?.ok_or_else(|| fail(field, "is required"))
}

impl Manifest {
    /// Parses and validates the `manifest` object of a `job_assign` frame.
    pub fn from_json(value: &Value) -> Result<Manifest, ManifestError> {
        let obj = value.as_object().ok_or_else(|| {
            fail(
                "manifest",
                format!("must be an object, got {}", type_name(value)),
            )
        })?;

        let app_name = parse_app_name(required_str(obj, "app_name")?)?;
        let bundle_id = parse_bundle_id(required_str(obj, "bundle_id")?)?;
        let version = required_str(obj, "version")?.trim_matches(' ').to_string();
        let version4 = parse_version("version", &version)?;
        for field in ["short_version", "minimum_os_version"] {
            if let Some(v) = optional_str(obj, field)? {
                parse_version(field, v.trim_matches(' '))?;
            }
        }
        let entry = parse_relative_path("entry", required_str(obj, "entry")?)?;
        let icon = match optional_str(obj, "icon")? {
            Some(p) if !p.trim_matches(' ').is_empty() => Some(parse_relative_path("icon", p)?),
            _ => None,
        };
        check_targets(obj)?;
        let features = parse_features(obj)?;
        let distribute = match optional_str(obj, "windows_distribute")? {
            None => Distribute::Installer,
            Some(v) => match v.trim_matches(' ').to_ascii_lowercase().as_str() {
                "installer" => Distribute::Installer,
                "msix" => Distribute::Msix,
                "portable" => Distribute::Portable,
                _ => {
                    return Err(fail(
                        "windows_distribute",
                        format!("{} is not one of installer, msix, portable", preview(v)),
                    ))
                }
            },
        };
        let uac_level = match optional_str(obj, "windows_uac_level")? {
            None => UacLevel::AsInvoker,
            Some(v) => match v.trim_matches(' ').to_ascii_lowercase().as_str() {
                "asinvoker" => UacLevel::AsInvoker,
                "highestavailable" => UacLevel::HighestAvailable,
                "requireadministrator" => UacLevel::RequireAdministrator,
                _ => {
                    return Err(fail(
                        "windows_uac_level",
                        format!(
                            "{} is not one of asInvoker, highestAvailable, requireAdministrator",
                            preview(v)
                        ),
                    ))
                }
            },
        };
        let dpi_aware = parse_dpi_aware(obj.get("windows_dpi_aware"))?;

        Ok(Manifest {
            app_name,
            bundle_id,
            version,
            version4,
            entry,
            icon,
            features,
            distribute,
            uac_level,
            dpi_aware,
            file_description: free_text(obj, "windows_file_description")?,
            company_name: free_text(obj, "windows_company_name")?,
            copyright: free_text(obj, "windows_copyright")?,
        })
    }

    /// The ASCII base name for artifact files and the `x-artifact-name` header.
    ///
    /// Latin letters with diacritics are transliterated (`Café Ünïcødé` → `Cafe Unicode`),
    /// other non-ASCII letters are dropped, runs of spaces collapse to one. When nothing is
    /// left, the last usable segment of `bundle_id` is used, and failing that `app`.
    pub fn ascii_app_name(&self) -> String {
        ascii_file_name(&self.app_name, &self.bundle_id)
    }
}

/// The ASCII base name for artifact files (see [`Manifest::ascii_app_name`]); also used by
/// packaging for the exe and package file names, so both always agree.
pub fn ascii_file_name(app_name: &str, bundle_id: &str) -> String {
    let from_name = ascii_name(app_name);
    if !from_name.is_empty() {
        return from_name;
    }
    bundle_id
        .rsplit('.')
        .map(ascii_name)
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "app".to_string())
}
