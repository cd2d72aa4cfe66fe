//! The build manifest (hub-protocol.md §4): parsed, validated and normalised.

use serde::Serialize;
use serde_json::{Map, Value};

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

/// A manifest rule that failed: which field, and why (never the whole value).
#[derive(Debug, thiserror::Error)]
#[error("manifest field `{field}`: {problem}")]
pub struct ManifestError {
    pub field: String,
    pub problem: String,
}

/// How many characters of a rejected value an error message quotes.
pub const PREVIEW_CHARS: usize = 60;
/// Longest accepted `app_name`, in characters.
pub const MAX_APP_NAME_CHARS: usize = 200;
/// Longest accepted `bundle_id`, in bytes (ASCII only).
pub const MAX_BUNDLE_ID_LEN: usize = 255;
/// Longest accepted free-text field (`windows_file_description`, …), in characters.
pub const MAX_FREE_TEXT_CHARS: usize = 1024;
/// Longest accepted relative path (`entry`, `icon`), in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Most features a manifest may list, and the longest feature name.
pub const MAX_FEATURES: usize = 64;
pub const MAX_FEATURE_LEN: usize = 64;

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
        let from_name = ascii_name(&self.app_name);
        if !from_name.is_empty() {
            return from_name;
        }
        self.bundle_id
            .rsplit('.')
            .map(ascii_name)
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "app".to_string())
    }
}

fn parse_app_name(raw: &str) -> Result<String, ManifestError> {
    let name = raw.trim_matches(' ');
    let count = name.chars().count();
    if count == 0 {
        return Err(fail("app_name", "must not be empty"));
    }
    if count > MAX_APP_NAME_CHARS {
        return Err(fail(
            "app_name",
            format!("is {count} characters long (at most {MAX_APP_NAME_CHARS})"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_')))
    {
        return Err(fail(
            "app_name",
            format!(
                "{} contains {:?}; only letters, digits, space, `-` and `_` are allowed",
                preview(name),
                bad
            ),
        ));
    }
    Ok(name.to_string())
}

fn parse_bundle_id(raw: &str) -> Result<String, ManifestError> {
    let id = raw.trim_matches(' ');
    if id.is_empty() {
        return Err(fail("bundle_id", "must not be empty"));
    }
    if id.len() > MAX_BUNDLE_ID_LEN {
        return Err(fail(
            "bundle_id",
            format!("is {} bytes long (at most {MAX_BUNDLE_ID_LEN})", id.len()),
        ));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(fail(
            "bundle_id",
            format!(
                "{} may only contain ASCII letters, digits, `.`, `-` and `_`",
                preview(id)
            ),
        ));
    }
    Ok(id.to_string())
}

/// `1`, `1.2`, `1.2.3`, `1.2.3.4` with each part ≤ 65535, padded with zeros to four parts.
pub fn parse_version(field: &str, v: &str) -> Result<[u16; 4], ManifestError> {
    let parts: Vec<&str> = v.split('.').collect();
    if v.is_empty() || parts.len() > 4 {
        return Err(fail(
            field,
            format!("{} must be 1 to 4 numbers separated by dots", preview(v)),
        ));
    }
    let mut out = [0u16; 4];
    for (slot, part) in out.iter_mut().zip(&parts) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail(
                field,
                format!("{} must be 1 to 4 numbers separated by dots", preview(v)),
            ));
        }
        let trimmed = part.trim_start_matches('0');
        *slot = match trimmed {
            "" => 0,
            t if t.len() > 5 => return Err(too_big(field, v)),
            t => t
                .parse::<u32>()
                .ok()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| too_big(field, v))?,
        };
    }
    Ok(out)
}

fn too_big(field: &str, v: &str) -> ManifestError {
    fail(
        field,
        format!("{}: each part must be at most 65535", preview(v)),
    )
}

/// A project-relative path: `\` becomes `/`; no empty, `.` or `..` segments, no absolute,
/// drive (`C:`), UNC or device paths, no control characters.
pub fn parse_relative_path(field: &str, raw: &str) -> Result<String, ManifestError> {
    let path = raw.trim_matches(' ').replace('\\', "/");
    if path.is_empty() {
        return Err(fail(field, "must not be empty"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(fail(
            field,
            format!("is {} bytes long (at most {MAX_PATH_LEN})", path.len()),
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(fail(
            field,
            format!("{} contains a control character", preview(&path)),
        ));
    }
    if path.starts_with('/') {
        return Err(fail(
            field,
            format!(
                "{} is absolute; give a path inside the project",
                preview(&path)
            ),
        ));
    }
    if path.contains(':') {
        return Err(fail(
            field,
            format!(
                "{} looks like a drive or stream path; `:` is not allowed",
                preview(&path)
            ),
        ));
    }
    let path = path.strip_prefix("./").unwrap_or(&path).to_string();
    for segment in path.split('/') {
        match segment {
            "" => {
                return Err(fail(
                    field,
                    format!("{} has an empty path segment", preview(&path)),
                ))
            }
            "." | ".." => {
                return Err(fail(
                    field,
                    format!("{} must not contain `.` or `..` segments", preview(&path)),
                ))
            }
            _ => {}
        }
    }
    Ok(path)
}

fn check_targets(obj: &Map<String, Value>) -> Result<(), ManifestError> {
    match obj.get("targets") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(other) => Err(fail(
            "targets",
            format!("must be a list of strings, got {}", type_name(other)),
        )),
    }
}

fn parse_features(obj: &Map<String, Value>) -> Result<Vec<String>, ManifestError> {
    let items = match obj.get("features") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(fail(
                "features",
                format!("must be a list or null, got {}", type_name(other)),
            ))
        }
    };
    if items.len() > MAX_FEATURES {
        return Err(fail(
            "features",
            format!("lists {} features (at most {MAX_FEATURES})", items.len()),
        ));
    }
    let mut features = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("features[{i}]");
        let s = item
            .as_str()
            .ok_or_else(|| fail(&field, format!("must be a string, got {}", type_name(item))))?;
        let valid = !s.is_empty()
            && s.len() <= MAX_FEATURE_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(fail(
                &field,
                format!(
                    "{} must be 1–{MAX_FEATURE_LEN} of A-Z a-z 0-9 `_` `-`",
                    preview(s)
                ),
            ));
        }
        if !features.iter().any(|f| f == s) {
            features.push(s.to_string());
        }
    }
    Ok(features)
}

/// `windows_dpi_aware` → the `<dpiAware>` value. `true` (boolean), `true/pm`, `permonitor`
/// and `permonitorv2` mean per-monitor (`true/pm`, the default); the strings `true` and
/// `false` are kept as given (system-aware / unaware); a boolean `false` is `false`.
fn parse_dpi_aware(value: Option<&Value>) -> Result<String, ManifestError> {
    const FIELD: &str = "windows_dpi_aware";
    let s = match value {
        None | Some(Value::Null) | Some(Value::Bool(true)) => return Ok("true/pm".into()),
        Some(Value::Bool(false)) => return Ok("false".into()),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(fail(
                FIELD,
                format!("must be a boolean or a string, got {}", type_name(other)),
            ))
        }
    };
    let normalised = match s
        .trim_matches(' ')
        .to_ascii_lowercase()
        .replace(' ', "")
        .as_str()
    {
        "true/pm" | "permonitor" | "permonitorv2" => "true/pm",
        "true" => "true",
        "false" => "false",
        _ => {
            return Err(fail(
                FIELD,
                format!(
                    "{} is not one of true, false, true/pm, permonitor, permonitorv2",
                    preview(s)
                ),
            ))
        }
    };
    Ok(normalised.into())
}

/// A free-text field: at most [`MAX_FREE_TEXT_CHARS`], no control characters (also no
/// newlines or tabs). Empty or whitespace-only text counts as absent.
fn free_text(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, ManifestError> {
    let Some(raw) = optional_str(obj, field)? else {
        return Ok(None);
    };
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(fail(
            field,
            format!("{} contains the control character {:?}", preview(raw), c),
        ));
    }
    let text = raw.trim_matches(' ');
    let count = text.chars().count();
    if count > MAX_FREE_TEXT_CHARS {
        return Err(fail(
            field,
            format!("is {count} characters long (at most {MAX_FREE_TEXT_CHARS})"),
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// Keeps ASCII letters, digits, space, `-`, `_`; transliterates Latin letters with
/// diacritics; drops every other character; collapses and trims spaces.
fn ascii_name(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else if let Some(t) = transliterate(c) {
            out.push_str(t);
        }
    }
    out.trim_end_matches(' ').to_string()
}

/// ASCII spelling of common Latin-1 and Latin Extended-A letters.
fn transliterate(c: char) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("ÀÁÂÃÄÅĀĂĄ", "A"),
        ("àáâãäåāăą", "a"),
        ("ÇĆĈĊČ", "C"),
        ("çćĉċč", "c"),
        ("ĎĐÐ", "D"),
        ("ďđð", "d"),
        ("ÈÉÊËĒĔĖĘĚ", "E"),
        ("èéêëēĕėęě", "e"),
        ("ĜĞĠĢ", "G"),
        ("ĝğġģ", "g"),
        ("ĤĦ", "H"),
        ("ĥħ", "h"),
        ("ÌÍÎÏĨĪĬĮİ", "I"),
        ("ìíîïĩīĭįı", "i"),
        ("Ĵ", "J"),
        ("ĵ", "j"),
        ("Ķ", "K"),
        ("ķĸ", "k"),
        ("ĹĻĽĿŁ", "L"),
        ("ĺļľŀł", "l"),
        ("ÑŃŅŇŊ", "N"),
        ("ñńņňŉŋ", "n"),
        ("ÒÓÔÕÖØŌŎŐ", "O"),
        ("òóôõöøōŏő", "o"),
        ("ŔŖŘ", "R"),
        ("ŕŗř", "r"),
        ("ŚŜŞŠ", "S"),
        ("śŝşšſ", "s"),
        ("ŢŤŦ", "T"),
        ("ţťŧ", "t"),
        ("ÙÚÛÜŨŪŬŮŰŲ", "U"),
        ("ùúûüũūŭůűų", "u"),
        ("Ŵ", "W"),
        ("ŵ", "w"),
        ("ÝŶŸ", "Y"),
        ("ýÿŷ", "y"),
        ("ŹŻŽ", "Z"),
        ("źżž", "z"),
        ("Æ", "AE"),
        ("æ", "ae"),
        ("Œ", "OE"),
        ("œ", "oe"),
        ("ß", "ss"),
        ("Þ", "Th"),
        ("þ", "th"),
        ("Ĳ", "IJ"),
        ("ĳ", "ij"),
    ];
    TABLE
        .iter()
        .find(|(from, _)| from.contains(c))
        .map(|(_, to)| *to)
}
