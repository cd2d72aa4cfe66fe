//! The test hub's routes: the worker WebSocket (any path), `GET /tarball/<job>` and
//! `POST /upload/<job>`.

use super::b64::StreamingDecoder;
use super::{Outbound, Shared, TarballFailure, UploadFailure, UploadRecord};
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::Digest;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

pub(super) fn router(shared: Arc<Shared>, stop: CancellationToken) -> Router {
    Router::new()
        .route("/tarball/{job}", get(tarball))
        .route("/upload/{job}", post(upload))
        .fallback(worker_socket)
        .layer(DefaultBodyLimit::disable())
        .with_state(App { shared, stop })
}

pub(super) fn upload_path(dir: &std::path::Path, job_id: &str, name: &str) -> std::path::PathBuf {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    dir.join(format!("{}--{}", clean(job_id), clean(name)))
}

async fn worker_socket(ws: WebSocketUpgrade, State(app): State<App>) -> Response {
    ws.max_frame_size(64 << 20)
        .max_message_size(64 << 20)
        .on_upgrade(move |socket| serve_worker(socket, app))
}

async fn serve_worker(mut socket: WebSocket, app: App) {
    let shared = &app.shared;
    let conn = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
    // The first frame decides the role.
    let first = tokio::select! {
        m = socket.recv() => m,
        _ = app.stop.cancelled() => return,
    };
    let Some(Ok(Message::Text(first))) = first else {
        return;
    };
    shared.record(conn, first.to_string());
    if let Some(expected) = &shared.secret {
        let hello: Value = serde_json::from_str(first.as_str()).unwrap_or_default();
        if hello.get("secret").and_then(Value::as_str) != Some(expected.as_str()) {
            let refusal =
                json!({"type":"error","code":"AUTH_FAILED","message":"Invalid worker secret"});
            let _ = socket.send(Message::text(refusal.to_string())).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.register_worker(conn, tx);
    loop {
        tokio::select! {
            // A stopped hub just vanishes, like a crashed process.
            _ = app.stop.cancelled() => break,
            out = rx.recv() => {
                let message = match out {
                    Some(Outbound::Text(t)) => Message::text(t),
                    Some(Outbound::Binary(b)) => Message::Binary(b.into()),
                    None => break,
                };
                if socket.send(message).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) => {
                    shared.close_frames.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                None | Some(Err(_)) => break,
                Some(Ok(Message::Text(t))) => shared.record(conn, t.to_string()),
                Some(Ok(Message::Ping(_))) => {
                    shared.pings.fetch_add(1, Ordering::SeqCst);
                }
                Some(Ok(_)) => {}
            }
        }
    }
    shared.worker_gone(Some(conn));
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn status(code: u16, text: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        text.to_string(),
    )
        .into_response()
}

async fn tarball(Path(job): Path<String>, State(app): State<App>, headers: HeaderMap) -> Response {
    let shared = &app.shared;
    shared.tarball_requests.lock().unwrap().push(job.clone());
    let failure = {
        let mut failures = shared.tarball_failures.lock().unwrap();
        match failures.get_mut(&job) {
            Some(TarballFailure::Unavailable { times }) if *times > 0 => {
                *times -= 1;
                return status(503, "busy");
            }
            other => other.cloned(),
        }
    };
    if let Some(TarballFailure::Status(code)) = failure {
        return status(code, "refused");
    }
    let Some((token, data)) = shared
        .jobs
        .lock()
        .unwrap()
        .get(&job)
        .map(|j| (j.token.clone(), j.tarball.clone()))
    else {
        return status(404, "no tarball");
    };
    if token.is_empty() || bearer(&headers) != Some(token.as_str()) {
        return status(403, "bad token");
    }
    let text = base64::engine::general_purpose::STANDARD.encode(data.as_slice()) + "\n";
    if let Some(TarballFailure::CutHalfway) = failure {
        let total = text.len();
        let half = Bytes::from(text.into_bytes()).slice(..total / 2);
        let parts: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(half),
            Err(std::io::Error::other("connection cut by the test hub")),
        ];
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::CONTENT_LENGTH, total)
            .body(Body::from_stream(futures_util::stream::iter(parts)))
            .unwrap_or_else(|_| status(500, "response"));
    }
    ([(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

/// Reads and discards a request body (so the client sees the status, not a reset).
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    while let Some(Ok(_)) = stream.next().await {}
}

async fn upload(
    Path(job): Path<String>,
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let shared = app.shared.clone();
    let failure = {
        let mut failures = shared.upload_failures.lock().unwrap();
        match failures.get_mut(&job) {
            Some(UploadFailure::Unavailable { times }) if *times > 0 => {
                *times -= 1;
                Some(503)
            }
            Some(UploadFailure::Status(code)) => Some(*code),
            _ => None,
        }
    };
    if let Some(code) = failure {
        drain(body).await;
        return status(code, "upload refused by the test hub");
    }
    let Some((token, open)) = shared
        .jobs
        .lock()
        .unwrap()
        .get(&job)
        .map(|j| (j.token.clone(), j.is_open()))
    else {
        drain(body).await;
        return status(404, "unknown job");
    };
    if token.is_empty() || bearer(&headers) != Some(token.as_str()) {
        drain(body).await;
        return status(403, "bad token");
    }
    if !open {
        drain(body).await;
        return status(409, "job not running");
    }
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (Some(name), Some(declared), Some(target)) = (
        header_str("x-artifact-name"),
        header_str("x-artifact-sha256"),
        header_str("x-artifact-target"),
    ) else {
        drain(body).await;
        return status(400, "missing x-artifact-* header");
    };

    let path = upload_path(shared.upload_dir.path(), &job, &name);
    let mut file = match tokio::fs::File::create(&path).await {
        Ok(f) => f,
        Err(e) => return status(500, &format!("cannot store upload: {e}")),
    };
    let mut decoder = StreamingDecoder::default();
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let mut decoded = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return status(400, "body stream failed");
        };
        decoded.clear();
        if let Err(e) = decoder.push(&chunk, &mut decoded) {
            return status(400, &e);
        }
        hasher.update(&decoded);
        size += decoded.len() as u64;
        if file.write_all(&decoded).await.is_err() {
            return status(500, "cannot write upload");
        }
    }
    if let Err(e) = decoder.finish() {
        return status(400, &e);
    }
    let _ = file.flush().await;
    if size == 0 {
        return status(400, "empty body");
    }
    let sha256 = hex::encode(hasher.finalize());
    if sha256 != declared {
        return status(400, "x-artifact-sha256 does not match the body");
    }
    shared.uploads.lock().unwrap().push(UploadRecord {
        job_id: job.clone(),
        name: name.clone(),
        target,
        size,
        sha256,
        at: Instant::now(),
    });
    axum::Json(json!({
        "token": format!("dl-{job}"),
        "download_url": format!("/download/{job}/{name}"),
        "size": size,
    }))
    .into_response()
}
