//! An in-process Perry Hub (WebSocket + HTTP on 127.0.0.1, random port) for tests,
//! benchmarks and demos.
//!
//! It records every text frame a worker sends (with a timestamp and connection number),
//! lets the test push frames (job_assign, cancel, update_perry, raw text or binary), serves
//! `GET /tarball/<job>` as base64 text behind a Bearer check, and accepts
//! `POST /upload/<job>` by decoding the base64 body as a stream into a temp file while
//! hashing it. Failures are configurable per job ([`TarballFailure`], [`UploadFailure`]),
//! the hub can be stopped and restarted on the same port, and with a secret configured it
//! answers a wrong `worker_hello` secret with `AUTH_FAILED` and closes, like the real hub.
//! Like the real hub it keeps each job's state ([`jobs`]): a disconnect revokes the last
//! assigned job's token and re-queues it for the next `worker_hello`, and a worker's
//! `error`/`complete` lands on the job by `job_id` alone.

mod b64;
pub mod jobs;
mod server;

pub use jobs::{HubJobStatus, JobState};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// A message the hub pushes to the connected worker.
#[derive(Clone, Debug)]
pub enum Outbound {
    Text(String),
    Binary(Vec<u8>),
}

/// One text frame received from a worker.
#[derive(Clone, Debug)]
pub struct ReceivedFrame {
    pub at: Instant,
    /// 1 for the first WebSocket connection, 2 after a reconnect, ….
    pub connection: u64,
    /// The parsed frame (a JSON string value when the text was not JSON).
    pub json: Value,
    pub raw: String,
}

impl ReceivedFrame {
    pub fn kind(&self) -> &str {
        self.json.get("type").and_then(Value::as_str).unwrap_or("")
    }
    pub fn job_id(&self) -> Option<&str> {
        self.json.get("job_id").and_then(Value::as_str)
    }
}

/// One accepted artifact upload.
#[derive(Clone, Debug)]
pub struct UploadRecord {
    pub job_id: String,
    pub name: String,
    pub target: String,
    /// Decoded size and sha256 as computed by the hub.
    pub size: u64,
    pub sha256: String,
    pub at: Instant,
}

/// How `GET /tarball/<job>` misbehaves.
#[derive(Clone, Debug)]
pub enum TarballFailure {
    /// Always answer with this status.
    Status(u16),
    /// Answer 503 this many times, then serve normally.
    Unavailable { times: u32 },
    /// Send half of the body, then cut the connection.
    CutHalfway,
}

/// How `POST /upload/<job>` misbehaves.
#[derive(Clone, Debug)]
pub enum UploadFailure {
    Status(u16),
    Unavailable { times: u32 },
}

#[derive(Default)]
pub struct TestHubOptions {
    /// When set, a `worker_hello` with another secret gets `AUTH_FAILED`.
    pub secret: Option<String>,
}

struct Shared {
    secret: Option<String>,
    frames: Mutex<Vec<ReceivedFrame>>,
    changed: Notify,
    connection: Mutex<Option<(u64, mpsc::UnboundedSender<Outbound>)>>,
    connections: AtomicU64,
    pings: AtomicU64,
    close_frames: AtomicU64,
    jobs: Mutex<jobs::Jobs>,
    tarball_failures: Mutex<HashMap<String, TarballFailure>>,
    upload_failures: Mutex<HashMap<String, UploadFailure>>,
    tarball_requests: Mutex<Vec<String>>,
    uploads: Mutex<Vec<UploadRecord>>,
    upload_dir: tempfile::TempDir,
}

impl Shared {
    fn record(&self, connection: u64, raw: String) {
        let json = serde_json::from_str(&raw).unwrap_or_else(|_| Value::String(raw.clone()));
        if json.get("type").and_then(Value::as_str) != Some("worker_hello") {
            self.jobs.lock().unwrap().on_received(&json);
        }
        self.frames.lock().unwrap().push(ReceivedFrame {
            at: Instant::now(),
            connection,
            json,
            raw,
        });
        self.changed.notify_waiters();
    }

    /// Makes `conn` the worker's connection (after its hello was accepted) and assigns it
    /// every re-queued job. A connection it replaces counts as gone.
    fn register_worker(&self, conn: u64, tx: mpsc::UnboundedSender<Outbound>) {
        let replaced = self.connection.lock().unwrap().replace((conn, tx.clone()));
        let mut jobs = self.jobs.lock().unwrap();
        if replaced.is_some() {
            jobs.on_worker_gone();
        }
        for frame in jobs.take_requeued_assigns() {
            jobs.on_sent(&frame);
            let _ = tx.send(Outbound::Text(frame.to_string()));
        }
    }

    /// The worker's connection `conn` ended (only the current one counts).
    fn worker_gone(&self, conn: Option<u64>) {
        let mut current = self.connection.lock().unwrap();
        if current.is_none() || (conn.is_some() && current.as_ref().map(|c| c.0) != conn) {
            return;
        }
        *current = None;
        self.jobs.lock().unwrap().on_worker_gone();
    }
}

pub struct TestHub {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<(tokio::task::JoinHandle<()>, CancellationToken)>,
}

impl TestHub {
    pub async fn start() -> anyhow::Result<TestHub> {
        TestHub::start_with(TestHubOptions::default()).await
    }

    pub async fn start_with(options: TestHubOptions) -> anyhow::Result<TestHub> {
        let shared = Arc::new(Shared {
            secret: options.secret,
            frames: Mutex::default(),
            changed: Notify::new(),
            connection: Mutex::default(),
            connections: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            close_frames: AtomicU64::new(0),
            jobs: Mutex::default(),
            tarball_failures: Mutex::default(),
            upload_failures: Mutex::default(),
            tarball_requests: Mutex::default(),
            uploads: Mutex::default(),
            upload_dir: tempfile::tempdir().context("creating the upload folder")?,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut hub = TestHub {
            shared,
            addr,
            server: None,
        };
        hub.serve(listener);
        Ok(hub)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let stop = CancellationToken::new();
        let app = server::router(self.shared.clone(), stop.clone());
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        self.server = Some((handle, stop));
    }

    /// Stops listening and drops the worker's WebSocket connection.
    pub async fn stop(&mut self) {
        if let Some((handle, stop)) = self.server.take() {
            stop.cancel();
            handle.abort();
            let _ = handle.await;
        }
        self.shared.worker_gone(None);
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let mut last_err = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    self.serve(listener);
                    return Ok(());
                }
                Err(e) => last_err = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("cannot listen on {} again: {:?}", self.addr, last_err)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Registers (or re-registers with a new token) a job's tarball.
    pub fn add_job(&self, job_id: &str, token: &str, tarball: Vec<u8>) {
        self.shared
            .jobs
            .lock()
            .unwrap()
            .register(job_id, token, tarball);
    }

    /// Replaces a registered job's tarball without touching its state or token (the next
    /// download, e.g. of its re-queued copy, gets the new one).
    pub fn set_tarball(&self, job_id: &str, tarball: Vec<u8>) {
        self.shared
            .jobs
            .lock()
            .unwrap()
            .set_tarball(job_id, tarball);
    }

    /// Where a job stands at the hub (`None` for an unknown job).
    pub fn job_status(&self, job_id: &str) -> Option<HubJobStatus> {
        self.shared.jobs.lock().unwrap().status(job_id)
    }

    /// The `job_assign` frame for a registered job.
    pub fn assign_frame(&self, job_id: &str, manifest: Value, credentials: Value) -> Value {
        let token = self
            .shared
            .jobs
            .lock()
            .unwrap()
            .get(job_id)
            .map(|j| j.token.clone())
            .unwrap_or_default();
        json!({
            "type": "job_assign",
            "job_id": job_id,
            "auth_token": token,
            "manifest": manifest,
            "credentials": credentials,
            "tarball_url": format!("{}/tarball/{job_id}", self.base_url()),
            "artifact_upload_url": format!("{}/upload/{job_id}", self.base_url()),
        })
    }

    /// Registers the job and sends its `job_assign`.
    pub fn assign(
        &self,
        job_id: &str,
        token: &str,
        tarball: Vec<u8>,
        manifest: Value,
        credentials: Value,
    ) -> anyhow::Result<()> {
        self.add_job(job_id, token, tarball);
        self.send_json(&self.assign_frame(job_id, manifest, credentials))
    }

    pub fn send_json(&self, frame: &Value) -> anyhow::Result<()> {
        self.send(Outbound::Text(frame.to_string()))
    }

    pub fn send(&self, message: Outbound) -> anyhow::Result<()> {
        let conn = self.shared.connection.lock().unwrap();
        let Some((_, tx)) = conn.as_ref() else {
            bail!("no worker is connected")
        };
        if let Outbound::Text(text) = &message {
            if let Ok(frame) = serde_json::from_str::<Value>(text) {
                self.shared.jobs.lock().unwrap().on_sent(&frame);
            }
        }
        tx.send(message)
            .map_err(|_| anyhow::anyhow!("the worker connection is closed"))
    }

    pub fn set_tarball_failure(&self, job_id: &str, failure: TarballFailure) {
        self.shared
            .tarball_failures
            .lock()
            .unwrap()
            .insert(job_id.to_string(), failure);
    }

    pub fn set_upload_failure(&self, job_id: &str, failure: UploadFailure) {
        self.shared
            .upload_failures
            .lock()
            .unwrap()
            .insert(job_id.to_string(), failure);
    }

    pub fn frames(&self) -> Vec<ReceivedFrame> {
        self.shared.frames.lock().unwrap().clone()
    }

    /// Frames carrying this job id, in arrival order.
    pub fn job_frames(&self, job_id: &str) -> Vec<ReceivedFrame> {
        self.frames()
            .into_iter()
            .filter(|f| f.job_id() == Some(job_id))
            .collect()
    }

    pub fn uploads(&self) -> Vec<UploadRecord> {
        self.shared.uploads.lock().unwrap().clone()
    }

    /// Job ids of every tarball request (including refused ones), in order.
    pub fn tarball_requests(&self) -> Vec<String> {
        self.shared.tarball_requests.lock().unwrap().clone()
    }

    /// WebSocket connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// WebSocket Pings received so far.
    pub fn pings(&self) -> u64 {
        self.shared.pings.load(Ordering::SeqCst)
    }

    /// WebSocket Close frames received from workers so far (clean closes).
    pub fn close_frames(&self) -> u64 {
        self.shared.close_frames.load(Ordering::SeqCst)
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connection.lock().unwrap().is_some()
    }

    /// Waits until a received frame matches `pred`; returns it, or an error after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&ReceivedFrame) -> bool,
    ) -> anyhow::Result<ReceivedFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(f) = self.frames().into_iter().find(|f| pred(f)) {
                return Ok(f);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!(
                    "no matching frame within {timeout:?}; got {} frames",
                    self.frames().len()
                );
            }
        }
    }

    /// Waits for the `n`-th `worker_hello` (1-based) and returns it.
    pub async fn wait_for_hello(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<ReceivedFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            let hellos: Vec<_> = self
                .frames()
                .into_iter()
                .filter(|f| f.kind() == "worker_hello")
                .collect();
            if hellos.len() >= n && self.is_connected() {
                return Ok(hellos[n - 1].clone());
            }
            // A hello is recorded before the connection is registered: poll briefly too.
            let tick = tokio::time::sleep(Duration::from_millis(20));
            tokio::select! {
                _ = notified => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => bail!("no hello #{n} within {timeout:?}"),
            }
        }
    }

    /// Waits for the `complete` frame of a job.
    pub async fn wait_for_complete(
        &self,
        job_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<ReceivedFrame> {
        self.wait_for(timeout, |f| {
            f.kind() == "complete" && f.job_id() == Some(job_id)
        })
        .await
    }

    fn upload_dir(&self) -> &std::path::Path {
        self.shared.upload_dir.path()
    }

    /// Where the hub stored an upload's decoded bytes.
    pub fn upload_path(&self, job_id: &str, name: &str) -> std::path::PathBuf {
        server::upload_path(self.upload_dir(), job_id, name)
    }

    /// Forgets a finished job: its record and tarball, its received frames and upload
    /// records, and its uploaded files, so a long run (the soak benchmark) measures the
    /// worker, not the hub's memory of every job.
    pub fn forget_job(&self, job_id: &str) {
        self.shared.jobs.lock().unwrap().forget(job_id);
        self.shared
            .frames
            .lock()
            .unwrap()
            .retain(|f| f.job_id() != Some(job_id));
        let mut uploads = self.shared.uploads.lock().unwrap();
        for upload in uploads.iter().filter(|u| u.job_id == job_id) {
            let _ = std::fs::remove_file(self.upload_path(job_id, &upload.name));
        }
        uploads.retain(|u| u.job_id != job_id);
        drop(uploads);
        self.shared
            .tarball_requests
            .lock()
            .unwrap()
            .retain(|j| j != job_id);
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some((handle, stop)) = self.server.take() {
            stop.cancel();
            handle.abort();
        }
    }
}
