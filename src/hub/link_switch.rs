//! Lets the supervisor close the hub link on purpose (pause, idle action) and open it again,
//! and know when the link has actually closed.
//!
//! [`link_switch`] gives two ends: the [`LinkSwitch`] the supervisor holds and the
//! [`LinkHold`] the link task watches. A released link sends the frames still waiting,
//! closes with a WebSocket Close frame, and stays parked until it is wanted again.

use std::time::Duration;
use tokio::sync::watch;

/// The supervisor's end.
pub(crate) struct LinkSwitch {
    wanted: watch::Sender<bool>,
    parked: watch::Receiver<bool>,
}

/// The link task's end.
pub(crate) struct LinkHold {
    wanted: watch::Receiver<bool>,
    parked: watch::Sender<bool>,
}

/// A connected pair; the link starts wanted.
pub(crate) fn link_switch() -> (LinkSwitch, LinkHold) {
    let (wanted_tx, wanted_rx) = watch::channel(true);
    let (parked_tx, parked_rx) = watch::channel(false);
    (
        LinkSwitch {
            wanted: wanted_tx,
            parked: parked_rx,
        },
        LinkHold {
            wanted: wanted_rx,
            parked: parked_tx,
        },
    )
}

impl LinkSwitch {
    /// Asks the link to close and waits until it is parked (or `limit` passed, or the link
    /// task is gone). Returns whether the link reported parked.
    pub(crate) async fn release(&mut self, limit: Duration) -> bool {
        self.wanted.send_replace(false);
        let parked = tokio::time::timeout(limit, self.parked.wait_for(|parked| *parked)).await;
        matches!(parked, Ok(Ok(_)))
    }

    /// Asks the link to connect again.
    pub(crate) fn reconnect(&self) {
        self.wanted.send_replace(true);
    }
}

impl LinkHold {
    /// Whether the link should be up.
    pub(crate) fn wanted(&self) -> bool {
        *self.wanted.borrow()
    }

    /// Resolves once the link is no longer wanted (at once if it is not). Cancel-safe.
    pub(crate) async fn released(&mut self) {
        if self.wanted.wait_for(|wanted| !*wanted).await.is_err() {
            // The switch is gone: nobody will release the link any more.
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once the link is wanted again. Cancel-safe.
    pub(crate) async fn wanted_again(&mut self) {
        if self.wanted.wait_for(|wanted| *wanted).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Tells the switch whether the link is parked (closed on purpose).
    pub(crate) fn set_parked(&self, parked: bool) {
        self.parked.send_replace(parked);
    }
}
