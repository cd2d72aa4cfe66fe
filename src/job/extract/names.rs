//! Entry names and link targets of an untrusted tarball, checked and normalised.
//!
//! A name becomes a list of plain components relative to the destination: `\` counts as a
//! separator (the project may come from Windows), empty and `.` components are dropped, and
//! everything that could leave the destination or mean something special on Windows is
//! refused.

use super::ExtractError;

/// Longest accepted entry name or link target, in bytes.
pub const MAX_NAME_BYTES: usize = 4096;
/// Most components an entry path may have.
pub const MAX_DEPTH: usize = 256;
/// Characters of a name quoted in an error message.
const PREVIEW_CHARS: usize = 120;

/// `name` for an error message: lossy UTF-8, escaped, cut to a readable length.
pub fn preview(name: &[u8]) -> String {
    let lossy = String::from_utf8_lossy(name);
    let mut cut: String = lossy.chars().take(PREVIEW_CHARS).collect();
    if cut.len() < lossy.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Checks an entry name; returns its components (possibly none, for `./`).
pub fn entry_components(raw: &[u8]) -> Result<Vec<String>, ExtractError> {
    let entry = || preview(raw);
    if raw.len() > MAX_NAME_BYTES {
        return Err(ExtractError::NameTooLong {
            entry: entry(),
            len: raw.len(),
            limit: MAX_NAME_BYTES,
        });
    }
    let name =
        std::str::from_utf8(raw).map_err(|_| ExtractError::NonUtf8Name { entry: entry() })?;
    let unsafe_path = |reason: &'static str| ExtractError::UnsafePath {
        entry: entry(),
        reason,
    };
    let name = name.replace('\\', "/");
    if name.starts_with('/') {
        return Err(unsafe_path("absolute paths are not allowed"));
    }
    let mut components = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => continue,
            ".." => return Err(unsafe_path("`..` components are not allowed")),
            c => {
                check_component(c).map_err(unsafe_path)?;
                components.push(c.to_string());
            }
        }
    }
    if components.len() > MAX_DEPTH {
        return Err(ExtractError::TooDeep {
            entry: entry(),
            depth: components.len(),
            limit: MAX_DEPTH,
        });
    }
    Ok(components)
}

fn check_component(c: &str) -> Result<(), &'static str> {
    if c.contains(':') {
        return Err("`:` (drive letters, alternate data streams) is not allowed");
    }
    if c.chars().any(char::is_control) {
        return Err("control characters are not allowed in names");
    }
    if cfg!(windows) && is_windows_device_name(c) {
        return Err("Windows device names (CON, NUL, COM1, …) are not allowed");
    }
    Ok(())
}

/// `CON`, `nul.txt`, `COM1`, … : names that open devices on Windows.
fn is_windows_device_name(c: &str) -> bool {
    let stem = c
        .split('.')
        .next()
        .unwrap_or(c)
        .trim_end_matches(' ')
        .to_ascii_uppercase();
    matches!(
        stem.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) || ((stem.starts_with("COM") || stem.starts_with("LPT"))
        && stem.len() == 4
        && stem.as_bytes()[3].is_ascii_digit()
        && stem.as_bytes()[3] != b'0')
}

/// Resolves a symlink target against the folder holding the link (`link_parent`, components
/// below the destination). Returns the target rewritten as `../`s up to the destination
/// followed by plain components, so it can only walk up through real folders this extraction
/// created and never above the destination, whatever other links point to.
pub fn symlink_target(
    entry: &[u8],
    link_parent: &[String],
    raw_target: &[u8],
) -> Result<String, ExtractError> {
    let escapes = |reason: &'static str| ExtractError::LinkEscapes {
        entry: preview(entry),
        target: preview(raw_target),
        reason,
    };
    if raw_target.is_empty() {
        return Err(escapes("the link target is empty"));
    }
    if raw_target.len() > MAX_NAME_BYTES {
        return Err(escapes("the link target is too long"));
    }
    let target =
        std::str::from_utf8(raw_target).map_err(|_| escapes("the link target is not UTF-8"))?;
    let target = target.replace('\\', "/");
    if target.starts_with('/') {
        return Err(escapes("absolute link targets are not allowed"));
    }
    let mut resolved: Vec<&str> = link_parent.iter().map(String::as_str).collect();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if resolved.pop().is_none() {
                    return Err(escapes("the link points outside the project"));
                }
            }
            c => {
                check_component(c).map_err(escapes)?;
                resolved.push(c);
            }
        }
    }
    if resolved.len() > MAX_DEPTH {
        return Err(escapes("the link target is nested too deep"));
    }
    let mut rewritten = vec![".."; link_parent.len()];
    rewritten.extend(resolved);
    Ok(if rewritten.is_empty() {
        ".".to_string()
    } else {
        rewritten.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_normalise() {
        assert_eq!(
            entry_components(b"./a//b/./c").unwrap(),
            vec!["a", "b", "c"]
        );
        assert_eq!(entry_components(b"a\\b").unwrap(), vec!["a", "b"]);
        assert!(entry_components(b"./").unwrap().is_empty());
    }

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [
            &b"../x"[..],
            b"a/../../x",
            b"/etc/passwd",
            b"\\x",
            b"C:/x",
            b"a/b:c",
            b"a\x01b",
            b"..\\x",
        ] {
            assert!(entry_components(bad).is_err(), "{}", preview(bad));
        }
        assert!(matches!(
            entry_components(b"a\xffb"),
            Err(ExtractError::NonUtf8Name { .. })
        ));
        assert!(matches!(
            entry_components(&[b'a'; 4097]),
            Err(ExtractError::NameTooLong { .. })
        ));
        assert!(matches!(
            entry_components("a/".repeat(257).as_bytes()),
            Err(ExtractError::TooDeep { .. })
        ));
    }

    #[test]
    fn device_names_are_recognised() {
        for name in ["CON", "nul.txt", "com1", "LPT9.log", "aux "] {
            assert!(is_windows_device_name(name), "{name}");
        }
        for name in ["console", "com0", "com10", "lpt", "nullable.ts"] {
            assert!(!is_windows_device_name(name), "{name}");
        }
    }

    #[test]
    fn link_targets_are_rewritten_inside() {
        assert_eq!(
            symlink_target(b"l", &parent(&["a", "b"]), b"../c").unwrap(),
            "../../a/c"
        );
        assert_eq!(symlink_target(b"l", &parent(&[]), b"x/y").unwrap(), "x/y");
        assert_eq!(symlink_target(b"l", &parent(&["a"]), b"..").unwrap(), "..");
        assert_eq!(symlink_target(b"l", &parent(&[]), b".").unwrap(), ".");
        for bad in [&b"../x"[..], b"/etc", b"a/../../x", b"", b"C:/x"] {
            assert!(
                symlink_target(b"l", &parent(&[]), bad).is_err(),
                "{}",
                preview(bad)
            );
        }
    }
}
