//! The one rule for a relative path that names something below a root folder: an archive
//! entry, a symlink target, a step's input or output. A path becomes a list of plain
//! components; empty and `.` components are dropped, and everything that could leave the
//! root or mean something special to a file system is refused. What varies by use is a
//! [`PathRule`]: whether `\` separates components and whether Windows' special names are
//! refused.

/// Longest accepted path, in bytes.
pub(crate) const MAX_PATH_BYTES: usize = 4096;
/// Most components a path may have.
pub(crate) const MAX_DEPTH: usize = 256;
/// Characters of a path quoted in an error message.
const PREVIEW_CHARS: usize = 120;

/// How a path is read and which names are refused besides the rules that always hold
/// (relative, no `..`, no `:`, no control characters, UTF-8, length and depth limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PathRule {
    /// `\` separates components (a project written on Windows); otherwise it is refused.
    pub(crate) backslash_separates: bool,
    /// Refuse the names Windows treats specially: devices (`CON`, `nul.txt`, `COM1`, …)
    /// and names ending in a dot or a space (Windows drops those, so two names collide).
    pub(crate) refuse_windows_names: bool,
}

impl PathRule {
    /// Project tarballs: `\` is a separator; Windows' special names are refused on Windows
    /// hosts, where they would open a device or collide.
    pub(crate) const PROJECT: PathRule = PathRule {
        backslash_separates: true,
        refuse_windows_names: cfg!(windows),
    };
    /// Paths we or a tool wrote for the worker (step paths, container outputs):
    /// `/`-separated only.
    pub(crate) const PORTABLE: PathRule = PathRule {
        backslash_separates: false,
        refuse_windows_names: false,
    };
}

/// Why a path was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// A path starting with `/` (or `\` where backslashes separate).
    #[error("absolute paths are not allowed")]
    Absolute,
    /// A `..` component.
    #[error("`..` components are not allowed")]
    ParentDir,
    /// A `:` anywhere (drive letters, alternate data streams).
    #[error("`:` (drive letters, alternate data streams) is not allowed")]
    Colon,
    /// A control character in a name.
    #[error("control characters are not allowed in names")]
    Control,
    /// A `\` (paths are `/`-separated).
    #[error("`\\` is not allowed (paths are /-separated)")]
    Backslash,
    /// A Windows device name such as `CON`, `NUL` or `COM1`.
    #[error("Windows device names (CON, NUL, COM1, …) are not allowed")]
    WindowsDevice,
    /// A name ending in a dot or a space (Windows drops them).
    #[error("names ending in a dot or a space are not allowed")]
    TrailingDotOrSpace,
    /// A name that is not UTF-8.
    #[error("the name is not valid UTF-8")]
    NonUtf8,
    /// A path longer than allowed.
    #[error("the name is {len} bytes long (limit {limit})")]
    TooLong {
        /// The path's length, in bytes.
        len: usize,
        /// The longest path allowed, in bytes.
        limit: usize,
    },
    /// A path with more components than allowed.
    #[error("the path is {depth} levels deep (limit {limit})")]
    TooDeep {
        /// The path's number of components.
        depth: usize,
        /// The most components allowed.
        limit: usize,
    },
}

impl PathError {
    /// The rule broken, as a fixed text (for errors that carry a `&'static str` reason).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            PathError::Absolute => "absolute paths are not allowed",
            PathError::ParentDir => "`..` components are not allowed",
            PathError::Colon => "`:` (drive letters, alternate data streams) is not allowed",
            PathError::Control => "control characters are not allowed in names",
            PathError::Backslash => "`\\` is not allowed (paths are /-separated)",
            PathError::WindowsDevice => "Windows device names (CON, NUL, COM1, …) are not allowed",
            PathError::TrailingDotOrSpace => "names ending in a dot or a space are not allowed",
            PathError::NonUtf8 => "the name is not valid UTF-8",
            PathError::TooLong { .. } => "the name is too long",
            PathError::TooDeep { .. } => "the path is nested too deep",
        }
    }
}

/// `path` for an error message: lossy UTF-8, escaped, cut to a readable length.
pub(crate) fn preview(path: &[u8]) -> String {
    let lossy = String::from_utf8_lossy(path);
    let mut cut: String = lossy.chars().take(PREVIEW_CHARS).collect();
    if cut.len() < lossy.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Checks a relative path; returns its plain components (none for `""`, `.` or `./`).
pub(crate) fn relative_components(raw: &[u8], rule: PathRule) -> Result<Vec<String>, PathError> {
    let mut components = Vec::new();
    for component in split(raw, rule)? {
        match component {
            "" | "." => continue,
            ".." => return Err(PathError::ParentDir),
            c => {
                check_component(c, rule)?;
                components.push(c.to_string());
            }
        }
    }
    if components.len() > MAX_DEPTH {
        return Err(PathError::TooDeep {
            depth: components.len(),
            limit: MAX_DEPTH,
        });
    }
    Ok(components)
}

/// Splits a relative path into raw components (`""`, `.` and `..` included), after the
/// checks on the whole path: length, UTF-8, not absolute, `\` as the rule says.
pub(crate) fn split(raw: &[u8], rule: PathRule) -> Result<Vec<&str>, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong {
            len: raw.len(),
            limit: MAX_PATH_BYTES,
        });
    }
    let path = std::str::from_utf8(raw).map_err(|_| PathError::NonUtf8)?;
    if path.starts_with('/') || (rule.backslash_separates && path.starts_with('\\')) {
        return Err(PathError::Absolute);
    }
    if !rule.backslash_separates && path.contains('\\') {
        return Err(PathError::Backslash);
    }
    Ok(path.split(['/', '\\']).collect())
}

/// Checks one plain component (not `""`, `.` or `..`).
pub(crate) fn check_component(c: &str, rule: PathRule) -> Result<(), PathError> {
    if c.contains(':') {
        return Err(PathError::Colon);
    }
    if c.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    if rule.refuse_windows_names {
        if is_windows_device_name(c) {
            return Err(PathError::WindowsDevice);
        }
        if c.ends_with(['.', ' ']) {
            return Err(PathError::TrailingDotOrSpace);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOWS: PathRule = PathRule {
        backslash_separates: true,
        refuse_windows_names: true,
    };

    #[test]
    fn names_normalise() {
        let project = |raw: &[u8]| relative_components(raw, PathRule::PROJECT);
        assert_eq!(project(b"./a//b/./c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(project(b"a\\b").unwrap(), vec!["a", "b"]);
        assert!(project(b"./").unwrap().is_empty());
        assert_eq!(
            relative_components(b"./a//b/", PathRule::PORTABLE).unwrap(),
            vec!["a", "b"]
        );
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
            assert!(
                relative_components(bad, PathRule::PROJECT).is_err(),
                "{}",
                preview(bad)
            );
        }
        for bad in [&b"a\\b"[..], b"a\0b", b"C:/x", b"/etc/passwd", b"a/../../b"] {
            assert!(
                relative_components(bad, PathRule::PORTABLE).is_err(),
                "{}",
                preview(bad)
            );
        }
        assert_eq!(
            relative_components(b"a\xffb", PathRule::PROJECT),
            Err(PathError::NonUtf8)
        );
        assert!(matches!(
            relative_components(&[b'a'; 4097], PathRule::PROJECT),
            Err(PathError::TooLong { .. })
        ));
        assert!(matches!(
            relative_components("a/".repeat(257).as_bytes(), PathRule::PROJECT),
            Err(PathError::TooDeep { .. })
        ));
    }

    #[test]
    fn windows_names_are_refused_where_the_rule_says() {
        for name in ["CON", "nul.txt", "com1", "LPT9.log", "aux "] {
            assert!(is_windows_device_name(name), "{name}");
        }
        for name in ["console", "com0", "com10", "lpt", "nullable.ts"] {
            assert!(!is_windows_device_name(name), "{name}");
        }
        assert_eq!(
            relative_components(b"a/nul.txt", WINDOWS),
            Err(PathError::WindowsDevice)
        );
        assert_eq!(
            relative_components(b"a./b", WINDOWS),
            Err(PathError::TrailingDotOrSpace)
        );
        assert_eq!(
            relative_components(b"a/b ", WINDOWS),
            Err(PathError::TrailingDotOrSpace)
        );
        assert!(relative_components(b"a./nul.txt", PathRule::PORTABLE).is_ok());
    }
}
