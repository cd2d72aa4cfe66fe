//! The worker's lifecycle as a fleet sees it: serving, pausing, paused, running its idle
//! action, finishing after its job limit, shutting down.
//!
//! One small state shared by the scheduler (which asks [`Lifecycle::admit`] before taking a
//! job and reports whether it is busy), the controls (`SIGUSR1`/`SIGUSR2`, `POST /pause`,
//! `POST /resume`), the status server (readiness, idle seconds) and the
//! [`supervisor`](super::supervisor), which turns it into actions. Admission and the idle
//! decision take the same lock, so a job is either admitted before the worker decides it is
//! idle, or refused (and left to the hub) after.

use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where the worker is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connected (or connecting) and taking jobs.
    Serving,
    /// Pause requested: running and queued jobs finish, no new job is taken.
    Pausing,
    /// Disconnected from the hub until resumed.
    Paused,
    /// Idle too long: the link is closed and the idle action runs.
    IdleAction,
    /// The job limit is reached and every job ended: exiting.
    Finishing,
    /// Stop requested (SIGTERM, Ctrl-C, or the end of an idle action): draining.
    ShuttingDown,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Serving => "serving",
            Phase::Pausing => "pausing",
            Phase::Paused => "paused",
            Phase::IdleAction => "idle_exiting",
            Phase::Finishing => "job_limit_reached",
            Phase::ShuttingDown => "draining",
        }
    }
}

/// Why a job assignment is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("the worker is paused")]
    Paused,
    #[error("the worker is idle-exiting")]
    IdleExiting,
    #[error("the worker took its last job (job limit reached)")]
    JobLimit,
    #[error("the worker is shutting down")]
    ShuttingDown,
}

/// What the supervisor should do next (decided under the lock, see [`Lifecycle::next_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing now; look again when woken or at the deadline (the idle timeout).
    Wait(Option<Instant>),
    /// Every job ended after a pause request: close the link.
    Disconnect,
    /// Resumed: connect again.
    Reconnect,
    /// Idle for the timeout: close the link and run the idle action.
    RunIdleAction,
    /// Job limit reached and nothing runs: shut down.
    Finish,
}

struct State {
    phase: Phase,
    pause_requested: bool,
    busy: bool,
    idle_since: Instant,
    admitted: u64,
}

/// A point-in-time view for `/healthz` and `/metrics`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub(crate) phase: Phase,
    pub(crate) paused: bool,
    pub(crate) idle: Duration,
    pub(crate) jobs_taken: u64,
    pub(crate) max_jobs: Option<u64>,
    /// The worker takes new jobs (the link state is not included).
    pub(crate) accepting: bool,
}

pub(crate) struct Lifecycle {
    state: Mutex<State>,
    wake: Notify,
    idle_timeout: Option<Duration>,
    max_jobs: Option<u64>,
}

impl Lifecycle {
    pub(crate) fn new(idle_timeout: Option<Duration>, max_jobs: Option<u64>) -> Lifecycle {
        Lifecycle {
            state: Mutex::new(State {
                phase: Phase::Serving,
                pause_requested: false,
                busy: false,
                idle_since: Instant::now(),
                admitted: 0,
            }),
            wake: Notify::new(),
            idle_timeout,
            max_jobs,
        }
    }

    fn limit_reached(&self, s: &State) -> bool {
        self.max_jobs.is_some_and(|max| s.admitted >= max)
    }

    /// Takes a job (the worker becomes busy) or says why not.
    pub(crate) fn admit(&self) -> Result<(), Refusal> {
        let mut s = self.state.lock().unwrap();
        let refusal = match s.phase {
            Phase::IdleAction => Some(Refusal::IdleExiting),
            Phase::Finishing => Some(Refusal::JobLimit),
            Phase::ShuttingDown => Some(Refusal::ShuttingDown),
            _ if s.pause_requested || s.phase != Phase::Serving => Some(Refusal::Paused),
            _ if self.limit_reached(&s) => Some(Refusal::JobLimit),
            _ => None,
        };
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        s.admitted += 1;
        s.busy = true;
        drop(s);
        self.wake.notify_one();
        Ok(())
    }

    /// The scheduler says whether any job runs or waits (or an update runs).
    pub(crate) fn set_busy(&self, busy: bool) {
        let mut s = self.state.lock().unwrap();
        if s.busy == busy {
            return;
        }
        s.busy = busy;
        if !busy {
            s.idle_since = Instant::now();
        }
        drop(s);
        self.wake.notify_one();
    }

    /// Asks for a pause; returns the phase after the request.
    pub(crate) fn request_pause(&self) -> Phase {
        self.set_pause(true)
    }

    /// Cancels a pause; returns the phase after the request.
    pub(crate) fn request_resume(&self) -> Phase {
        self.set_pause(false)
    }

    fn set_pause(&self, pause: bool) -> Phase {
        let mut s = self.state.lock().unwrap();
        s.pause_requested = pause;
        match s.phase {
            Phase::Serving if pause => s.phase = Phase::Pausing,
            Phase::Pausing if !pause => s.phase = Phase::Serving,
            _ => {}
        }
        let phase = s.phase;
        drop(s);
        self.wake.notify_one();
        phase
    }

    /// Marks the worker as shutting down (no more admissions).
    pub(crate) fn shutting_down(&self) {
        self.state.lock().unwrap().phase = Phase::ShuttingDown;
        self.wake.notify_one();
    }

    /// Back to serving (or paused, if asked meanwhile) after a failed idle action; the idle
    /// timer starts again. Returns the new phase.
    pub(crate) fn idle_action_failed(&self) -> Phase {
        let mut s = self.state.lock().unwrap();
        if s.phase == Phase::IdleAction {
            s.phase = if s.pause_requested {
                Phase::Paused
            } else {
                Phase::Serving
            };
        }
        s.idle_since = Instant::now();
        let phase = s.phase;
        drop(s);
        self.wake.notify_one();
        phase
    }

    /// Waits until something changed (admission, busy, pause, resume).
    pub(crate) async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Decides the next step and moves the phase accordingly.
    pub(crate) fn next_step(&self) -> Step {
        let mut s = self.state.lock().unwrap();
        let now = Instant::now();
        let phase = s.phase;
        match phase {
            Phase::Serving | Phase::Pausing | Phase::Paused
                if self.limit_reached(&s) && !s.busy =>
            {
                s.phase = Phase::Finishing;
                Step::Finish
            }
            Phase::Serving if s.pause_requested => {
                s.phase = Phase::Pausing;
                drop(s);
                self.next_step()
            }
            Phase::Serving => match self.idle_timeout {
                Some(timeout) if !s.busy => {
                    let due = s.idle_since + timeout;
                    if now >= due {
                        s.phase = Phase::IdleAction;
                        Step::RunIdleAction
                    } else {
                        Step::Wait(Some(due))
                    }
                }
                _ => Step::Wait(None),
            },
            Phase::Pausing if !s.pause_requested => {
                s.phase = Phase::Serving;
                drop(s);
                self.next_step()
            }
            Phase::Pausing if !s.busy => {
                s.phase = Phase::Paused;
                Step::Disconnect
            }
            Phase::Paused if !s.pause_requested => {
                s.phase = Phase::Serving;
                s.idle_since = now;
                Step::Reconnect
            }
            _ => Step::Wait(None),
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let s = self.state.lock().unwrap();
        Snapshot {
            phase: s.phase,
            paused: s.pause_requested,
            idle: if s.busy {
                Duration::ZERO
            } else {
                s.idle_since.elapsed()
            },
            jobs_taken: s.admitted,
            max_jobs: self.max_jobs,
            accepting: s.phase == Phase::Serving && !s.pause_requested && !self.limit_reached(&s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_only_without_work() {
        let l = Lifecycle::new(Some(Duration::from_secs(10)), None);
        assert!(matches!(l.next_step(), Step::Wait(Some(_))));
        l.admit().unwrap();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(l.next_step(), Step::Wait(None), "busy: never idle");
        l.set_busy(false);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(matches!(l.next_step(), Step::Wait(Some(_))));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(l.next_step(), Step::RunIdleAction);
        assert_eq!(l.admit(), Err(Refusal::IdleExiting));
        l.idle_action_failed();
        assert_eq!(l.snapshot().phase, Phase::Serving);
        assert!(
            matches!(l.next_step(), Step::Wait(Some(_))),
            "timer restarted"
        );
    }

    #[test]
    fn pause_waits_for_running_jobs_then_disconnects_and_resume_reconnects() {
        let l = Lifecycle::new(None, None);
        l.admit().unwrap();
        assert_eq!(l.request_pause(), Phase::Pausing);
        assert_eq!(l.admit(), Err(Refusal::Paused));
        assert_eq!(l.next_step(), Step::Wait(None), "a job still runs");
        l.set_busy(false);
        assert_eq!(l.next_step(), Step::Disconnect);
        assert_eq!(l.snapshot().phase, Phase::Paused);
        assert!(!l.snapshot().accepting);
        l.request_resume();
        assert_eq!(l.next_step(), Step::Reconnect);
        assert!(l.snapshot().accepting);
        l.admit().unwrap();
    }

    #[test]
    fn a_resume_before_the_jobs_ended_cancels_the_pause() {
        let l = Lifecycle::new(None, None);
        l.admit().unwrap();
        l.request_pause();
        l.request_resume();
        assert_eq!(l.next_step(), Step::Wait(None));
        assert_eq!(l.snapshot().phase, Phase::Serving);
    }

    #[test]
    fn the_job_limit_refuses_more_and_finishes_when_the_last_job_ended() {
        let l = Lifecycle::new(None, Some(1));
        l.admit().unwrap();
        assert_eq!(l.admit(), Err(Refusal::JobLimit));
        assert_eq!(l.next_step(), Step::Wait(None));
        l.set_busy(false);
        assert_eq!(l.next_step(), Step::Finish);
        assert_eq!(l.snapshot().phase, Phase::Finishing);
        assert_eq!(l.snapshot().jobs_taken, 1);
    }
}
