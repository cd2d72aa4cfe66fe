//! The scheduler: which assigned job runs when.
//!
//! `max_concurrent` slots. A `job_assign` is never dropped: it waits in a local queue until a
//! slot is free, or, when that queue already holds `PERRY_MAX_QUEUED_JOBS`, it is refused
//! with `error` + `complete{success:false}`. The same `job_id` assigned again (the hub re-queued it after a reconnect)
//! first stops the orphaned run silently, then runs the new assignment; two runs of one job
//! never overlap. `cancel` stops a running job or removes a queued one (both reported
//! failed). A lost hub link ends every job the scheduler has, for good: the hub revokes
//! their tokens and re-queues them (hub-protocol.md §6), so running jobs are stopped
//! silently, queued ones are dropped, and a job comes back only as a new `job_assign`.
//! `update_perry` waits until no job runs (new starts are held meanwhile) and is
//! answered with `update_result`. On shutdown the scheduler drains: no new job starts,
//! running jobs may finish until the drain deadline, then they are cancelled and reported.
//! A job is taken only when the [`Lifecycle`] admits it (not paused, not idle-exiting, job
//! limit not reached); the scheduler tells it whenever it becomes busy or idle.

use super::job_run::{run_job, JobEnv, RunControl};
use super::lifecycle::Lifecycle;
use super::protocol::{HubFrame, JobAssign, JobFrames, WorkerFrame};
use super::update::{update_perry, worker_hello};
use crate::error::ErrorCode;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Attempt counters kept for at most this many job ids.
const MAX_REMEMBERED_JOBS: usize = 4096;

struct RunEntry {
    job_id: String,
    control: RunControl,
    /// An orphan being stopped: it no longer answers for its job id.
    superseded: bool,
}

struct Queued {
    assign: JobAssign,
    attempt: u32,
}

pub(crate) struct Scheduler {
    env: Arc<JobEnv>,
    slots: usize,
    queue: VecDeque<Queued>,
    runs: HashMap<u64, RunEntry>,
    next_run_id: u64,
    attempts: HashMap<String, u32>,
    finished_tx: mpsc::UnboundedSender<u64>,
    finished_rx: mpsc::UnboundedReceiver<u64>,
    update_requested: bool,
    update_running: bool,
    /// Carries the perry version probed after an update.
    update_done_tx: mpsc::UnboundedSender<Option<String>>,
    update_done_rx: mpsc::UnboundedReceiver<Option<String>>,
    /// The hello the link sends; replaced (the link then reconnects) when an update changed
    /// the perry version or capabilities, at the first moment no job runs or waits.
    hello: watch::Sender<WorkerFrame>,
    pending_hello: Option<WorkerFrame>,
    drain_deadline: Option<Instant>,
    drain_cancelled: bool,
    lifecycle: Arc<Lifecycle>,
}

impl Scheduler {
    pub(crate) fn new(env: Arc<JobEnv>, hello: watch::Sender<WorkerFrame>) -> Self {
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let (update_done_tx, update_done_rx) = mpsc::unbounded_channel();
        Scheduler {
            slots: env.config.max_concurrent.max(1),
            env,
            queue: VecDeque::new(),
            runs: HashMap::new(),
            next_run_id: 1,
            attempts: HashMap::new(),
            finished_tx,
            finished_rx,
            update_requested: false,
            update_running: false,
            update_done_tx,
            update_done_rx,
            hello,
            pending_hello: None,
            drain_deadline: None,
            drain_cancelled: false,
            lifecycle: Arc::new(Lifecycle::new(None, None)),
        }
    }

    /// Takes jobs only when `lifecycle` admits them, and reports busy/idle to it.
    pub(crate) fn with_lifecycle(mut self, lifecycle: Arc<Lifecycle>) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Runs until `shutdown` fired and every job has ended (drained or cancelled).
    pub(crate) async fn run(
        mut self,
        mut incoming: mpsc::Receiver<HubFrame>,
        shutdown: CancellationToken,
    ) {
        let mut link_open = true;
        loop {
            let deadline = self.drain_deadline;
            tokio::select! {
                frame = incoming.recv(), if link_open => match frame {
                    Some(frame) => self.on_frame(frame),
                    None => link_open = false,
                },
                Some(run_id) = self.finished_rx.recv() => self.on_finished(run_id),
                Some(version) = self.update_done_rx.recv() => self.on_update_done(version),
                _ = shutdown.cancelled(), if deadline.is_none() => self.start_drain(),
                _ = sleep_until_opt(deadline), if deadline.is_some() && !self.drain_cancelled => {
                    self.cancel_for_shutdown();
                }
            }
            self.start_ready();
            self.announce_pending_hello();
            if self.drain_deadline.is_some() && self.runs.is_empty() && !self.update_running {
                break;
            }
        }
        tracing::info!("all jobs ended; closing the hub link");
    }

    fn on_frame(&mut self, frame: HubFrame) {
        match frame {
            HubFrame::JobAssign(assign) => self.on_assign(*assign),
            HubFrame::Cancel { job_id } => self.on_cancel(&job_id),
            HubFrame::UpdatePerry => {
                if self.update_running || self.update_requested {
                    tracing::info!("update_perry already pending");
                } else {
                    if !self.runs.is_empty() {
                        tracing::info!("update_perry deferred until running jobs end");
                    }
                    self.update_requested = true;
                }
            }
            HubFrame::LinkLost(lost) => {
                self.on_link_lost();
                lost.acknowledge();
            }
            // The link handles these itself.
            HubFrame::Error { .. } | HubFrame::Distribute { .. } => {}
        }
    }

    fn on_assign(&mut self, assign: JobAssign) {
        if self.drain_deadline.is_some() {
            tracing::warn!(job_id = %assign.job_id, "shutting down: not starting this job (the hub re-queues it when the link closes)");
            return;
        }
        // A re-assignment replaces its queued entry or running orphan: never refused.
        let replaces = self.queue.iter().any(|q| q.assign.job_id == assign.job_id)
            || self
                .runs
                .values()
                .any(|r| r.job_id == assign.job_id && !r.superseded);
        if !replaces && self.queue.len() >= self.env.config.max_queued_jobs {
            let message = format!(
                "this worker's queue is full ({} jobs waiting, PERRY_MAX_QUEUED_JOBS); \
                 the job was not started",
                self.queue.len()
            );
            tracing::warn!(job_id = %assign.job_id, "{message}");
            self.refuse(&assign.job_id, &message);
            return;
        }
        // Counts the job as taken (job limit), so it comes after every refusal of our own.
        if let Err(refusal) = self.lifecycle.admit() {
            tracing::warn!(job_id = %assign.job_id, "{refusal}: not taking this job (the hub re-queues it when the link closes)");
            return;
        }
        if self.attempts.len() >= MAX_REMEMBERED_JOBS && !self.attempts.contains_key(&assign.job_id)
        {
            self.attempts.clear();
        }
        let attempt = self.attempts.entry(assign.job_id.clone()).or_insert(0);
        *attempt += 1;
        let attempt = *attempt;
        tracing::info!(job_id = %assign.job_id, attempt, "job assigned");

        if let Some(q) = self
            .queue
            .iter_mut()
            .find(|q| q.assign.job_id == assign.job_id)
        {
            // Still waiting: keep its place, take the new token.
            *q = Queued { assign, attempt };
            return;
        }
        let mut orphan = false;
        for run in self
            .runs
            .values_mut()
            .filter(|r| r.job_id == assign.job_id && !r.superseded)
        {
            tracing::warn!(job_id = %assign.job_id, "job re-assigned while a run of it is active: stopping the orphaned run first");
            run.superseded = true;
            run.control
                .silence_and_cancel("superseded by a new assignment of the same job");
            orphan = true;
        }
        if orphan {
            self.queue.push_front(Queued { assign, attempt });
        } else {
            self.queue.push_back(Queued { assign, attempt });
        }
        self.publish_counts();
    }

    /// Every job is over for the hub once the link drops: stop the running ones without
    /// another frame (their containers and work folders go as on any cancel) and forget
    /// the queued ones.
    fn on_link_lost(&mut self) {
        for run in self.runs.values_mut().filter(|r| !r.superseded) {
            tracing::warn!(job_id = %run.job_id, "hub link lost: the hub re-queues this job; stopping it and sending nothing more for it");
            run.superseded = true;
            run.control
                .silence_and_cancel("the hub link was lost; the hub re-queues the job");
        }
        for q in self.queue.drain(..) {
            tracing::warn!(job_id = %q.assign.job_id, "hub link lost: dropping this queued job (the hub re-queues it)");
        }
        self.publish_counts();
    }

    fn on_cancel(&mut self, job_id: &str) {
        if let Some(run) = self
            .runs
            .values()
            .find(|r| r.job_id == job_id && !r.superseded)
        {
            tracing::info!(job_id, "cancelling job at the hub's request");
            run.control.cancel("job cancelled by the hub");
            return;
        }
        if let Some(pos) = self.queue.iter().position(|q| q.assign.job_id == job_id) {
            self.queue.remove(pos);
            self.publish_counts();
            tracing::info!(job_id, "cancelled a queued job before it started");
            self.refuse(job_id, "job cancelled by the hub before it started");
            return;
        }
        tracing::warn!(
            job_id,
            "cancel for a job this worker does not have; ignored"
        );
    }

    fn on_update_done(&mut self, version: Option<String>) {
        self.update_running = false;
        let hello = worker_hello(&self.env.config, version);
        if *self.hello.borrow() != hello {
            tracing::info!("perry changed with the update: announcing the worker again");
            self.pending_hello = Some(hello);
        }
    }

    /// Hands a changed hello to the link once nothing runs or waits (the link reconnects
    /// to send it, and a reconnect ends every job for the hub).
    fn announce_pending_hello(&mut self) {
        let idle = self.runs.is_empty() && self.queue.is_empty() && !self.update_running;
        if idle && self.drain_deadline.is_none() {
            if let Some(hello) = self.pending_hello.take() {
                self.hello.send_replace(hello);
            }
        }
    }

    /// Answers a job that will not run with `error` + `complete{success:false}`. Queued at
    /// once (not from a task), so a later link loss finds these frames in the channel and
    /// drops them with the rest of the job's frames.
    fn refuse(&self, job_id: &str, message: &str) {
        let frames = JobFrames::new(job_id);
        match self.env.out.try_reserve_many(2) {
            Ok(mut permits) => {
                let error = frames.error(ErrorCode::InternalError, message, None);
                for frame in [error, frames.complete_failure(0.0, message)] {
                    if let Some(permit) = permits.next() {
                        permit.send(frame);
                    }
                }
            }
            Err(_) => tracing::warn!(job_id, "outgoing frames full: cannot report the refusal"),
        }
    }

    fn on_finished(&mut self, run_id: u64) {
        if let Some(run) = self.runs.remove(&run_id) {
            tracing::info!(job_id = %run.job_id, "job ended");
        }
        self.publish_counts();
    }

    /// Starts queued jobs while slots are free, and a deferred update once nothing runs.
    fn start_ready(&mut self) {
        if self.drain_deadline.is_some() {
            return;
        }
        if self.update_requested && self.runs.is_empty() && !self.update_running {
            self.update_requested = false;
            self.update_running = true;
            let env = self.env.clone();
            let done = self.update_done_tx.clone();
            tokio::spawn(async move {
                let (result, version) = update_perry(&env.config, env.runner.as_ref()).await;
                let _ = env.out.send(result).await;
                let _ = done.send(version);
            });
        }
        while self.runs.len() < self.slots && !self.update_requested && !self.update_running {
            let busy: Vec<&str> = self.runs.values().map(|r| r.job_id.as_str()).collect();
            let Some(pos) = self
                .queue
                .iter()
                .position(|q| !busy.contains(&q.assign.job_id.as_str()))
            else {
                break;
            };
            let queued = self.queue.remove(pos).expect("position is in range");
            self.spawn(queued);
        }
        self.publish_counts();
    }

    fn spawn(&mut self, queued: Queued) {
        let run_id = self.next_run_id;
        self.next_run_id += 1;
        let control = RunControl::default();
        self.runs.insert(
            run_id,
            RunEntry {
                job_id: queued.assign.job_id.clone(),
                control: control.clone(),
                superseded: false,
            },
        );
        let env = self.env.clone();
        let finished = self.finished_tx.clone();
        let job_id = queued.assign.job_id.clone();
        let task_control = control.clone();
        let task = tokio::spawn(async move {
            run_job(&env, &queued.assign, queued.attempt, task_control).await;
        });
        let out = self.env.out.clone();
        tokio::spawn(async move {
            if let Err(e) = task.await {
                // A bug in the job machinery must still free the slot and tell the hub.
                tracing::error!(%job_id, "job task crashed: {e}");
                let frames = JobFrames::new(job_id);
                let msg = "internal worker error";
                let gate = control.gate();
                if gate
                    .send(&out, frames.error(ErrorCode::InternalError, msg, None))
                    .await
                {
                    gate.send(&out, frames.complete_failure(0.0, msg)).await;
                }
            }
            let _ = finished.send(run_id);
        });
    }

    fn start_drain(&mut self) {
        let timeout = self.env.config.drain_timeout;
        tracing::info!(
            running = self.runs.len(),
            queued = self.queue.len(),
            "shutdown requested: taking no new jobs; waiting up to {} s for running jobs",
            timeout.as_secs()
        );
        for q in self.queue.drain(..) {
            tracing::warn!(job_id = %q.assign.job_id, "not starting queued job (shutting down)");
        }
        self.update_requested = false;
        self.drain_deadline = Some(Instant::now() + timeout);
        self.publish_counts();
    }

    fn cancel_for_shutdown(&mut self) {
        self.drain_cancelled = true;
        for run in self.runs.values() {
            tracing::warn!(job_id = %run.job_id, "drain timeout passed: cancelling job");
            run.control
                .cancel("worker shutting down: drain timeout passed");
        }
    }

    fn publish_counts(&self) {
        let m = &self.env.metrics;
        m.running.store(self.runs.len(), Ordering::Relaxed);
        m.queued.store(self.queue.len(), Ordering::Relaxed);
        let busy = !self.runs.is_empty()
            || !self.queue.is_empty()
            || self.update_requested
            || self.update_running;
        self.lifecycle.set_busy(busy);
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
