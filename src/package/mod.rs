//! Windows packaging on any host: icon, PE resources, NSIS installer, MSIX, portable ZIP.
//!
//! Pure-Rust work (icons, resources, ZIP and MSIX writing) runs in-process; `makensis` runs
//! as a [`crate::sandbox::Step`] through whatever runner the pipeline has. Every free-text
//! value from the manifest is escaped for its target format by `escape`, and every
//! template under `templates/` is rendered by `template`, which refuses unknown placeholders.

pub mod bundle;
pub(crate) mod compressibility;
pub(crate) mod deflate_pool;
pub mod dlls;
pub(crate) mod escape;
pub mod icon;
pub mod msix;
pub mod nsis;
pub mod nsis_compression;
pub mod nsis_plugins;
pub mod nsis_uninstaller;
pub mod portable;
pub mod resources;
pub(crate) mod rsrc_guard;
pub(crate) mod source_date;
pub(crate) mod template;
pub(crate) mod zip_end;
pub(crate) mod zip_stream;

pub use bundle::Bundle;
pub use source_date::source_date;

use crate::job::manifest::{Manifest, UacLevel};
use std::path::PathBuf;

/// The values every package format needs, derived once from the manifest.
#[derive(Clone, Debug)]
pub struct AppInfo {
    /// The app's display name from the manifest.
    pub app_name: String,
    /// `app_name` restricted to ASCII (for file names); never empty.
    pub ascii_name: String,
    /// The manifest's `bundle_id`.
    pub bundle_id: String,
    /// The version in four parts, each at most 65535.
    pub version4: [u16; 4],
    /// The version as the user wrote it (`1.2`), shown in Add/Remove Programs.
    pub version_display: String,
    /// Company name, or the app name when the manifest has none.
    pub publisher: String,
    /// `windows_file_description`, or the app name.
    pub description: String,
    /// `windows_copyright`, or `Copyright (c) <publisher>`.
    pub copyright: String,
    /// The execution level the app asks for.
    pub uac_level: UacLevel,
    /// The `<dpiAware>` value of the app's manifest.
    pub dpi_aware: String,
}

impl AppInfo {
    /// Derives the package values from a validated manifest, filling the defaults.
    pub fn from_manifest(m: &Manifest) -> AppInfo {
        let publisher = m
            .company_name
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| m.app_name.clone());
        AppInfo {
            app_name: m.app_name.clone(),
            ascii_name: ascii_file_name(&m.app_name, &m.bundle_id),
            bundle_id: m.bundle_id.clone(),
            version4: m.version4,
            version_display: m.version.clone(),
            description: m
                .file_description
                .clone()
                .unwrap_or_else(|| m.app_name.clone()),
            copyright: m
                .copyright
                .clone()
                .unwrap_or_else(|| format!("Copyright (c) {publisher}")),
            publisher,
            uac_level: m.uac_level,
            dpi_aware: m.dpi_aware.clone(),
        }
    }

    /// `1.2.3.4`
    pub(crate) fn version_string4(&self) -> String {
        let [a, b, c, d] = self.version4;
        format!("{a}.{b}.{c}.{d}")
    }
}

/// The ASCII file name of an app: one rule for the whole crate, owned by the manifest.
pub use crate::job::manifest::ascii_file_name;

/// Everything that can go wrong while packaging; the pipeline maps all of it to
/// `PACKAGE_FAILED`, so the message must say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The project's icon cannot be used.
    #[error("icon {path}: {reason}")]
    BadIcon {
        /// The icon file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file the package needs is not there.
    #[error("{what} not found: {path}")]
    Missing {
        /// What the file is, e.g. `application exe`.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The bundle breaks a packaging rule (unsafe name, link, or layout).
    #[error("bundle is not packageable: {0}")]
    UnsafeBundle(String),
    /// A PE file cannot be read or changed.
    #[error("PE file {path}: {reason}")]
    BadPe {
        /// The PE file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Resources written into a PE file differ when read back.
    #[error("resources written to {path} do not read back: {reason}")]
    ResourceMismatch {
        /// The PE file written.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// A non-system DLL the app imports is neither in the bundle nor in the folders searched.
    #[error("DLL {name} is imported by {by} but was not found in {searched}")]
    MissingDll {
        /// The DLL's file name.
        name: String,
        /// The file that imports it.
        by: String,
        /// The folders searched, comma-separated.
        searched: String,
    },
    /// A manifest value cannot be escaped safely for its target format.
    #[error("value for {field} cannot be written safely: {reason}")]
    BadValue {
        /// The value's field, e.g. `company_name`.
        field: String,
        /// Why it cannot be written.
        reason: String,
    },
    /// A template under `templates/` cannot be rendered.
    #[error("template {template}: {reason}")]
    Template {
        /// The template's name.
        template: &'static str,
        /// What went wrong, e.g. an unknown placeholder.
        reason: String,
    },
    /// A packaging tool (makensis) failed.
    #[error("{tool} failed: {reason}")]
    Tool {
        /// The tool's name.
        tool: &'static str,
        /// Its exit status or output.
        reason: String,
    },
    /// The MSIX package cannot be written.
    #[error("MSIX: {0}")]
    Msix(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `writing Setup.exe`.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl PackageError {
    /// `map_err(PackageError::io("writing x"))`
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PackageError {
        let context = context.into();
        move |source| PackageError::Io { context, source }
    }
}
