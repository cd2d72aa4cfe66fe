//! [`FrameGate`]: the one door a job's frames pass on their way to the outgoing channel,
//! so that stopping a job's reporting (an orphan, a job whose hub link was lost) is final
//! the moment it is decided, even for a sender already waiting for channel space.

use super::protocol::WorkerFrame;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// The one way a job's frames enter the outgoing channel. Closing it is final and
/// synchronous: once [`FrameGate::close`] returns, no frame of the job can enter the
/// channel any more, not even one whose sender was already waiting for space.
#[derive(Debug, Default)]
pub(crate) struct FrameGate {
    closed: Mutex<bool>,
}

impl FrameGate {
    pub(crate) fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.lock().unwrap()
    }

    /// Queues `frame` unless the gate is closed (then it is dropped: `Ok`).
    pub(crate) fn try_send(
        &self,
        out: &mpsc::Sender<WorkerFrame>,
        frame: WorkerFrame,
    ) -> Result<(), mpsc::error::TrySendError<WorkerFrame>> {
        let closed = self.closed.lock().unwrap();
        if *closed {
            return Ok(());
        }
        out.try_send(frame)
    }

    /// Waits for channel space, then queues `frame` unless the gate closed meanwhile.
    /// Returns false when the frame was not queued.
    pub(crate) async fn send(&self, out: &mpsc::Sender<WorkerFrame>, frame: WorkerFrame) -> bool {
        if self.is_closed() {
            return false;
        }
        let Ok(permit) = out.reserve().await else {
            return false;
        };
        let closed = self.closed.lock().unwrap();
        if *closed {
            return false;
        }
        permit.send(frame);
        true
    }
}
