//! A tiny `{{name}}` renderer for the files under `templates/`. Every placeholder in the
//! template must have a value and every value must be used, so a typo fails loudly.
//! Values are inserted verbatim (the caller escapes them) and are never re-scanned, so a
//! value containing `{{x}}` stays literal.

use super::PackageError;

/// The NSIS installer script (`templates/installer.nsi`).
pub(crate) const INSTALLER_NSI: &str = include_str!("../../templates/installer.nsi");
/// The MSIX package manifest (`templates/AppxManifest.xml`).
pub(crate) const APPX_MANIFEST: &str = include_str!("../../templates/AppxManifest.xml");
/// The exe's application manifest (`templates/app.manifest`).
pub(crate) const APP_MANIFEST: &str = include_str!("../../templates/app.manifest");

/// Renders `template` (named `name` in errors) with `values`.
pub(crate) fn render(
    name: &'static str,
    template: &str,
    values: &[(&str, &str)],
) -> Result<String, PackageError> {
    let err = |reason: String| PackageError::Template {
        template: name,
        reason,
    };
    let mut out = String::with_capacity(template.len() + 256);
    let mut used = vec![false; values.len()];
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| err("unterminated {{".into()))?;
        let key = &after[..end];
        let idx = values
            .iter()
            .position(|(k, _)| *k == key)
            .ok_or_else(|| err(format!("unknown placeholder {{{{{key}}}}}")))?;
        used[idx] = true;
        out.push_str(values[idx].1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(err(format!("value {:?} is never used", values[i].0)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_does_not_rescan_values() {
        assert_eq!(
            render("t", "a {{x}} b", &[("x", "{{y}}")]).unwrap(),
            "a {{y}} b"
        );
    }

    #[test]
    fn refuses_unknown_and_unused() {
        assert!(render("t", "{{nope}}", &[]).is_err());
        assert!(render("t", "plain", &[("x", "1")]).is_err());
        assert!(render("t", "{{x", &[("x", "1")]).is_err());
    }
}
