//! Hub → worker frames (hub-protocol.md §2, "Hub → worker"): their wire shapes as serde
//! types, and [`parse_hub_frame`], which turns one text frame into a [`HubFrame`] or a
//! [`FrameError`] (the one error shape: the link logs it as a warning and carries on).
//!
//! Every field is read leniently (a missing field or one of the wrong type is `None`) and
//! required fields are then checked here, so an error names the frame and the field but
//! never quotes a value: a `job_assign` carries the job's token and credentials. The
//! credentials stay an opaque JSON value; `job::credentials` reads them by hand.

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A `job_assign` with every required field present.
#[derive(Clone, Debug)]
pub(crate) struct JobAssign {
    /// The job's id; every frame the worker sends for it carries it.
    pub(crate) job_id: String,
    /// Bearer token for this job's downloads and uploads; revoked by `complete`.
    pub(crate) auth_token: String,
    /// The build manifest (read by `job::manifest`).
    pub(crate) manifest: Value,
    /// The signing credentials, `{}` when none; opaque here.
    pub(crate) credentials: Value,
    /// Where the project tarball (or precompiled bundle) is downloaded from.
    pub(crate) tarball_url: String,
    /// Where artifacts are uploaded to.
    pub(crate) artifact_upload_url: String,
}

/// A frame the hub sends.
#[derive(Clone, Debug)]
pub(crate) enum HubFrame {
    /// Run a job.
    JobAssign(Box<JobAssign>),
    /// Stop this job now and report it failed.
    Cancel {
        /// The job to stop.
        job_id: String,
    },
    /// Update the perry compiler and answer with `update_result`.
    UpdatePerry,
    /// An error from the hub, e.g. `AUTH_FAILED`.
    Error {
        /// The hub's error code.
        code: String,
        /// The hub's message.
        message: String,
    },
    /// `proceed_distribute` / `skip_distribute`: accepted and logged only.
    Distribute {
        /// The frame's `type`.
        kind: String,
        /// The job it names, if any.
        job_id: Option<String>,
        /// The hub's reason, if any.
        reason: Option<String>,
    },
    /// Not a wire frame: the link tells the scheduler that its connection was lost, in
    /// order with the hub frames before it (see [`crate::hub::link::LinkLost`]).
    LinkLost(crate::hub::link::LinkLost),
}

/// Why a hub frame could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Not JSON, or JSON but not an object; carries the parser's message.
    #[error("frame is not a JSON object ({0})")]
    NotJson(String),
    /// The object has no string `type`.
    #[error("frame has no string `type` field")]
    NoType,
    /// A `type` this worker does not know.
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    /// A required field is missing or has the wrong type.
    #[error("`{frame}` frame lacks field `{field}` (or it has the wrong type)")]
    MissingField {
        /// The frame's `type`.
        frame: &'static str,
        /// The field's name.
        field: &'static str,
    },
}

/// The hub's frames as they are on the wire, selected by `type`; unknown fields ignored.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireFrame {
    JobAssign(WireJobAssign),
    Cancel(WireCancel),
    UpdatePerry {},
    Error(WireError),
    ProceedDistribute(WireDistribute),
    SkipDistribute(WireDistribute),
}

#[derive(Deserialize)]
struct WireJobAssign {
    #[serde(default, deserialize_with = "lenient")]
    job_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    auth_token: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    manifest: Option<Map<String, Value>>,
    /// `{}` when the job has none; null or absent are taken as `{}` too.
    #[serde(default)]
    credentials: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    tarball_url: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    artifact_upload_url: Option<String>,
}

#[derive(Deserialize)]
struct WireCancel {
    #[serde(default, deserialize_with = "lenient")]
    job_id: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default, deserialize_with = "lenient")]
    code: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    message: Option<String>,
}

#[derive(Deserialize)]
struct WireDistribute {
    #[serde(default, deserialize_with = "lenient")]
    job_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    reason: Option<String>,
}

/// A field of the wrong type reads as absent, so no serde error (which would quote the
/// value) ever leaves this module.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(T::deserialize(Value::deserialize(d)?).ok())
}

fn required<T>(
    value: Option<T>,
    frame: &'static str,
    field: &'static str,
) -> Result<T, FrameError> {
    value.ok_or(FrameError::MissingField { frame, field })
}

/// Parses one text frame from the hub.
pub(crate) fn parse_hub_frame(text: &str) -> Result<HubFrame, FrameError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let kind = match &value {
        Value::Object(obj) => obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or(FrameError::NoType)?,
        _ => return Err(FrameError::NotJson("not an object".into())),
    };
    let unknown = FrameError::UnknownType(kind.chars().take(64).collect());
    // With every field lenient, only an unknown `type` can fail here.
    let frame = WireFrame::deserialize(value).map_err(|_| unknown)?;
    Ok(match frame {
        WireFrame::JobAssign(a) => HubFrame::JobAssign(Box::new(a.checked()?)),
        WireFrame::Cancel(c) => HubFrame::Cancel {
            job_id: required(c.job_id, "cancel", "job_id")?,
        },
        WireFrame::UpdatePerry {} => HubFrame::UpdatePerry,
        WireFrame::Error(e) => HubFrame::Error {
            code: e.code.unwrap_or_default(),
            message: e.message.unwrap_or_default(),
        },
        WireFrame::ProceedDistribute(d) => d.frame("proceed_distribute"),
        WireFrame::SkipDistribute(d) => d.frame("skip_distribute"),
    })
}

impl WireJobAssign {
    fn checked(self) -> Result<JobAssign, FrameError> {
        const F: &str = "job_assign";
        let job_id = required(self.job_id.filter(|id| !id.is_empty()), F, "job_id")?;
        let manifest = Value::Object(required(self.manifest, F, "manifest")?);
        Ok(JobAssign {
            job_id,
            auth_token: required(self.auth_token, F, "auth_token")?,
            manifest,
            credentials: self
                .credentials
                .unwrap_or_else(|| Value::Object(Map::new())),
            tarball_url: required(self.tarball_url, F, "tarball_url")?,
            artifact_upload_url: required(self.artifact_upload_url, F, "artifact_upload_url")?,
        })
    }
}

impl WireDistribute {
    fn frame(self, kind: &str) -> HubFrame {
        HubFrame::Distribute {
            kind: kind.to_string(),
            job_id: self.job_id,
            reason: self.reason,
        }
    }
}

#[cfg(test)]
mod tests;
