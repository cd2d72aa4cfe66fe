//! What a running job tells the world: stages, log lines and progress.
//!
//! The pipeline and the sandbox only ever talk to an [`EventSink`]; whether the events go
//! to the hub (masked and rate-limited), to a terminal (local `build`) or into a test's
//! vector is the sink's business.

use serde::Serialize;
use std::sync::{Arc, Mutex};

/// Stage names of the hub protocol, in the order a job moves through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Assigned, not started yet.
    Queued,
    /// Downloading and unpacking the project.
    Extracting,
    /// Running the Perry compiler.
    Compiling,
    /// Icons, version resources, manifests.
    GeneratingAssets,
    /// Collecting the executable, DLLs and assets.
    Bundling,
    /// Authenticode signing.
    Signing,
    /// NSIS installer, MSIX or portable ZIP.
    Packaging,
    /// Sending the artifacts to the hub.
    Uploading,
    /// The job is done.
    Complete,
}

impl Stage {
    /// The stage as the protocol spells it (`generating_assets`, …).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Extracting => "extracting",
            Stage::Compiling => "compiling",
            Stage::GeneratingAssets => "generating_assets",
            Stage::Bundling => "bundling",
            Stage::Signing => "signing",
            Stage::Packaging => "packaging",
            Stage::Uploading => "uploading",
            Stage::Complete => "complete",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which output stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One event of a job, before it is turned into a hub frame (serialised as such only
/// between a job's child process and the worker).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobEvent {
    /// A new stage began.
    Stage {
        /// The stage entered.
        stage: Stage,
        /// What the stage is doing.
        message: String,
    },
    /// One output line.
    Log {
        /// The stage that printed it.
        stage: Stage,
        /// Which stream it came from.
        stream: LogStream,
        /// The line, without its line break.
        line: String,
    },
    /// How far the stage is.
    Progress {
        /// The stage reporting.
        stage: Stage,
        /// 0 to 100.
        percent: u8,
        /// An optional note (`12.0 MiB downloaded`).
        message: Option<String>,
    },
}

/// Receiver of a job's events. Implementations must be cheap and never block for long:
/// they are called from inside log-streaming loops.
pub trait EventSink: Send + Sync {
    /// Takes one event.
    fn emit(&self, event: JobEvent);

    /// The stage the job is in (the last stage event), for sinks that track it.
    fn current_stage(&self) -> Option<Stage> {
        None
    }

    /// Emits a [`JobEvent::Stage`].
    fn stage(&self, stage: Stage, message: &str) {
        self.emit(JobEvent::Stage {
            stage,
            message: message.to_string(),
        });
    }
    /// Emits a [`JobEvent::Log`].
    fn log(&self, stage: Stage, stream: LogStream, line: &str) {
        self.emit(JobEvent::Log {
            stage,
            stream,
            line: line.to_string(),
        });
    }
    /// Emits a stdout [`JobEvent::Log`] line.
    fn info(&self, stage: Stage, line: &str) {
        self.log(stage, LogStream::Stdout, line);
    }
    /// Emits a [`JobEvent::Progress`] (percent capped at 100).
    fn progress(&self, stage: Stage, percent: u8, message: Option<&str>) {
        self.emit(JobEvent::Progress {
            stage,
            percent: percent.min(100),
            message: message.map(str::to_string),
        });
    }
}

/// A sink shared by a job's tasks.
pub(crate) type SharedSink = Arc<dyn EventSink>;

/// Keeps every event in memory; for tests.
#[derive(Default)]
pub struct CollectingSink {
    events: Mutex<Vec<JobEvent>>,
}

impl CollectingSink {
    /// An empty sink.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// Every event so far, in order.
    pub fn events(&self) -> Vec<JobEvent> {
        self.events.lock().unwrap().clone()
    }
    /// All log lines, in order.
    pub fn lines(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                JobEvent::Log { line, .. } => Some(line),
                _ => None,
            })
            .collect()
    }
}

impl EventSink for CollectingSink {
    fn emit(&self, event: JobEvent) {
        self.events.lock().unwrap().push(event);
    }
}

/// Discards everything.
pub struct NullSink;

impl EventSink for NullSink {
    fn emit(&self, _event: JobEvent) {}
}
