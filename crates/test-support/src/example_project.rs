//! The bundled example project (`examples/hello`) as tests and benchmarks use it: its
//! manifest, a `perry publish`-style tarball, and marked copies that steer the stand-in
//! compiler (`// perry-standin: fail`, `sleep N`, `flood N`).

use flate2::write::GzEncoder;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn example_dir() -> PathBuf {
    crate::repo_root().join("examples/hello")
}

/// The example's manifest (from its perry.toml) with `windows_distribute` set.
pub fn example_manifest(distribute: &str) -> Value {
    let mut m = perry_ship_windows::cli::project::manifest_from_perry_toml(&example_dir()).unwrap();
    m["windows_distribute"] = Value::from(distribute);
    m
}

/// A gzip tarball of `dir` with paths relative to it (no top-level folder), like `perry publish`.
pub fn tarball_of(dir: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).expect("tar the project");
    builder.into_inner().unwrap().finish().unwrap()
}

/// A copy of the example project at `to`, its entry file starting with `// {marker}`.
pub fn example_with_marker(to: &Path, marker: &str) -> PathBuf {
    copy_dir(&example_dir(), to);
    let main = to.join("src/main.ts");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, format!("// {marker}\n{text}")).unwrap();
    to.to_path_buf()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
