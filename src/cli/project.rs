//! Local builds: turn a project folder or tarball plus optional JSON files into the same
//! manifest and credentials a hub job would carry.
//!
//! Without `--manifest`, the manifest comes from the project's `perry.toml`, read the way
//! the Perry CLI resolves it: `[app]` wins over `[project]` for `name`, `version` and
//! `entry`; `bundle_id`, `description`, `company`, `copyright` come from `[app]`; the icon
//! from `[app.icons] source` (or `[icons] source`).

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

/// Builds the manifest JSON for a project folder from its `perry.toml`.
pub fn manifest_from_perry_toml(project_dir: &Path) -> Result<Value> {
    let path = project_dir.join("perry.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (pass --manifest FILE.json instead?)",
            path.display()
        )
    })?;
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;

    let app = doc.get("app").and_then(|v| v.as_table());
    let project = doc.get("project").and_then(|v| v.as_table());
    let lookup = |key: &str| -> Option<String> {
        app.and_then(|t| t.get(key))
            .or_else(|| project.and_then(|t| t.get(key)))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };

    let Some(name) = lookup("name") else {
        bail!("{}: no `name` in [app] or [project]", path.display());
    };
    let version = lookup("version").unwrap_or_else(|| "1.0.0".into());
    let entry = lookup("entry").unwrap_or_else(|| "src/main.ts".into());
    let bundle_id = lookup("bundle_id").unwrap_or_else(|| default_bundle_id(&name));
    let icon = app
        .and_then(|t| t.get("icons"))
        .or_else(|| doc.get("icons"))
        .and_then(|v| v.get("source"))
        .and_then(|v| v.as_str())
        .map(str::to_string);

    let mut m = Map::new();
    m.insert("app_name".into(), json!(name));
    m.insert("bundle_id".into(), json!(bundle_id));
    m.insert("version".into(), json!(version));
    m.insert("entry".into(), json!(entry));
    m.insert("icon".into(), json!(icon));
    m.insert("targets".into(), json!(["windows"]));
    if let Some(features) = app
        .and_then(|t| t.get("features"))
        .and_then(|v| v.as_array())
    {
        let list: Vec<&str> = features.iter().filter_map(|f| f.as_str()).collect();
        m.insert("features".into(), json!(list));
    }
    for (toml_key, manifest_key) in [
        ("description", "windows_file_description"),
        ("company", "windows_company_name"),
        ("copyright", "windows_copyright"),
        ("windows_distribute", "windows_distribute"),
        ("windows_uac_level", "windows_uac_level"),
    ] {
        if let Some(v) = lookup(toml_key) {
            m.insert(manifest_key.into(), json!(v));
        }
    }
    Ok(Value::Object(m))
}

/// `com.perry.<name in lowercase ASCII letters and digits>`
fn default_bundle_id(name: &str) -> String {
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("com.perry.{}", if slug.is_empty() { "app" } else { &slug })
}

/// Reads a JSON file (manifest or credentials).
pub(crate) fn read_json_file(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_project_resolves() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello");
        let m = manifest_from_perry_toml(&dir).unwrap();
        assert_eq!(m["app_name"], "Hello Perry");
        assert_eq!(m["version"], "1.2.0");
        assert_eq!(m["entry"], "src/main.ts");
        assert_eq!(m["bundle_id"], "com.example.helloperry");
        assert_eq!(m["icon"], "icon.png");
        assert_eq!(m["windows_company_name"], "Example Co");
    }

    #[test]
    fn app_table_wins_and_defaults_fill_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("perry.toml"),
            "[project]\nname = \"A\"\nversion = \"2.0\"\n[app]\nname = \"B App\"\n",
        )
        .unwrap();
        let m = manifest_from_perry_toml(dir.path()).unwrap();
        assert_eq!(m["app_name"], "B App");
        assert_eq!(m["version"], "2.0");
        assert_eq!(m["bundle_id"], "com.perry.bapp");
        assert_eq!(m["icon"], Value::Null);
    }

    #[test]
    fn missing_name_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("perry.toml"),
            "[project]\nversion = \"1\"\n",
        )
        .unwrap();
        let err = manifest_from_perry_toml(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `name`"), "{err}");
    }
}
