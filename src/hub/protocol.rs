//! The Perry Hub wire protocol (hub-protocol.md §2): every frame in both directions.
//!
//! Worker → hub frames are built only here (`WorkerFrame`, `JobFrames`) so each one
//! carries its `job_id` and the exact field names. Hub → worker frames are serde types in
//! `incoming`, parsed tolerantly by `parse_hub_frame`: unknown fields are ignored, and a
//! malformed or unknown frame is a `FrameError` the link logs as a warning, never a crash.

mod incoming;

pub(crate) use incoming::{parse_hub_frame, HubFrame, JobAssign};

use crate::error::ErrorCode;
use crate::events::{LogStream, Stage};
use serde::Serialize;

/// One uploaded artifact as listed in `complete`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ArtifactInfo {
    /// File name of the artifact as uploaded.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// A frame the worker sends. Serialises to one JSON object with a `type` field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WorkerFrame {
    /// The first frame of every connection: who the worker is and what it can do.
    WorkerHello {
        /// Display name (`PERRY_WORKER_NAME`).
        name: String,
        /// Job targets this worker takes: `windows` and/or `windows-sign`.
        capabilities: Vec<String>,
        /// `PERRY_HUB_WORKER_SECRET`, only when configured.
        #[serde(skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// The compiler's version from `perry --version`, without a leading `perry `.
        #[serde(skip_serializing_if = "Option::is_none")]
        perry_version: Option<String>,
        /// Jobs this worker runs at once.
        max_concurrent: usize,
    },
    /// A job entered a stage.
    Stage {
        /// The job this frame belongs to.
        job_id: String,
        /// The stage entered.
        stage: Stage,
        /// What the stage does, for users.
        message: String,
    },
    /// One line of tool output (masked).
    Log {
        /// The job this frame belongs to.
        job_id: String,
        /// The stage that printed the line.
        stage: Stage,
        /// The line, without its newline.
        line: String,
        /// Standard output or error; the CLI shows stderr lines.
        stream: LogStream,
    },
    /// How far the current stage is.
    Progress {
        /// The job this frame belongs to.
        job_id: String,
        /// The stage measured.
        stage: Stage,
        /// Percent done, 0–100.
        percent: u8,
        /// Optional detail (serialised as null when absent).
        message: Option<String>,
    },
    /// The job failed; sent just before `complete{success:false}`.
    Error {
        /// The job this frame belongs to.
        job_id: String,
        /// Error code of the failed stage.
        code: ErrorCode,
        /// The masked failure message.
        message: String,
        /// The stage that failed, if any.
        stage: Option<Stage>,
    },
    /// The job ended; revokes the job's token, so it comes after every upload.
    Complete {
        /// The job this frame belongs to.
        job_id: String,
        /// Whether the job succeeded.
        success: bool,
        /// Wall time of the job, in seconds.
        duration_secs: f64,
        /// The uploaded artifacts (empty on failure).
        artifacts: Vec<ArtifactInfo>,
        /// The masked failure message (the hub stores it as the build's error).
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Set (to `windows`) only when handing a precompiled bundle on to be finished.
        #[serde(skip_serializing_if = "Option::is_none")]
        needs_finishing: Option<String>,
    },
    /// The answer to `update_perry` (carries no job id).
    UpdateResult {
        /// Whether the compiler update worked.
        success: bool,
        /// Compiler version before the update.
        old_version: Option<String>,
        /// Compiler version after the update.
        new_version: Option<String>,
        /// Why the update failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl WorkerFrame {
    /// The frame as one JSON text.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("worker frames always serialise")
    }

    /// The job this frame belongs to (`None` for hello and update_result).
    pub(crate) fn job_id(&self) -> Option<&str> {
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
pub(crate) struct JobFrames {
    job_id: String,
}

impl JobFrames {
    /// Frames for the job `job_id`.
    pub(crate) fn new(job_id: impl Into<String>) -> Self {
        JobFrames {
            job_id: job_id.into(),
        }
    }
    /// A `stage` frame.
    pub(crate) fn stage(&self, stage: Stage, message: impl Into<String>) -> WorkerFrame {
        WorkerFrame::Stage {
            job_id: self.job_id.clone(),
            stage,
            message: message.into(),
        }
    }
    /// A `log` frame.
    pub(crate) fn log(
        &self,
        stage: Stage,
        stream: LogStream,
        line: impl Into<String>,
    ) -> WorkerFrame {
        WorkerFrame::Log {
            job_id: self.job_id.clone(),
            stage,
            line: line.into(),
            stream,
        }
    }
    /// A `progress` frame; `percent` is capped at 100.
    pub(crate) fn progress(
        &self,
        stage: Stage,
        percent: u8,
        message: Option<String>,
    ) -> WorkerFrame {
        WorkerFrame::Progress {
            job_id: self.job_id.clone(),
            stage,
            percent: percent.min(100),
            message,
        }
    }
    /// An `error` frame.
    pub(crate) fn error(
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
    /// `complete{success:true}` listing the uploaded artifacts.
    pub(crate) fn complete_success(
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
    pub(crate) fn complete_failure(
        &self,
        duration_secs: f64,
        error: impl Into<String>,
    ) -> WorkerFrame {
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
