//! Pieces of the fleet tests: the worker binary run as a child process with a stand-in
//! `perry`, and one local server standing in for Azure IMDS, Entra ID and ARM.
#![allow(dead_code)]

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use perry_ship_windows::testhub::TestHub;
use serde_json::json;
use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A worker process (the real binary) and its private folders.
pub struct BinWorker {
    pub child: tokio::process::Child,
    pub dir: tempfile::TempDir,
}

impl BinWorker {
    /// `perry` is a stand-in that answers `--version` and fails a compile after `sleep_s`.
    pub fn start(hub: &TestHub, args: &[&str], env: &[(&str, &str)], sleep_s: f32) -> BinWorker {
        let dir = tempfile::tempdir().unwrap();
        let perry = dir.path().join("perry");
        std::fs::write(
            &perry,
            format!(
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'perry 0.5.3'; exit 0; fi\nsleep {sleep_s}\necho 'stand-in compiler: no compiler here' >&2\nexit 3\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&perry, std::fs::Permissions::from_mode(0o755)).unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let log = std::fs::File::create(dir.path().join("worker.log")).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_perry-ship-windows"))
            .arg("run")
            .args(args)
            .env("PERRY_HUB_URL", hub.ws_url())
            .env("PERRY_HUB_WORKER_SECRET", "fleet-hub-secret")
            .env("PERRY_WORK_DIR", &work)
            .env("PERRY_MIN_FREE_DISK", "1m")
            .env("PERRY_WORKER_NAME", "fleet-worker")
            .env("PERRY_BUILD_PERRY_BINARY", &perry)
            .env("PERRY_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the worker binary starts");
        BinWorker { child, dir }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("the worker runs") as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of our own child process.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({signal})");
    }

    /// Waits for the process to exit within `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "the worker did not exit within {limit:?}; log:\n{}",
                self.log()
            ),
        }
    }
}

/// Waits until the hub has no worker connected.
pub async fn wait_disconnected(hub: &TestHub, limit: Duration) {
    let deadline = Instant::now() + limit;
    while hub.is_connected() {
        assert!(Instant::now() < deadline, "the worker stayed connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request seen by the Azure stand-in.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub authorization: Option<String>,
    pub metadata: Option<String>,
    pub body: String,
}

/// IMDS, Entra ID and ARM in one local server; ARM answers from a script.
#[derive(Clone, Default)]
pub struct AzureStandIn {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub arm_replies: Arc<Mutex<VecDeque<u16>>>,
    pub tokens: Arc<AtomicU32>,
}

impl AzureStandIn {
    pub async fn start(arm_replies: &[u16]) -> (AzureStandIn, String) {
        let azure = AzureStandIn::default();
        azure.arm_replies.lock().unwrap().extend(arm_replies);
        let state = azure.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let state = state.clone();
            async move { state.answer(req).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (azure, url)
    }

    async fn answer(&self, req: Request) -> Response {
        let (authorization, metadata) = {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            (header("authorization"), header("metadata"))
        };
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let path = req.uri().path().to_string();
        let body = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .unwrap();
        self.seen.lock().unwrap().push(Seen {
            method,
            uri,
            authorization,
            metadata: metadata.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let n = || self.tokens.fetch_add(1, Ordering::SeqCst) + 1;
        if path.starts_with("/metadata/") && metadata.as_deref() != Some("true") {
            return (StatusCode::BAD_REQUEST, "Metadata header missing").into_response();
        }
        match path.as_str() {
            "/metadata/instance/compute" => Json(json!({
                "subscriptionId": "sub-123",
                "resourceGroupName": "rg-fleet",
                "name": "win-07",
                "location": "westeurope"
            }))
            .into_response(),
            // Managed identity: `expires_in` as a string, like IMDS; 2 s so it is renewed.
            "/metadata/identity/oauth2/token" => Json(json!({
                "access_token": format!("mi-token-{}", n()),
                "expires_in": "2",
                "token_type": "Bearer"
            }))
            .into_response(),
            p if p.ends_with("/oauth2/v2.0/token") => Json(json!({
                "access_token": format!("sp-token-{}", n()),
                "expires_in": 3600,
                "token_type": "Bearer"
            }))
            .into_response(),
            p if p.ends_with("/deallocate") => {
                let code = self.arm_replies.lock().unwrap().pop_front().unwrap_or(202);
                StatusCode::from_u16(code).unwrap().into_response()
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }

    pub fn seen(&self, pred: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| pred(s))
            .cloned()
            .collect()
    }
}

pub fn free_local_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

pub async fn get_json(http: &reqwest::Client, url: String) -> (u16, serde_json::Value) {
    let resp = http.get(url).send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap())
}
