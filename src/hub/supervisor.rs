//! Turns the [`Lifecycle`] into actions: closes the hub link when a pause has let every job
//! end and opens it on resume; after `PERRY_IDLE_TIMEOUT` without work closes the link and
//! runs the idle action (exit, or reconnect and start the idle timer again when the action
//! failed); once the job limit is reached and the last job ended, shuts the worker down.
//! "Shut down" is the worker's own drain (`shutdown` token): the process then exits 0.

use super::idle_action::IdleActor;
use super::lifecycle::{Lifecycle, Phase, Step};
use super::link_switch::LinkSwitch;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the link may take to send its last frames and close.
const RELEASE_LIMIT: Duration = Duration::from_secs(40);

pub(crate) struct Supervisor {
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) switch: LinkSwitch,
    pub(crate) idle_actor: IdleActor,
    pub(crate) idle_timeout: Option<Duration>,
    /// Cancelled by the supervisor to end the worker; watched to stop supervising.
    pub(crate) shutdown: CancellationToken,
}

impl Supervisor {
    /// Runs until the worker shuts down (for any reason).
    pub(crate) async fn run(mut self) {
        loop {
            match self.lifecycle.next_step() {
                Step::Wait(deadline) => {
                    let at_deadline = async {
                        match deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = self.lifecycle.changed() => {}
                        _ = at_deadline => {}
                        _ = self.shutdown.cancelled() => {
                            self.lifecycle.shutting_down();
                            return;
                        }
                    }
                }
                Step::Disconnect => {
                    tracing::info!(
                        "paused and every job ended: disconnecting from the hub until resumed"
                    );
                    self.release().await;
                }
                Step::Reconnect => {
                    tracing::info!("resumed: connecting to the hub again");
                    self.switch.reconnect();
                }
                Step::Finish => {
                    tracing::info!("job limit reached and every job ended: exiting");
                    self.shutdown.cancel();
                    return;
                }
                Step::RunIdleAction => {
                    if self.idle_action().await {
                        self.shutdown.cancel();
                        return;
                    }
                }
            }
        }
    }

    /// Closes the link, runs the idle action; true when the worker should exit.
    async fn idle_action(&mut self) -> bool {
        tracing::info!(
            action = self.idle_actor.describe(),
            "idle for {} s: closing the hub link",
            self.idle_timeout.unwrap_or_default().as_secs()
        );
        self.release().await;
        match self.idle_actor.perform().await {
            Ok(()) => {
                tracing::info!(
                    action = self.idle_actor.describe(),
                    "idle action done: exiting"
                );
                true
            }
            Err(e) => {
                tracing::error!(
                    action = self.idle_actor.describe(),
                    "idle action failed: {e:#}; reconnecting to the hub and waiting for work again"
                );
                if self.lifecycle.idle_action_failed() == Phase::Serving {
                    self.switch.reconnect();
                }
                false
            }
        }
    }

    async fn release(&mut self) {
        if !self.switch.release(RELEASE_LIMIT).await {
            tracing::warn!(
                "the hub link did not close within {} s; going on",
                RELEASE_LIMIT.as_secs()
            );
        }
    }
}
