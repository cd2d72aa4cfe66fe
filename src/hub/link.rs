//! The WebSocket link to the hub: connect, say hello, keep alive, reconnect.
//!
//! One task owns the socket. It sends `worker_hello` first on every connection, then
//! forwards frames from the bounded outgoing channel and hands parsed hub frames to the
//! scheduler. It sends a WebSocket Ping every `ping_interval` whether idle or busy, answers
//! Pings, and declares the link dead after `silence_timeout` without any frame. Lost links
//! are retried with [`Backoff`] (reset after a healthy minute); `AUTH_FAILED` is logged once
//! per attempt in plain words and retried no sooner than `auth_failed_backoff`.
//! The link ends when the outgoing channel closes (the scheduler is done: close cleanly
//! after the last frame) or when `stop` is cancelled.
//!
//! A lost connection ends every job for the hub (hub-protocol.md §6): before reconnecting,
//! the link tells the scheduler ([`LinkLost`]), waits until it has closed those jobs'
//! frame gates, then drops every job frame still waiting, so nothing stale follows the
//! next `worker_hello`.
//! after the last frame) or when `stop` is cancelled. Released through its [`LinkHold`]
//! (pause, idle action), it sends what is waiting, closes cleanly and stays parked until
//! wanted again.

use super::backoff::Backoff;
use super::link_switch::LinkHold;
use super::metrics::{LinkState, WorkerMetrics};
use super::protocol::{parse_hub_frame, HubFrame, WorkerFrame};
use crate::config::LinkTimings;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Largest message read off the socket at all (bigger ones end the connection); frames
/// between `max_assign_frame` and this are answered with a refusal ([`super::oversize`]).
const MAX_INCOMING_FRAME: usize = 32 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sent to the scheduler, in order with the hub frames, when the connection is lost; the
/// scheduler acknowledges once no frame of the jobs it stopped can be queued any more.
#[derive(Clone, Debug, Default)]
pub(crate) struct LinkLost(Arc<tokio::sync::Notify>);

impl LinkLost {
    pub(crate) fn acknowledge(&self) {
        self.0.notify_one();
    }

    async fn acknowledged(&self) {
        self.0.notified().await;
    }
}

/// Everything the link task needs.
pub(crate) struct LinkSetup {
    pub(crate) url: String,
    /// The `worker_hello` to send first; when it changes, the link reconnects to send it.
    pub(crate) hello: tokio::sync::watch::Receiver<WorkerFrame>,
    pub(crate) timings: LinkTimings,
    /// Frames longer than this are refused unparsed (`PERRY_MAX_ASSIGN_FRAME`).
    pub(crate) max_assign_frame: usize,
    pub(crate) metrics: Arc<WorkerMetrics>,
    /// Parsed hub frames for the scheduler.
    pub(crate) incoming: mpsc::Sender<HubFrame>,
    /// Frames to send; the link ends cleanly once every sender is gone and it is empty.
    pub(crate) outgoing: mpsc::Receiver<WorkerFrame>,
    /// Hard stop (used when a clean close takes too long).
    pub(crate) stop: CancellationToken,
    /// Closes the link on purpose and opens it again (pause, idle action).
    pub(crate) hold: LinkHold,
}

/// Why one connection ended.
enum ConnectionEnd {
    /// Nothing more to send: closed cleanly.
    Finished,
    Stopped,
    /// Closed cleanly because the link was released.
    Released,
    AuthFailed(String),
    Lost(String),
}

/// Runs the link until the outgoing channel is closed and drained, or `stop` fires.
pub(crate) async fn run_link(mut setup: LinkSetup) {
    let timings = setup.timings;
    let mut backoff = Backoff::new(timings.backoff_initial, timings.backoff_max);
    // A frame taken from the channel whose send failed: sent first on the next connection.
    let mut carry: Option<WorkerFrame> = None;
    let mut first_attempt = true;
    loop {
        if setup.stop.is_cancelled() {
            break;
        }
        if !setup.hold.wanted() {
            if !park(&mut setup, &mut carry).await {
                break;
            }
            backoff.reset();
        }
        if !first_attempt {
            setup.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first_attempt = false;
        setup.metrics.set_link_state(LinkState::Connecting);
        let read_limit = MAX_INCOMING_FRAME.max(setup.max_assign_frame.saturating_mul(2));
        let ws_config = WebSocketConfig::default()
            .max_frame_size(Some(read_limit))
            .max_message_size(Some(read_limit));
        let connecting = tokio_tungstenite::connect_async_with_config(
            setup.url.as_str(),
            Some(ws_config),
            false,
        );
        let delay = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok((ws, _response))) => {
                tracing::info!(url = %setup.url, "connected to the hub");
                setup.metrics.set_link_state(LinkState::Connected);
                let connected_at = Instant::now();
                match serve_connection(ws, &mut setup, &mut carry).await {
                    ConnectionEnd::Finished | ConnectionEnd::Stopped => break,
                    ConnectionEnd::Released => continue,
                    ConnectionEnd::AuthFailed(message) => {
                        setup.metrics.set_link_state(LinkState::AuthFailed);
                        let wait = backoff.next_delay().max(timings.auth_failed_backoff);
                        tracing::error!(
                            "the hub rejected this worker's secret (AUTH_FAILED: {message}); check \
                             PERRY_HUB_WORKER_SECRET. Retrying in {} s",
                            wait.as_secs()
                        );
                        wait
                    }
                    ConnectionEnd::Lost(reason) => {
                        end_jobs_of_lost_link(&mut setup, &mut carry).await;
                        if connected_at.elapsed() >= timings.healthy_after {
                            backoff.reset();
                        }
                        let wait = backoff.next_delay();
                        tracing::warn!(
                            "hub link lost ({reason}); reconnecting in {:.1} s",
                            wait.as_secs_f64()
                        );
                        wait
                    }
                }
            }
            Ok(Err(e)) => {
                let wait = backoff.next_delay();
                tracing::warn!(url = %setup.url, "cannot connect to the hub ({e}); retrying in {:.1} s", wait.as_secs_f64());
                wait
            }
            Err(_) => {
                let wait = backoff.next_delay();
                tracing::warn!(url = %setup.url, "connecting to the hub timed out; retrying in {:.1} s", wait.as_secs_f64());
                wait
            }
        };
        if setup.metrics.link_state() != LinkState::AuthFailed {
            setup.metrics.set_link_state(LinkState::WaitingToReconnect);
        }
        if !wait_before_reconnect(delay, &mut setup, &mut carry).await {
            break;
        }
    }
    setup.metrics.set_link_state(LinkState::Closed);
}

/// Has the scheduler stop every job (silently) and drops their frames still waiting here;
/// a frame of no job (`update_result`) is kept for the next connection.
async fn end_jobs_of_lost_link(setup: &mut LinkSetup, carry: &mut Option<WorkerFrame>) {
    let lost = LinkLost::default();
    if setup
        .incoming
        .send(HubFrame::LinkLost(lost.clone()))
        .await
        .is_ok()
    {
        // The scheduler answers at once; it may only be gone (then nothing runs any more).
        tokio::select! {
            _ = lost.acknowledged() => {}
            _ = setup.stop.cancelled() => {}
        }
    }
    let carried = carry.take();
    let mut dropped = usize::from(carried.as_ref().is_some_and(|f| f.job_id().is_some()));
    let mut kept = carried.filter(|f| f.job_id().is_none());
    while let Ok(frame) = setup.outgoing.try_recv() {
        if frame.job_id().is_some() {
            dropped += 1;
        } else if kept.is_none() {
            kept = Some(frame);
        } else {
            tracing::warn!("dropping an extra pending update_result after the link loss");
        }
    }
    *carry = kept;
    if dropped > 0 {
        tracing::info!("dropped {dropped} pending job frame(s) of the lost link");
    }
}

/// Stays disconnected until the link is wanted again; returns false when the link should
/// end instead (stopped, or the scheduler is done). Jobs end before the link is released,
/// so frames produced meanwhile are stale: they are dropped, never sent after a reconnect.
async fn park(setup: &mut LinkSetup, carry: &mut Option<WorkerFrame>) -> bool {
    tracing::info!("hub link closed on purpose; staying disconnected");
    setup.metrics.set_link_state(LinkState::Closed);
    setup.hold.set_parked(true);
    let mut dropped = usize::from(carry.take().is_some());
    let reconnect = loop {
        tokio::select! {
            _ = setup.hold.wanted_again() => break true,
            _ = setup.stop.cancelled() => break false,
            frame = setup.outgoing.recv() => match frame {
                None => break false,
                Some(_) => dropped += 1,
            },
        }
    };
    if dropped > 0 {
        tracing::warn!("dropped {dropped} frame(s) produced while disconnected on purpose");
    }
    setup.hold.set_parked(false);
    reconnect
}

/// Sleeps `delay`; returns false when the link should end instead (stopped, or the
/// scheduler is done and nothing is left to send).
async fn wait_before_reconnect(
    delay: Duration,
    setup: &mut LinkSetup,
    carry: &mut Option<WorkerFrame>,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            _ = setup.hold.released() => return true,
            _ = setup.stop.cancelled() => return false,
            frame = setup.outgoing.recv(), if carry.is_none() => match frame {
                None => return false,
                Some(frame) => *carry = Some(frame),
            },
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve_connection(
    ws: Socket,
    setup: &mut LinkSetup,
    carry: &mut Option<WorkerFrame>,
) -> ConnectionEnd {
    let (mut write, mut read) = ws.split();
    let hello = setup.hello.borrow_and_update().to_json();
    if let Err(e) = write.send(Message::text(hello)).await {
        return ConnectionEnd::Lost(format!("sending worker_hello failed: {e}"));
    }
    if let Some(frame) = carry.take() {
        if let Err(e) = write.send(Message::text(frame.to_json())).await {
            *carry = Some(frame);
            return ConnectionEnd::Lost(format!("send failed: {e}"));
        }
    }
    let timings = setup.timings;
    let mut ping = tokio::time::interval_at(
        Instant::now() + timings.ping_interval,
        timings.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        let silence_deadline = last_heard + timings.silence_timeout;
        tokio::select! {
            _ = setup.stop.cancelled() => {
                let _ = write.send(Message::Close(None)).await;
                return ConnectionEnd::Stopped;
            }
            _ = setup.hold.released() => {
                // Frames already queued (a last `complete`) go out before the Close.
                while let Ok(frame) = setup.outgoing.try_recv() {
                    if let Err(e) = write.send(Message::text(frame.to_json())).await {
                        *carry = Some(frame);
                        return ConnectionEnd::Lost(format!("send failed: {e}"));
                    }
                }
                let _ = write.send(Message::Close(None)).await;
                let _ = write.flush().await;
                return ConnectionEnd::Released;
            }
            message = read.next() => {
                last_heard = Instant::now();
                let message = match message {
                    None => return ConnectionEnd::Lost("the hub closed the connection".into()),
                    Some(Err(e)) => return ConnectionEnd::Lost(e.to_string()),
                    Some(Ok(m)) => m,
                };
                match message {
                    Message::Text(text) if text.len() > setup.max_assign_frame => {
                        for frame in super::oversize::refusal(text.as_str(), setup.max_assign_frame) {
                            if let Err(e) = write.send(Message::text(frame.to_json())).await {
                                return ConnectionEnd::Lost(format!("send failed: {e}"));
                            }
                        }
                    }
                    Message::Text(text) => match parse_hub_frame(text.as_str()) {
                        Ok(HubFrame::Error { code, message }) if code == "AUTH_FAILED" => {
                            return ConnectionEnd::AuthFailed(message);
                        }
                        Ok(HubFrame::Error { code, message }) => {
                            tracing::warn!("the hub reported an error: {code}: {message}");
                        }
                        Ok(HubFrame::Distribute { kind, job_id, reason }) => {
                            tracing::info!(job_id = job_id.as_deref().unwrap_or(""), "hub sent {kind} ({})", reason.as_deref().unwrap_or("no reason"));
                        }
                        Ok(frame) => {
                            if setup.incoming.send(frame).await.is_err() {
                                tracing::warn!("scheduler is gone; ignoring hub frame");
                            }
                        }
                        // Never log the frame itself: it may carry credentials.
                        Err(e) => tracing::warn!("ignoring a hub frame of {} bytes: {e}", text.len()),
                    },
                    Message::Binary(bytes) => {
                        tracing::warn!("ignoring a binary hub frame of {} bytes", bytes.len());
                    }
                    Message::Ping(payload) => {
                        if let Err(e) = write.send(Message::Pong(payload)).await {
                            return ConnectionEnd::Lost(format!("answering a ping failed: {e}"));
                        }
                    }
                    Message::Pong(_) | Message::Frame(_) => {}
                    Message::Close(_) => return ConnectionEnd::Lost("the hub closed the connection".into()),
                }
            }
            frame = setup.outgoing.recv() => {
                let Some(frame) = frame else {
                    let _ = write.send(Message::Close(None)).await;
                    let _ = write.flush().await;
                    return ConnectionEnd::Finished;
                };
                if let Err(e) = write.send(Message::text(frame.to_json())).await {
                    *carry = Some(frame);
                    return ConnectionEnd::Lost(format!("send failed: {e}"));
                }
            }
            Ok(()) = setup.hello.changed() => {
                let _ = write.send(Message::Close(None)).await;
                return ConnectionEnd::Lost("reconnecting to announce the new worker_hello".into());
            }
            _ = ping.tick() => {
                if let Err(e) = write.send(Message::Ping(Default::default())).await {
                    return ConnectionEnd::Lost(format!("ping failed: {e}"));
                }
            }
            _ = tokio::time::sleep_until(silence_deadline) => {
                return ConnectionEnd::Lost(format!(
                    "nothing heard for {} s",
                    timings.silence_timeout.as_secs()
                ));
            }
        }
    }
}
