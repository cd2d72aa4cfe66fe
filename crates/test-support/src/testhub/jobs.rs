//! The test hub's view of each job, modelled on the real hub (hub-protocol.md §6): a job
//! is running once its `job_assign` went out; the worker's `error` fails it and its
//! `complete` finalises it and revokes its token, matched by `job_id` alone. When the
//! worker's connection drops, the last job assigned to it loses its token and is
//! re-queued (at most [`MAX_REQUEUES`] times); the next `worker_hello` gets it again as a
//! new `job_assign` with a new token.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How often the hub re-queues a job whose worker disconnected before it fails it.
pub const MAX_REQUEUES: u32 = 3;

/// Where a job stands at the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Registered by the test, no `job_assign` sent yet.
    Registered,
    Running,
    /// Its worker disconnected; waiting for the next `worker_hello`.
    Requeued,
    Succeeded,
    Failed,
}

/// A snapshot of one job at the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubJobStatus {
    pub state: JobState,
    /// The stored build error (`error` frame message, else `complete.error`).
    pub error: Option<String>,
    pub requeues: u32,
    /// The token the job's HTTP calls must carry now (empty once revoked).
    pub token: String,
}

pub(super) struct HubJob {
    pub token: String,
    pub tarball: Arc<Vec<u8>>,
    state: JobState,
    error: Option<String>,
    requeues: u32,
    /// The last `job_assign` sent for it, re-sent (with a new token) after a re-queue.
    assign: Option<Value>,
}

impl HubJob {
    fn status(&self) -> HubJobStatus {
        HubJobStatus {
            state: self.state,
            error: self.error.clone(),
            requeues: self.requeues,
            token: self.token.clone(),
        }
    }

    /// Whether uploads are still accepted (409 otherwise, like the real hub).
    pub fn is_open(&self) -> bool {
        !matches!(self.state, JobState::Succeeded | JobState::Failed)
    }
}

#[derive(Default)]
pub(super) struct Jobs {
    jobs: HashMap<String, HubJob>,
    /// The last job assigned to the connected worker (the only one the hub tracks).
    last_assigned: Option<String>,
    requeued: VecDeque<String>,
}

impl Jobs {
    pub fn register(&mut self, job_id: &str, token: &str, tarball: Vec<u8>) {
        self.jobs.insert(
            job_id.to_string(),
            HubJob {
                token: token.to_string(),
                tarball: Arc::new(tarball),
                state: JobState::Registered,
                error: None,
                requeues: 0,
                assign: None,
            },
        );
        self.requeued.retain(|j| j != job_id);
    }

    /// Swaps a job's tarball (as the hub does for a hand-off); state and token stay.
    pub fn set_tarball(&mut self, job_id: &str, tarball: Vec<u8>) {
        if let Some(job) = self.jobs.get_mut(job_id) {
            job.tarball = Arc::new(tarball);
        }
    }

    /// Drops everything kept about `job_id` (tarball included).
    pub fn forget(&mut self, job_id: &str) {
        self.jobs.remove(job_id);
        self.requeued.retain(|j| j != job_id);
        if self.last_assigned.as_deref() == Some(job_id) {
            self.last_assigned = None;
        }
    }

    pub fn get(&self, job_id: &str) -> Option<&HubJob> {
        self.jobs.get(job_id)
    }

    pub fn status(&self, job_id: &str) -> Option<HubJobStatus> {
        self.jobs.get(job_id).map(HubJob::status)
    }

    /// A text frame the hub sends: a `job_assign` starts its job.
    pub fn on_sent(&mut self, frame: &Value) {
        if frame.get("type").and_then(Value::as_str) != Some("job_assign") {
            return;
        }
        let Some(job_id) = frame.get("job_id").and_then(Value::as_str) else {
            return;
        };
        if let Some(job) = self.jobs.get_mut(job_id) {
            job.state = JobState::Running;
            job.assign = Some(frame.clone());
            self.last_assigned = Some(job_id.to_string());
        }
    }

    /// A frame from the worker: `error` fails its job, `complete` finalises it.
    pub fn on_received(&mut self, frame: &Value) {
        let text = |field: &str| frame.get(field).and_then(Value::as_str);
        let Some(job) = text("job_id").and_then(|id| self.jobs.get_mut(id)) else {
            return;
        };
        match text("type") {
            Some("error") => {
                job.state = JobState::Failed;
                job.error = Some(text("message").unwrap_or_default().to_string());
            }
            Some("complete") => {
                let success = frame.get("success").and_then(Value::as_bool) == Some(true);
                if success && job.state != JobState::Failed {
                    job.state = JobState::Succeeded;
                } else {
                    job.state = JobState::Failed;
                    if job.error.is_none() {
                        job.error = Some(text("error").unwrap_or_default().to_string());
                    }
                }
                job.token.clear();
            }
            _ => {}
        }
    }

    /// The worker's connection dropped: its last assigned job, if still running, loses
    /// its token and is re-queued (or failed after [`MAX_REQUEUES`]).
    pub fn on_worker_gone(&mut self) {
        let Some(job_id) = self.last_assigned.take() else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        if job.state != JobState::Running {
            return;
        }
        job.token.clear();
        job.requeues += 1;
        if job.requeues > MAX_REQUEUES {
            job.state = JobState::Failed;
            job.error = Some("worker disconnected too often".into());
        } else {
            job.state = JobState::Requeued;
            self.requeued.push_back(job_id);
        }
    }

    /// A worker said hello: the `job_assign` frames of every re-queued job, each with a new
    /// token (the caller sends them, which marks them running again).
    pub fn take_requeued_assigns(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(job_id) = self.requeued.pop_front() {
            let Some(job) = self.jobs.get_mut(&job_id) else {
                continue;
            };
            let Some(mut frame) = job.assign.clone() else {
                continue;
            };
            job.token = format!("{job_id}-requeued-{}", job.requeues);
            frame["auth_token"] = Value::String(job.token.clone());
            frames.push(frame);
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assign(jobs: &mut Jobs, job_id: &str) {
        jobs.register(job_id, "t1", b"tar".to_vec());
        jobs.on_sent(&json!({"type":"job_assign","job_id":job_id,"auth_token":"t1"}));
    }

    #[test]
    fn a_disconnect_requeues_the_last_job_with_a_new_token() {
        let mut jobs = Jobs::default();
        assign(&mut jobs, "a");
        jobs.on_worker_gone();
        let st = jobs.status("a").unwrap();
        assert_eq!(
            (st.state, st.requeues, st.token.as_str()),
            (JobState::Requeued, 1, "")
        );
        let frames = jobs.take_requeued_assigns();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0]["auth_token"], "a-requeued-1");
        jobs.on_sent(&frames[0]);
        assert_eq!(jobs.status("a").unwrap().state, JobState::Running);
        assert!(jobs.take_requeued_assigns().is_empty());
    }

    #[test]
    fn a_stale_error_and_complete_fail_the_requeued_job_by_id() {
        let mut jobs = Jobs::default();
        assign(&mut jobs, "a");
        jobs.on_worker_gone();
        let again = jobs.take_requeued_assigns();
        jobs.on_sent(&again[0]);
        jobs.on_received(&json!({"type":"error","job_id":"a","message":"HTTP 403"}));
        jobs.on_received(&json!({"type":"complete","job_id":"a","success":false}));
        let st = jobs.status("a").unwrap();
        assert_eq!(st.state, JobState::Failed);
        assert_eq!(st.error.as_deref(), Some("HTTP 403"));
        assert!(st.token.is_empty(), "the new token is revoked");
    }

    #[test]
    fn complete_error_is_stored_and_requeues_are_limited() {
        let mut jobs = Jobs::default();
        assign(&mut jobs, "a");
        jobs.on_received(&json!({"type":"complete","job_id":"a","success":false,"error":"boom"}));
        assert_eq!(jobs.status("a").unwrap().error.as_deref(), Some("boom"));

        assign(&mut jobs, "b");
        for _ in 0..MAX_REQUEUES {
            jobs.on_worker_gone();
            let frames = jobs.take_requeued_assigns();
            jobs.on_sent(&frames[0]);
        }
        jobs.on_worker_gone();
        assert_eq!(jobs.status("b").unwrap().state, JobState::Failed);
        assert!(jobs.take_requeued_assigns().is_empty());
    }
}
