//! Link entries of an untrusted tar: symlink targets resolved and rewritten so they stay
//! below the destination, and the entry name checks shared with every other entry.

use super::UnpackError;
use crate::untrusted::path::{self, preview, PathError, PathRule};

/// Checks an entry name under `rule`; returns its components (possibly none, for `./`).
pub(crate) fn entry_components(raw: &[u8], rule: PathRule) -> Result<Vec<String>, UnpackError> {
    path::relative_components(raw, rule).map_err(|e| name_error(raw, e))
}

/// A refused entry name as the unpacker reports it.
fn name_error(raw: &[u8], e: PathError) -> UnpackError {
    let entry = preview(raw);
    match e {
        PathError::NonUtf8 => UnpackError::NonUtf8Name { entry },
        PathError::TooLong { len, limit } => UnpackError::NameTooLong { entry, len, limit },
        PathError::TooDeep { depth, limit } => UnpackError::TooDeep {
            entry,
            depth,
            limit,
        },
        other => UnpackError::UnsafePath {
            entry,
            reason: other.reason(),
        },
    }
}

/// Resolves a symlink target against the folder holding the link (`link_parent`, components
/// below the destination). Returns the target rewritten as `../`s up to the destination
/// followed by plain components, so it can only walk up through real folders this unpacking
/// created and never above the destination, whatever other links point to.
pub(crate) fn symlink_target(
    entry: &[u8],
    link_parent: &[String],
    raw_target: &[u8],
    rule: PathRule,
) -> Result<String, UnpackError> {
    let escapes = |reason: &'static str| UnpackError::LinkEscapes {
        entry: preview(entry),
        target: preview(raw_target),
        reason,
    };
    if raw_target.is_empty() {
        return Err(escapes("the link target is empty"));
    }
    let components = path::split(raw_target, rule).map_err(|e| match e {
        PathError::Absolute => escapes("absolute link targets are not allowed"),
        PathError::TooLong { .. } => escapes("the link target is too long"),
        PathError::NonUtf8 => escapes("the link target is not UTF-8"),
        other => escapes(other.reason()),
    })?;
    let mut resolved: Vec<&str> = link_parent.iter().map(String::as_str).collect();
    for component in components {
        match component {
            "" | "." => {}
            ".." => {
                if resolved.pop().is_none() {
                    return Err(escapes("the link points outside the destination"));
                }
            }
            c => {
                path::check_component(c, rule).map_err(|e| escapes(e.reason()))?;
                resolved.push(c);
            }
        }
    }
    if resolved.len() > path::MAX_DEPTH {
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
    fn entry_name_errors_keep_their_kind() {
        let project = |raw: &[u8]| entry_components(raw, PathRule::PROJECT);
        assert!(matches!(
            project(b"a\xffb"),
            Err(UnpackError::NonUtf8Name { .. })
        ));
        assert!(matches!(
            project(&[b'a'; 4097]),
            Err(UnpackError::NameTooLong { .. })
        ));
        assert!(matches!(
            project("a/".repeat(257).as_bytes()),
            Err(UnpackError::TooDeep { .. })
        ));
        assert!(matches!(
            project(b"../x"),
            Err(UnpackError::UnsafePath { .. })
        ));
    }

    #[test]
    fn link_targets_are_rewritten_inside() {
        let target =
            |p: &[&str], raw: &[u8]| symlink_target(b"l", &parent(p), raw, PathRule::PROJECT);
        assert_eq!(target(&["a", "b"], b"../c").unwrap(), "../../a/c");
        assert_eq!(target(&[], b"x/y").unwrap(), "x/y");
        assert_eq!(target(&["a"], b"..").unwrap(), "..");
        assert_eq!(target(&[], b".").unwrap(), ".");
        for bad in [&b"../x"[..], b"/etc", b"a/../../x", b"", b"C:/x"] {
            assert!(target(&[], bad).is_err(), "{}", preview(bad));
        }
        let portable = symlink_target(b"l", &parent(&["a"]), b"..\\x", PathRule::PORTABLE);
        assert!(portable.is_err());
    }
}
