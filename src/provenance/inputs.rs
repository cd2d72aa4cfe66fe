//! The inputs a build record names, measured: the project tarball (or folder), the
//! normalized manifest, the toolchain image and the Perry version.
//!
//! The tarball is deleted once extracted, so whoever downloads or copies it calls
//! `remember_archive_digest` first; the pipeline reads the digest back with
//! `project_digest`.

use crate::job::manifest::Manifest;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Name of the digest file left in the job's work folder.
const ARCHIVE_DIGEST_FILE: &str = "project.tar.gz.sha256";
/// Input name of an uploaded (or local) project tarball.
pub const PROJECT_ARCHIVE: &str = "project.tar.gz";
/// Input name of a local project folder (digest of its file tree).
pub(crate) const PROJECT_TREE: &str = "project-tree";

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Stores the tarball's SHA-256 in `work_dir` for the build record.
pub(crate) fn remember_archive_digest(archive: &Path, work_dir: &Path) -> std::io::Result<()> {
    let digest = sha256_file(archive)?;
    std::fs::write(work_dir.join(ARCHIVE_DIGEST_FILE), digest)
}

/// `(input name, sha256)` of the project: the remembered tarball digest, else the digest of
/// the project folder's tree ([`tree_sha256`]).
pub(crate) fn project_digest(
    work_dir: &Path,
    project_dir: &Path,
) -> std::io::Result<(String, String)> {
    match std::fs::read_to_string(work_dir.join(ARCHIVE_DIGEST_FILE)) {
        Ok(digest) => Ok((PROJECT_ARCHIVE.into(), digest.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((PROJECT_TREE.into(), tree_sha256(project_dir)?))
        }
        Err(e) => Err(e),
    }
}

/// SHA-256 over `<relative path>\0<file sha256>\n` of every file, in path order (symbolic
/// links contribute their target text): independent of file times and folder location.
pub(crate) fn tree_sha256(root: &Path) -> std::io::Result<String> {
    let mut lines = Vec::new();
    collect_tree(root, "", &mut lines)?;
    lines.sort();
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
    }
    Ok(hex::encode(hasher.finalize()))
}

fn collect_tree(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_tree(&entry.path(), &format!("{rel}/"), out)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            out.push(format!("{rel}\0link:{}\n", target.display()));
        } else if kind.is_file() {
            out.push(format!("{rel}\0{}\n", sha256_file(&entry.path())?));
        }
    }
    Ok(())
}

/// SHA-256 of the manifest as the worker understood it (parsed, then serialized with its
/// fields in a fixed order): the same for any JSON spelling of the same manifest.
pub(crate) fn manifest_sha256(manifest: &Manifest) -> String {
    let json = serde_json::to_vec(manifest).expect("a manifest always serializes");
    hex::encode(Sha256::digest(json))
}

/// The toolchain image's ID (`sha256:…`) as the Docker engine reports it.
pub(crate) async fn image_id(image: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let docker = bollard::Docker::connect_with_defaults().context("connecting to Docker")?;
    let inspect = docker
        .inspect_image(image)
        .await
        .with_context(|| format!("inspecting the image {image}"))?;
    inspect
        .id
        .with_context(|| format!("the engine reports no ID for {image}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_digest_depends_on_content_and_names_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("src")).unwrap();
            std::fs::write(d.join("src/main.ts"), "hello").unwrap();
            std::fs::write(d.join("perry.toml"), "x").unwrap();
        }
        assert_eq!(
            tree_sha256(a.path()).unwrap(),
            tree_sha256(b.path()).unwrap()
        );
        std::fs::write(b.path().join("src/main.ts"), "hellO").unwrap();
        assert_ne!(
            tree_sha256(a.path()).unwrap(),
            tree_sha256(b.path()).unwrap()
        );
    }

    #[test]
    fn a_remembered_archive_digest_wins_over_the_tree() {
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("p.tar.gz");
        std::fs::write(&archive, b"abc").unwrap();
        remember_archive_digest(&archive, work.path()).unwrap();
        let (name, digest) = project_digest(work.path(), work.path()).unwrap();
        assert_eq!(name, PROJECT_ARCHIVE);
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
