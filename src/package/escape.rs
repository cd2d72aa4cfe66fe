//! Escaping of free-text values for each target format: NSIS double-quoted strings and
//! XML text/attributes. Values are treated as data only; nothing here ever lets a value
//! start a directive, close a quote or an element, or reference an entity.

use super::PackageError;

/// `$` as the NSIS preprocessor emits it without further expansion: `${U+24}` is replaced
/// by a literal `$`, and the result is not scanned again for `${define}` or `$%ENV%`.
/// (`$${NAME}` is *not* safe: makensis still expands the define in it.)
const NSIS_DOLLAR: &str = "${U+24}";

/// Escapes `value` for an NSIS double-quoted *runtime* string (`Name`, `WriteRegStr`,
/// `CreateShortcut`, `File /oname=`, `Delete`, …).
///
/// `$` becomes `${U+24}${U+24}`: the preprocessor turns that into `$$` (so no `${define}`,
/// `$%ENV%` or `$(lang)` can form) and the runtime turns `$$` into `$` (so no `$VAR`).
/// `"` → `$\"`, CR/LF/TAB → `$\r`/`$\n`/`$\t`. Backticks and single quotes are plain
/// characters inside double quotes; other control characters are refused. The value is
/// always inside quotes, so a leading `!` or `;` is plain text too.
pub(crate) fn nsis_string(field: &str, value: &str) -> Result<String, PackageError> {
    escape_nsis(field, value, &[NSIS_DOLLAR, NSIS_DOLLAR].concat())
}

/// Escapes `value` for `VIAddVersionKey`, whose value is a compile-time string: makensis
/// applies `$\"`/`$\n`-style escapes but keeps `$$` and `$VAR` as written, so `$` is
/// emitted once, as `${U+24}`.
pub(crate) fn nsis_version_string(field: &str, value: &str) -> Result<String, PackageError> {
    escape_nsis(field, value, NSIS_DOLLAR)
}

fn escape_nsis(field: &str, value: &str, dollar: &str) -> Result<String, PackageError> {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '$' => out.push_str(dollar),
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
pub(crate) fn xml(field: &str, value: &str) -> Result<String, PackageError> {
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
/// no quotes, no control characters, nothing Windows refuses in a file name, no device
/// name (see [`is_windows_device_name`]). Applied on every host: a Linux-built package
/// must install on Windows.
pub(crate) fn check_file_name(rel: &str) -> Result<(), PackageError> {
    for part in rel.split('/') {
        if is_windows_device_name(part) {
            return Err(PackageError::UnsafeBundle(format!(
                "file name {rel:?} cannot be installed on Windows: {part:?} is a reserved \
                 device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with any extension)"
            )));
        }
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

/// True for the names Windows maps to devices whatever the folder: `CON`, `PRN`, `AUX`,
/// `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9` (and their superscript-digit forms), `CONIN$`,
/// `CONOUT$`, case-insensitive, with any extension and with spaces before the extension
/// (`nul.txt`, `Com1 .png`, `aux.tar.gz`).
pub(crate) fn is_windows_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_uppercase();
    if matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) {
        return true;
    }
    let Some(digit) = upper
        .strip_prefix("COM")
        .or_else(|| upper.strip_prefix("LPT"))
    else {
        return false;
    };
    let mut chars = digit.chars();
    matches!(
        (chars.next(), chars.next()),
        (Some('1'..='9' | '\u{b9}' | '\u{b2}' | '\u{b3}'), None)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsis_escapes_variables_quotes_and_newlines() {
        assert_eq!(
            nsis_string("f", "a$INSTDIR\"b\nc\td${X}").unwrap(),
            "a${U+24}${U+24}INSTDIR$\\\"b$\\nc$\\td${U+24}${U+24}{X}"
        );
        assert_eq!(nsis_version_string("f", "$X \"").unwrap(), "${U+24}X $\\\"");
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

    #[test]
    fn device_names_are_refused_with_any_extension_and_case() {
        for name in [
            "CON",
            "nul.txt",
            "COM1.png",
            "aux",
            "assets/Lpt9.tar.gz",
            "prn .x",
            "com\u{b9}",
        ] {
            let err = check_file_name(name).unwrap_err().to_string();
            assert!(err.contains("reserved device name"), "{name}: {err}");
        }
        for name in [
            "console.txt",
            "COM10",
            "com0.png",
            "nulled",
            "LPT",
            "auxiliary/x",
        ] {
            assert!(check_file_name(name).is_ok(), "{name}");
        }
    }
}
