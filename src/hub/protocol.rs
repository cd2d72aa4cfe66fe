//! The Perry Hub wire protocol (hub-protocol.md §2): every frame in both directions.
//!
//! Worker → hub frames are built only here ([`WorkerFrame`], [`JobFrames`]) so each one
//! carries its `job_id` and the exact field names. Hub → worker frames are parsed
//! tolerantly by [`parse_hub_frame`]: unknown fields are ignored, and a malformed or
//! unknown frame is a [`FrameError`] the link logs as a warning, never a crash.

use crate::error::ErrorCode;
use crate::events::{LogStream, Stage};
use serde::Serialize;
use serde_json::Value;

/// One uploaded artifact as listed in `complete`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ArtifactInfo {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// A frame the worker sends. Serialises to one JSON object with a `type` field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerFrame {
    WorkerHello {
        name: String,
        capabilities: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        perry_version: Option<String>,
        max_concurrent: usize,
    },
    Stage {
        job_id: String,
        stage: Stage,
        message: String,
    },
    Log {
        job_id: String,
        stage: Stage,
        line: String,
        stream: LogStream,
    },
    Progress {
        job_id: String,
        stage: Stage,
        percent: u8,
        message: Option<String>,
    },
    Error {
        job_id: String,
        code: ErrorCode,
        message: String,
        stage: Option<Stage>,
    },
    Complete {
        job_id: String,
        success: bool,
        duration_secs: f64,
        artifacts: Vec<ArtifactInfo>,
        /// The masked failure message (the hub stores it as the build's error).
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        needs_finishing: Option<String>,
    },
    UpdateResult {
        success: bool,
        old_version: Option<String>,
        new_version: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl WorkerFrame {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("worker frames always serialise")
    }

    /// The job this frame belongs to (`None` for hello and update_result).
    pub fn job_id(&self) -> Option<&str> {
        match self {
            WorkerFrame::Stage { job_id, .. }
            | WorkerFrame::Log { job_id, .. }
            | WorkerFrame::Progress { job_id, .. }
            | WorkerFrame::Error { job_id, .. }
            | WorkerFrame::Complete { job_id, .. } => Some(job_id),
            WorkerFrame::WorkerHello { .. } | WorkerFrame::UpdateResult { .. } => None,
        }
    }
}

/// Builds the frames of one job; every frame gets this job's `job_id`.
#[derive(Clone, Debug)]
pub struct JobFrames {
    job_id: String,
}

impl JobFrames {
    pub fn new(job_id: impl Into<String>) -> Self {
        JobFrames {
            job_id: job_id.into(),
        }
    }
    pub fn job_id(&self) -> &str {
        &self.job_id
    }
    pub fn stage(&self, stage: Stage, message: impl Into<String>) -> WorkerFrame {
        WorkerFrame::Stage {
            job_id: self.job_id.clone(),
            stage,
            message: message.into(),
        }
    }
    pub fn log(&self, stage: Stage, stream: LogStream, line: impl Into<String>) -> WorkerFrame {
        WorkerFrame::Log {
            job_id: self.job_id.clone(),
            stage,
            line: line.into(),
            stream,
        }
    }
    pub fn progress(&self, stage: Stage, percent: u8, message: Option<String>) -> WorkerFrame {
        WorkerFrame::Progress {
            job_id: self.job_id.clone(),
            stage,
            percent: percent.min(100),
            message,
        }
    }
    pub fn error(
        &self,
        code: ErrorCode,
        message: impl Into<String>,
        stage: Option<Stage>,
    ) -> WorkerFrame {
        WorkerFrame::Error {
            job_id: self.job_id.clone(),
            code,
            message: message.into(),
            stage,
        }
    }
    pub fn complete_success(
        &self,
        duration_secs: f64,
        artifacts: Vec<ArtifactInfo>,
    ) -> WorkerFrame {
        WorkerFrame::Complete {
            job_id: self.job_id.clone(),
            success: true,
            duration_secs,
            artifacts,
            error: None,
            needs_finishing: None,
        }
    }
    /// `complete{success:false}` carrying `error` (already masked), as the hub stores it.
    pub fn complete_failure(&self, duration_secs: f64, error: impl Into<String>) -> WorkerFrame {
        WorkerFrame::Complete {
            job_id: self.job_id.clone(),
            success: false,
            duration_secs,
            artifacts: Vec::new(),
            error: Some(error.into()),
            needs_finishing: None,
        }
    }
}

/// A `job_assign` with every required field present.
#[derive(Clone, Debug)]
pub struct JobAssign {
    pub job_id: String,
    pub auth_token: String,
    pub manifest: Value,
    pub credentials: Value,
    pub tarball_url: String,
    pub artifact_upload_url: String,
}

/// A frame the hub sends.
#[derive(Clone, Debug)]
pub enum HubFrame {
    JobAssign(Box<JobAssign>),
    Cancel {
        job_id: String,
    },
    UpdatePerry,
    Error {
        code: String,
        message: String,
    },
    /// `proceed_distribute` / `skip_distribute`: accepted and logged only.
    Distribute {
        kind: String,
        job_id: Option<String>,
        reason: Option<String>,
    },
    /// Not a wire frame: the link tells the scheduler that its connection was lost, in
    /// order with the hub frames before it (see [`super::link::LinkLost`]).
    LinkLost(super::link::LinkLost),
}

/// Why a hub frame could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame is not a JSON object ({0})")]
    NotJson(String),
    #[error("frame has no string `type` field")]
    NoType,
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("`{frame}` frame lacks field `{field}` (or it has the wrong type)")]
    MissingField {
        frame: &'static str,
        field: &'static str,
    },
}

/// Parses one text frame from the hub.
pub fn parse_hub_frame(text: &str) -> Result<HubFrame, FrameError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| FrameError::NotJson("not an object".into()))?;
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or(FrameError::NoType)?;
    let string = |frame: &'static str, field: &'static str| -> Result<String, FrameError> {
        obj.get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(FrameError::MissingField { frame, field })
    };
    let optional = |field: &str| obj.get(field).and_then(Value::as_str).map(str::to_string);
    match kind {
        "job_assign" => {
            const F: &str = "job_assign";
            let job_id = string(F, "job_id")?;
            if job_id.is_empty() {
                return Err(FrameError::MissingField {
                    frame: F,
                    field: "job_id",
                });
            }
            let manifest = obj
                .get("manifest")
                .filter(|m| m.is_object())
                .cloned()
                .ok_or(FrameError::MissingField {
                    frame: F,
                    field: "manifest",
                })?;
            // The hub sends `{}` when there are no credentials; be lenient with null/absent.
            let credentials = match obj.get("credentials") {
                None | Some(Value::Null) => Value::Object(Default::default()),
                Some(c) => c.clone(),
            };
            Ok(HubFrame::JobAssign(Box::new(JobAssign {
                job_id,
                auth_token: string(F, "auth_token")?,
                manifest,
                credentials,
                tarball_url: string(F, "tarball_url")?,
                artifact_upload_url: string(F, "artifact_upload_url")?,
            })))
        }
        "cancel" => Ok(HubFrame::Cancel {
            job_id: string("cancel", "job_id")?,
        }),
        "update_perry" => Ok(HubFrame::UpdatePerry),
        "error" => Ok(HubFrame::Error {
            code: optional("code").unwrap_or_default(),
            message: optional("message").unwrap_or_default(),
        }),
        "proceed_distribute" | "skip_distribute" => Ok(HubFrame::Distribute {
            kind: kind.to_string(),
            job_id: optional("job_id"),
            reason: optional("reason"),
        }),
        other => Err(FrameError::UnknownType(other.chars().take(64).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hello_omits_unset_secret_and_version() {
        let hello = WorkerFrame::WorkerHello {
            name: "w".into(),
            capabilities: vec!["windows".into()],
            secret: None,
            perry_version: None,
            max_concurrent: 2,
        };
        let v: Value = serde_json::from_str(&hello.to_json()).unwrap();
        assert_eq!(v["type"], "worker_hello");
        assert!(v.get("secret").is_none());
        assert!(v.get("perry_version").is_none());
        assert_eq!(v["max_concurrent"], 2);
    }

    #[test]
    fn job_frames_carry_job_id_and_exact_fields() {
        let f = JobFrames::new("j1");
        let err: Value = serde_json::from_str(
            &f.error(ErrorCode::CompileFailed, "boom", Some(Stage::Compiling))
                .to_json(),
        )
        .unwrap();
        assert_eq!(
            err,
            json!({"type":"error","job_id":"j1","code":"COMPILE_FAILED","message":"boom","stage":"compiling"})
        );
        let p: Value =
            serde_json::from_str(&f.progress(Stage::Uploading, 150, None).to_json()).unwrap();
        assert_eq!(p["percent"], 100);
        assert!(p["message"].is_null());
        let c: Value = serde_json::from_str(&f.complete_failure(1.5, "boom").to_json()).unwrap();
        assert_eq!(
            c,
            json!({"type":"complete","job_id":"j1","success":false,"duration_secs":1.5,"artifacts":[],"error":"boom"})
        );
        let ok: Value =
            serde_json::from_str(&f.complete_success(2.0, Vec::new()).to_json()).unwrap();
        assert!(ok.get("error").is_none(), "{ok}");
        let l: Value = serde_json::from_str(
            &f.log(Stage::GeneratingAssets, LogStream::Stderr, "x")
                .to_json(),
        )
        .unwrap();
        assert_eq!(l["stage"], "generating_assets");
        assert_eq!(l["stream"], "stderr");
    }

    #[test]
    fn hub_frames_parse_tolerantly() {
        assert!(matches!(
            parse_hub_frame("nope"),
            Err(FrameError::NotJson(_))
        ));
        assert!(matches!(
            parse_hub_frame("[1]"),
            Err(FrameError::NotJson(_))
        ));
        assert_eq!(parse_hub_frame("{}").unwrap_err(), FrameError::NoType);
        assert!(matches!(
            parse_hub_frame(r#"{"type":"x"}"#),
            Err(FrameError::UnknownType(_))
        ));
        assert_eq!(
            parse_hub_frame(r#"{"type":"job_assign","job_id":"a"}"#).unwrap_err(),
            FrameError::MissingField {
                frame: "job_assign",
                field: "manifest"
            }
        );
        let ok = parse_hub_frame(
            r#"{"type":"job_assign","job_id":"a","auth_token":"t","manifest":{},"tarball_url":"u","artifact_upload_url":"v","extra":1}"#,
        )
        .unwrap();
        match ok {
            HubFrame::JobAssign(a) => assert_eq!(a.credentials, json!({})),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_hub_frame(r#"{"type":"cancel","job_id":"a"}"#),
            Ok(HubFrame::Cancel { .. })
        ));
        assert!(matches!(
            parse_hub_frame(r#"{"type":"update_perry"}"#),
            Ok(HubFrame::UpdatePerry)
        ));
    }
}
