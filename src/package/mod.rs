//! Windows packaging on any host: icon, PE resources, NSIS installer, MSIX, portable ZIP.
//!
//! Pure-Rust work (icons, resources, ZIP and MSIX writing) runs in-process; `makensis` runs
//! as a [`crate::sandbox::Step`] through whatever runner the pipeline has. Every free-text
//! value from the manifest is escaped for its target format by [`escape`], and every
//! template under `templates/` is rendered by [`template`], which refuses unknown placeholders.

pub mod bundle;
pub mod compressibility;
pub mod deflate_pool;
pub mod dlls;
pub mod escape;
pub mod icon;
pub mod msix;
pub mod nsis;
pub mod nsis_compression;
pub mod nsis_plugins;
pub mod nsis_uninstaller;
pub mod portable;
pub mod resources;
pub mod rsrc_guard;
pub mod source_date;
pub mod template;
pub mod zip_stream;

pub use bundle::Bundle;
pub use source_date::source_date;

use crate::job::manifest::{Manifest, UacLevel};
use std::path::PathBuf;

/// The values every package format needs, derived once from the manifest.
#[derive(Clone, Debug)]
pub struct AppInfo {
    pub app_name: String,
    /// `app_name` restricted to ASCII (for file names); never empty.
    pub ascii_name: String,
    pub bundle_id: String,
    pub version4: [u16; 4],
    /// The version as the user wrote it (`1.2`), shown in Add/Remove Programs.
    pub version_display: String,
    /// Company name, or the app name when the manifest has none.
    pub publisher: String,
    pub description: String,
    pub copyright: String,
    pub uac_level: UacLevel,
    pub dpi_aware: String,
}

impl AppInfo {
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
    pub fn version_string4(&self) -> String {
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
    #[error("icon {path}: {reason}")]
    BadIcon { path: PathBuf, reason: String },
    #[error("{what} not found: {path}")]
    Missing { what: &'static str, path: PathBuf },
    #[error("bundle is not packageable: {0}")]
    UnsafeBundle(String),
    #[error("PE file {path}: {reason}")]
    BadPe { path: PathBuf, reason: String },
    #[error("resources written to {path} do not read back: {reason}")]
    ResourceMismatch { path: PathBuf, reason: String },
    #[error("DLL {name} is imported by {by} but was not found in {searched}")]
    MissingDll {
        name: String,
        by: String,
        searched: String,
    },
    #[error("value for {field} cannot be written safely: {reason}")]
    BadValue { field: String, reason: String },
    #[error("template {template}: {reason}")]
    Template {
        template: &'static str,
        reason: String,
    },
    #[error("{tool} failed: {reason}")]
    Tool { tool: &'static str, reason: String },
    #[error("MSIX: {0}")]
    Msix(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl PackageError {
    /// `map_err(PackageError::io("writing x"))`
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PackageError {
        let context = context.into();
        move |source| PackageError::Io { context, source }
    }
}
