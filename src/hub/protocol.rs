//! The Perry Hub wire protocol (hub-protocol.md §2): every frame in both directions.
//!
//! Worker → hub frames are built only here ([`WorkerFrame`], [`JobFrames`]) so each one
//! carries its `job_id` and the exact field names. Hub → worker frames are serde types in
//! [`incoming`], parsed tolerantly by [`parse_hub_frame`]: unknown fields are ignored, and a
//! malformed or unknown frame is a [`FrameError`] the link logs as a warning, never a crash.

mod incoming;

pub use incoming::{parse_hub_frame, FrameError, HubFrame, JobAssign};

use crate::error::ErrorCode;
use crate::events::{LogStream, Stage};
use serde::Serialize;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
}
