//! Typed job errors: the error code and stage the hub shows to the user.
//!
//! Everything below the job boundary may use `anyhow`; whatever leaves a job is a
//! [`JobError`] whose [`ErrorCode`] follows the stage that failed.

use crate::events::Stage;
use serde::Serialize;

/// Error codes of the hub protocol (§2 of hub-protocol.md) that a worker may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The compiler failed or wrote no executable.
    CompileFailed,
    /// Signing, its certificate checks or the timestamp failed.
    SigningFailed,
    /// Building the installer, MSIX or ZIP failed.
    PackageFailed,
    /// An artifact is larger than the hub accepts.
    UploadTooLarge,
    /// Anything else: bad inputs, transfers, cancels, timeouts.
    InternalError,
}

impl ErrorCode {
    /// The code as the hub spells it (`COMPILE_FAILED`, …).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::CompileFailed => "COMPILE_FAILED",
            ErrorCode::SigningFailed => "SIGNING_FAILED",
            ErrorCode::PackageFailed => "PACKAGE_FAILED",
            ErrorCode::UploadTooLarge => "UPLOAD_TOO_LARGE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job failure as reported to the hub: `error{code, message, stage}`.
///
/// The message must never contain a secret; the hub side masks it again anyway.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JobError {
    /// What kind of failure (shown to users by the hub).
    pub code: ErrorCode,
    /// The stage the job was in; `None` before the first stage.
    pub(crate) stage: Option<Stage>,
    /// What went wrong, for humans; never a secret.
    pub message: String,
}

impl JobError {
    /// A failure with `code` in `stage`.
    pub fn new(code: ErrorCode, stage: Option<Stage>, message: impl Into<String>) -> Self {
        JobError {
            code,
            stage,
            message: message.into(),
        }
    }

    /// An `INTERNAL_ERROR` in `stage`.
    pub fn internal(stage: Option<Stage>, message: impl Into<String>) -> Self {
        JobError::new(ErrorCode::InternalError, stage, message)
    }

    /// A cancelled job: reported as `INTERNAL_ERROR` with a plain message.
    pub fn cancelled(stage: Option<Stage>) -> Self {
        JobError::new(ErrorCode::InternalError, stage, "job cancelled")
    }
}
