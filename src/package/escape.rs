//! Escaping of free-text values for each target format: NSIS double-quoted strings and
//! XML text/attributes. Values are treated as data only; nothing here ever lets a value
//! start a directive, close a quote or an element, or reference an entity.

use super::PackageError;

/// Escapes `value` for use inside an NSIS double-quoted string (`"…"`).
///
/// `$` → `$$` (no variable, `${define}` or `$(langstring)` expansion), `"` → `$\"`,
/// CR/LF/TAB → `$\r`/`$\n`/`$\t`. Backticks and single quotes are plain characters inside
/// double quotes. Other control characters are refused: NSIS has no escape for them.
/// Because the value is always inside quotes, a leading `!` or `;` is plain text too.
pub fn nsis_string(field: &str, value: &str) -> Result<String, PackageError> {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '$' => out.push_str("$$"),
            '"' => out.push_str("$\\\""),
            '\n' => out.push_str("$\\n"),
            '\r' => out.push_str("$\\r"),
            '\t' => out.push_str("$\\t"),
            c if c.is_control() => {
                return Err(PackageError::BadValue {
                    field: field.to_string(),
                    reason: format!("control character U+{:04X} is not allowed", c as u32),
                })
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Escapes `value` for XML character data and attribute values (both quote styles).
/// Characters that XML 1.0 cannot carry at all (most C0 controls) are refused.
pub fn xml(field: &str, value: &str) -> Result<String, PackageError> {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                return Err(PackageError::BadValue {
                    field: field.to_string(),
                    reason: format!("character U+{:04X} cannot appear in XML", c as u32),
                })
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Checks a bundle-relative file or folder name before it goes into a script or a package:
/// no quotes, no control characters, nothing Windows refuses in a file name.
pub fn check_file_name(rel: &str) -> Result<(), PackageError> {
    for part in rel.split('/') {
        let bad = part.is_empty()
            || part == "."
            || part == ".."
            || part.ends_with(' ')
            || part.ends_with('.')
            || part.chars().any(|c| {
                c.is_control() || matches!(c, '"' | '<' | '>' | ':' | '|' | '?' | '*' | '\\')
            });
        if bad {
            return Err(PackageError::UnsafeBundle(format!(
                "file name {rel:?} cannot be installed on Windows (quotes, control characters, \
                 <>:|?*\\ and trailing dots/spaces are refused)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsis_escapes_variables_quotes_and_newlines() {
        assert_eq!(
            nsis_string("f", "a$INSTDIR\"b\nc\td${X}").unwrap(),
            "a$$INSTDIR$\\\"b$\\nc$\\td$${X}"
        );
        assert_eq!(
            nsis_string("f", "!system `x` 'y'").unwrap(),
            "!system `x` 'y'"
        );
        assert!(nsis_string("f", "a\u{7}").is_err());
    }

    #[test]
    fn xml_escapes_markup() {
        assert_eq!(
            xml("f", "]]><!ENTITY x \"y\">&'").unwrap(),
            "]]&gt;&lt;!ENTITY x &quot;y&quot;&gt;&amp;&apos;"
        );
        assert!(xml("f", "\u{1}").is_err());
    }

    #[test]
    fn file_names_with_quotes_are_refused() {
        assert!(check_file_name("assets/a\"b.png").is_err());
        assert!(check_file_name("assets/../x").is_err());
        assert!(check_file_name("assets/img $1 (copy).png").is_ok());
    }
}
