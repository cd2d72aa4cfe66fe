//! [`HubEventSink`]: one job's events on their way to the hub.
//!
//! Every message and log line is masked with the job's [`Masker`] before it becomes a frame.
//! Log lines are limited per job: long lines are cut, lines past `max_lines` (or arriving
//! while the bounded outgoing channel is full) are dropped and counted, and
//! [`HubEventSink::finish`] sends one "N lines dropped" line at the end. Memory stays
//! bounded: the outgoing channel is bounded and the small overflow queue for stage frames
//! is capped. A silenced sink (an orphaned run being stopped) sends nothing at all: every
//! frame passes its [`FrameGate`](super::gate::FrameGate), and once the gate is closed
//! none gets through.

use super::gate::FrameGate;
use super::metrics::WorkerMetrics;
use super::protocol::{JobFrames, WorkerFrame};
use crate::config::LogLimits;
use crate::error::JobError;
use crate::events::{EventSink, JobEvent, LogStream, Stage};
use crate::job::mask::Masker;
use crate::sandbox::lines::strip_controls;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Stage frames that did not fit into the full channel wait here (bounded).
const MAX_PENDING: usize = 256;
/// Extra characters masked beyond the cut point, so a secret straddling it is still found.
const MASK_MARGIN: usize = 64 * 1024;
/// Minimum time between two progress frames of the same stage (100 % always passes).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

struct SinkState {
    lines_sent: u64,
    lines_dropped: u64,
    pending: VecDeque<WorkerFrame>,
    current_stage: Option<(Stage, Instant)>,
    last_progress: Option<(Stage, u8, Instant)>,
}

pub(crate) struct HubEventSink {
    frames: JobFrames,
    masker: Masker,
    out: mpsc::Sender<WorkerFrame>,
    limits: LogLimits,
    metrics: Arc<WorkerMetrics>,
    gate: Arc<FrameGate>,
    state: Mutex<SinkState>,
}

impl HubEventSink {
    pub(crate) fn new(
        job_id: &str,
        masker: Masker,
        out: mpsc::Sender<WorkerFrame>,
        limits: LogLimits,
        metrics: Arc<WorkerMetrics>,
        gate: Arc<FrameGate>,
    ) -> Self {
        HubEventSink {
            frames: JobFrames::new(job_id),
            masker,
            out,
            limits,
            metrics,
            gate,
            state: Mutex::new(SinkState {
                lines_sent: 0,
                lines_dropped: 0,
                pending: VecDeque::new(),
                current_stage: None,
                last_progress: None,
            }),
        }
    }

    pub(crate) fn frames(&self) -> &JobFrames {
        &self.frames
    }

    /// `text` without control characters, then masked: what the hub and the log may show.
    pub(crate) fn mask(&self, text: &str) -> String {
        self.masker.mask(&strip_controls(text))
    }

    /// The stage the job is in (the last stage event), if any.
    pub(crate) fn current_stage(&self) -> Option<Stage> {
        self.state.lock().unwrap().current_stage.map(|(s, _)| s)
    }

    /// Stops every further frame of this job (an orphaned run that is being replaced).
    #[cfg(test)]
    pub(crate) fn silence(&self) {
        self.gate.close();
    }

    pub(crate) fn is_silenced(&self) -> bool {
        self.gate.is_closed()
    }

    /// Sends `error{code,message,stage}` then `complete{success:false, error}` (the
    /// message masked in both), waiting for channel space.
    pub(crate) async fn send_failure(&self, err: &JobError, duration_secs: f64) {
        let message = self.mask(&err.message);
        self.send_reliably(self.frames.error(err.code, message.clone(), err.stage))
            .await;
        self.send_reliably(self.frames.complete_failure(duration_secs, message))
            .await;
    }

    /// Sends a frame built by the job runner, waiting for channel space. Earlier stage frames
    /// still waiting in the overflow queue go first, so order is kept.
    pub(crate) async fn send_reliably(&self, frame: WorkerFrame) {
        if self.is_silenced() {
            return;
        }
        loop {
            let next = self.state.lock().unwrap().pending.pop_front();
            match next {
                Some(f) => {
                    if !self.gate.send(&self.out, f).await {
                        return;
                    }
                }
                None => break,
            }
        }
        self.gate.send(&self.out, frame).await;
    }

    /// Ends the job's event stream: records the last stage's duration and reports how many
    /// log lines were dropped, if any.
    pub(crate) async fn finish(&self) {
        let (dropped, sent, stage) = {
            let mut st = self.state.lock().unwrap();
            let stage = st.current_stage.map_or(Stage::Complete, |(s, _)| s);
            if let Some((stage, since)) = st.current_stage.take() {
                self.metrics.record_stage(stage, since.elapsed());
            }
            (st.lines_dropped, st.lines_sent, stage)
        };
        if dropped > 0 {
            self.metrics
                .log_lines_dropped
                .fetch_add(dropped, Ordering::Relaxed);
            let line = format!(
                "{dropped} log lines dropped ({sent} sent; the limit is {} lines per job)",
                self.limits.max_lines
            );
            self.send_reliably(self.frames.log(stage, LogStream::Stderr, line))
                .await;
        }
    }

    /// Lines forwarded and dropped so far.
    #[cfg(test)]
    pub(crate) fn line_counts(&self) -> (u64, u64) {
        let st = self.state.lock().unwrap();
        (st.lines_sent, st.lines_dropped)
    }

    /// Non-blocking send of a frame that should not be lost: queued when the channel is full.
    fn push_important(&self, st: &mut SinkState, frame: WorkerFrame) {
        self.flush_pending(st);
        if !st.pending.is_empty() {
            if st.pending.len() < MAX_PENDING {
                st.pending.push_back(frame);
            }
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(frame)) = self.gate.try_send(&self.out, frame) {
            st.pending.push_back(frame);
        }
    }

    fn flush_pending(&self, st: &mut SinkState) {
        while let Some(frame) = st.pending.pop_front() {
            match self.gate.try_send(&self.out, frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(frame)) => {
                    st.pending.push_front(frame);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    st.pending.clear();
                    return;
                }
            }
        }
    }

    /// Masks then cuts a line to the configured length (masking first, so a cut can never
    /// expose part of a secret).
    fn limit_line(&self, line: &str) -> String {
        let max = self.limits.max_line_len;
        let head: String = if line.len() > max + MASK_MARGIN {
            line.chars().take(max + MASK_MARGIN).collect()
        } else {
            line.to_string()
        };
        let masked = self.mask(&head);
        if masked.chars().count() <= max {
            return masked;
        }
        let mut cut: String = masked.chars().take(max).collect();
        cut.push_str(" … [line cut]");
        cut
    }
}

impl EventSink for HubEventSink {
    fn current_stage(&self) -> Option<Stage> {
        HubEventSink::current_stage(self)
    }

    fn emit(&self, event: JobEvent) {
        if self.is_silenced() {
            return;
        }
        let mut st = self.state.lock().unwrap();
        match event {
            JobEvent::Stage { stage, message } => {
                let now = Instant::now();
                if let Some((prev, since)) = st.current_stage.replace((stage, now)) {
                    self.metrics.record_stage(prev, now - since);
                }
                st.last_progress = Some((stage, 0, now - PROGRESS_INTERVAL));
                let frame = self.frames.stage(stage, self.mask(&message));
                self.push_important(&mut st, frame);
            }
            JobEvent::Log {
                stage,
                stream,
                line,
            } => {
                if st.lines_sent >= self.limits.max_lines || !st.pending.is_empty() {
                    st.lines_dropped += 1;
                    return;
                }
                let frame = self.frames.log(stage, stream, self.limit_line(&line));
                match self.gate.try_send(&self.out, frame) {
                    Ok(()) => st.lines_sent += 1,
                    Err(_) => st.lines_dropped += 1,
                }
            }
            JobEvent::Progress {
                stage,
                percent,
                message,
            } => {
                // Events may come from a job process, not only `EventSink::progress`.
                let percent = percent.min(100);
                let now = Instant::now();
                if let Some((last_stage, last_pct, at)) = st.last_progress {
                    let unchanged = last_stage == stage && last_pct == percent && message.is_none();
                    let too_soon = last_stage == stage && now - at < PROGRESS_INTERVAL;
                    if unchanged || (too_soon && percent < 100) {
                        return;
                    }
                }
                st.last_progress = Some((stage, percent, now));
                let message = message.map(|m| self.mask(&m));
                let _ = self
                    .gate
                    .try_send(&self.out, self.frames.progress(stage, percent, message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::credentials::Secret;

    fn sink(cap: usize, limits: LogLimits) -> (HubEventSink, mpsc::Receiver<WorkerFrame>) {
        let (tx, rx) = mpsc::channel(cap);
        let masker = Masker::new(&[Secret::new("hunter2-secret")]);
        let metrics = Arc::new(WorkerMetrics::new(1));
        let s = HubEventSink::new("j", masker, tx, limits, metrics, Arc::default());
        (s, rx)
    }

    fn drain(rx: &mut mpsc::Receiver<WorkerFrame>) -> Vec<WorkerFrame> {
        let mut v = Vec::new();
        while let Ok(f) = rx.try_recv() {
            v.push(f);
        }
        v
    }

    #[tokio::test]
    async fn control_characters_never_reach_the_hub() {
        let (s, mut rx) = sink(100, LogLimits::default());
        s.stage(Stage::Compiling, "compiling\x1b]0;title\x07");
        s.info(Stage::Compiling, "ok\rfake \x1b[2Jhunter2-\x08secret\tend");
        s.progress(Stage::Compiling, 100, Some("done\x1b[H"));
        let err = JobError::new(
            crate::error::ErrorCode::CompileFailed,
            Some(Stage::Compiling),
            "failed\r[signing] Signed",
        );
        s.send_failure(&err, 1.0).await;
        let text: String = drain(&mut rx).iter().map(WorkerFrame::to_json).collect();
        for bad in ["\\u001b", "\\u0007", "\\r", "\\b"] {
            assert!(!text.contains(bad), "{bad} in {text}");
        }
        assert!(text.contains("okfake [2J[redacted]\\tend"), "{text}");
        assert!(text.contains("failed[signing] Signed"), "{text}");
    }

    #[tokio::test]
    async fn caps_lines_masks_and_reports_drops() {
        let (s, mut rx) = sink(
            10_000,
            LogLimits {
                max_lines: 3,
                max_line_len: 20,
            },
        );
        s.info(Stage::Compiling, "token hunter2-secret here");
        for i in 0..10 {
            s.info(Stage::Compiling, &format!("line {i}"));
        }
        s.finish().await;
        let frames = drain(&mut rx);
        let lines: Vec<String> = frames
            .iter()
            .filter_map(|f| match f {
                WorkerFrame::Log { line, .. } => Some(line.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].starts_with("token [redacted] her"), "{}", lines[0]);
        assert!(lines[0].ends_with("[line cut]"));
        assert!(lines[3].starts_with("8 log lines dropped"), "{}", lines[3]);
    }

    #[tokio::test]
    async fn full_channel_drops_logs_but_keeps_stage_frames() {
        let (s, mut rx) = sink(
            2,
            LogLimits {
                max_lines: 1000,
                max_line_len: 100,
            },
        );
        for i in 0..5 {
            s.info(Stage::Compiling, &format!("l{i}"));
        }
        s.stage(Stage::Packaging, "packaging");
        assert_eq!(drain(&mut rx).len(), 2);
        assert_eq!(s.line_counts(), (2, 3));
        // The stage frame waited in the overflow queue and goes out before `complete`.
        s.send_reliably(s.frames().complete_failure(0.0, "x")).await;
        let rest = drain(&mut rx);
        assert!(matches!(
            rest[0],
            WorkerFrame::Stage {
                stage: Stage::Packaging,
                ..
            }
        ));
        assert!(matches!(
            rest[1],
            WorkerFrame::Complete { success: false, .. }
        ));
    }

    #[tokio::test]
    async fn a_sender_waiting_for_space_sends_nothing_once_silenced() {
        let (s, mut rx) = sink(1, LogLimits::default());
        let s = Arc::new(s);
        s.send_reliably(s.frames().stage(Stage::Compiling, "fills the channel"))
            .await;
        let waiting = {
            let s = s.clone();
            tokio::spawn(async move {
                s.send_failure(&JobError::internal(None, "late"), 1.0).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the sender waits for space");
        s.silence();
        assert_eq!(drain(&mut rx).len(), 1, "only the frame sent before");
        waiting.await.unwrap();
        assert!(
            drain(&mut rx).is_empty(),
            "nothing got through the closed gate"
        );
    }

    #[tokio::test]
    async fn failure_sends_error_then_complete_with_the_masked_message() {
        let (s, mut rx) = sink(10, LogLimits::default());
        let err = JobError::new(
            crate::error::ErrorCode::CompileFailed,
            Some(Stage::Compiling),
            "it printed hunter2-secret",
        );
        s.send_failure(&err, 2.5).await;
        let frames = drain(&mut rx);
        let json: Vec<serde_json::Value> = frames
            .iter()
            .map(|f| serde_json::from_str(&f.to_json()).unwrap())
            .collect();
        assert_eq!(json.len(), 2);
        assert_eq!(json[0]["type"], "error");
        assert_eq!(json[0]["message"], "it printed [redacted]");
        assert_eq!(json[1]["type"], "complete");
        assert_eq!(json[1]["success"], false);
        assert_eq!(json[1]["error"], "it printed [redacted]");
    }

    #[tokio::test]
    async fn silenced_sink_sends_nothing() {
        let (s, mut rx) = sink(10, LogLimits::default());
        s.silence();
        s.stage(Stage::Compiling, "x");
        s.info(Stage::Compiling, "y");
        s.send_reliably(s.frames().complete_failure(0.0, "x")).await;
        assert!(drain(&mut rx).is_empty());
    }
}
