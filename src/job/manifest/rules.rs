//! The rule for each manifest field (hub-protocol.md §4). Each function returns the
//! normalised value or a [`ManifestError`] naming the field.

use super::{
    fail, optional_str, preview, type_name, ManifestError, MAX_APP_NAME_CHARS, MAX_BUNDLE_ID_LEN,
    MAX_FEATURES, MAX_FEATURE_LEN, MAX_FREE_TEXT_CHARS, MAX_PATH_LEN,
};
use serde_json::{Map, Value};

pub(super) fn parse_app_name(raw: &str) -> Result<String, ManifestError> {
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

pub(super) fn parse_bundle_id(raw: &str) -> Result<String, ManifestError> {
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
pub(crate) fn parse_version(field: &str, v: &str) -> Result<[u16; 4], ManifestError> {
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
pub(crate) fn parse_relative_path(field: &str, raw: &str) -> Result<String, ManifestError> {
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

pub(super) fn check_targets(obj: &Map<String, Value>) -> Result<(), ManifestError> {
    match obj.get("targets") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(other) => Err(fail(
            "targets",
            format!("must be a list of strings, got {}", type_name(other)),
        )),
    }
}

pub(super) fn parse_features(obj: &Map<String, Value>) -> Result<Vec<String>, ManifestError> {
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
pub(super) fn parse_dpi_aware(value: Option<&Value>) -> Result<String, ManifestError> {
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
pub(super) fn free_text(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ManifestError> {
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
