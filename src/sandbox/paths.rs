//! Checks the relative paths a [`Step`](super::Step) names (input destinations, outputs,
//! working dir) before any runner touches the file system, with the one path rule
//! ([`crate::untrusted::path`], `/`-separated: no absolute paths, `..`, drive letters,
//! backslashes or control characters). Both runners share these rules, and
//! [`output_folders`]: the folders a step's outputs go into exist before it starts.

use crate::untrusted::path::{relative_components, PathRule};
use anyhow::{anyhow, Result};
use std::path::PathBuf;

/// Splits a step-relative path into its components, refusing anything that could leave
/// the step's work dir. `""` and `"."` mean the work dir itself (no components).
pub(crate) fn step_relative(path: &str) -> Result<Vec<String>> {
    relative_components(path.as_bytes(), PathRule::PORTABLE)
        .map_err(|e| anyhow!("step path {path:?} refused: {e}"))
}

/// [`step_relative`] as a native relative path (`PathBuf::new()` for the work dir itself).
pub(crate) fn step_relative_path(path: &str) -> Result<PathBuf> {
    Ok(step_relative(path)?.into_iter().collect())
}

/// The folders to create before a step runs, so that no tool has to create its output
/// folder: a folder output (written with a trailing `/`) itself, a file output's parent.
/// `/`-separated, parents before children, no duplicates, never the work dir itself.
pub(crate) fn output_folders(outputs: &[String]) -> Result<Vec<String>> {
    let mut folders: Vec<String> = Vec::new();
    for output in outputs {
        let parts = step_relative(output)?;
        let depth = if output.ends_with('/') {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        for end in 1..=depth {
            let folder = parts[..end].join("/");
            if !folders.contains(&folder) {
                folders.push(folder);
            }
        }
    }
    Ok(folders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_pass() {
        assert_eq!(
            step_relative("out/app.exe").unwrap(),
            vec!["out", "app.exe"]
        );
        assert_eq!(step_relative("./a//b/").unwrap(), vec!["a", "b"]);
        assert!(step_relative("").unwrap().is_empty());
    }

    #[test]
    fn output_folders_are_folder_outputs_and_file_parents() {
        let outputs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            output_folders(&outputs(&[
                "out/",
                "dist/pkg/Setup.exe",
                "app.exe",
                "out/x.dll"
            ]))
            .unwrap(),
            ["out", "dist", "dist/pkg"]
        );
        assert!(output_folders(&outputs(&["../out/"])).is_err());
    }

    #[test]
    fn escaping_paths_are_refused() {
        for bad in ["/etc/passwd", "../x", "a/../../b", "C:/x", "a\\b", "a\0b"] {
            assert!(step_relative(bad).is_err(), "{bad:?} accepted");
        }
    }
}
