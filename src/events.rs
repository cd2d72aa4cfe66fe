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
    Queued,
    Extracting,
    Compiling,
    GeneratingAssets,
    Bundling,
    Signing,
    Packaging,
    Uploading,
    Complete,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
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
    Stdout,
    Stderr,
}

/// One event of a job, before it is turned into a hub frame.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEvent {
    Stage {
        stage: Stage,
        message: String,
    },
    Log {
        stage: Stage,
        stream: LogStream,
        line: String,
    },
    Progress {
        stage: Stage,
        percent: u8,
        message: Option<String>,
    },
}

/// Receiver of a job's events. Implementations must be cheap and never block for long:
/// they are called from inside log-streaming loops.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: JobEvent);

    /// The stage the job is in (the last stage event), for sinks that track it.
    fn current_stage(&self) -> Option<Stage> {
        None
    }

    fn stage(&self, stage: Stage, message: &str) {
        self.emit(JobEvent::Stage {
            stage,
            message: message.to_string(),
        });
    }
    fn log(&self, stage: Stage, stream: LogStream, line: &str) {
        self.emit(JobEvent::Log {
            stage,
            stream,
            line: line.to_string(),
        });
    }
    fn info(&self, stage: Stage, line: &str) {
        self.log(stage, LogStream::Stdout, line);
    }
    fn progress(&self, stage: Stage, percent: u8, message: Option<&str>) {
        self.emit(JobEvent::Progress {
            stage,
            percent: percent.min(100),
            message: message.map(str::to_string),
        });
    }
}

pub type SharedSink = Arc<dyn EventSink>;

/// Keeps every event in memory; for tests.
#[derive(Default)]
pub struct CollectingSink {
    events: Mutex<Vec<JobEvent>>,
}

impl CollectingSink {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
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
