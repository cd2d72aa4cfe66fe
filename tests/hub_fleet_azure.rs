//! `PERRY_IDLE_ACTION=azure-deallocate` against one local server standing in for the Azure
//! Instance Metadata Service, Entra ID and Resource Manager: the exact requests the worker
//! makes, managed identity and service principal tokens, token renewal, a refused
//! deallocation (logged, reconnect, idle again) and a retried one.
// Linux-host suite (shell-script stand-ins, Unix signals and permissions).
#![cfg(unix)]

use perry_test_support::fleet_support;
use perry_test_support::hub_support;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fleet_support::{wait_disconnected, BinWorker};
use hub_support::WAIT;
use perry_test_support::testhub::TestHub;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request seen by the Azure stand-in.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    authorization: Option<String>,
    metadata: Option<String>,
    body: String,
}

/// IMDS, Entra ID and ARM in one local server; ARM answers from a script.
#[derive(Clone, Default)]
struct AzureStandIn {
    seen: Arc<Mutex<Vec<Seen>>>,
    arm_replies: Arc<Mutex<VecDeque<u16>>>,
    tokens: Arc<AtomicU32>,
}

impl AzureStandIn {
    async fn start(arm_replies: &[u16]) -> (AzureStandIn, String) {
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

    fn seen(&self, pred: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| pred(s))
            .cloned()
            .collect()
    }
}

const DEALLOCATE_URI: &str = "/subscriptions/sub-123/resourceGroups/rg-fleet/providers/Microsoft.Compute/virtualMachines/win-07/deallocate?api-version=2024-07-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_deallocate_with_the_managed_identity_retries_renews_and_exits_0() {
    let hub = TestHub::start().await.unwrap();
    // First attempt: ARM refuses (403, not retried) → reconnect and wait again. Second
    // attempt: 503 (retried by the HTTP rules) then 202.
    let (azure, url) = AzureStandIn::start(&[403, 503, 202]).await;
    let mut worker = BinWorker::start(
        &hub,
        &[],
        &[
            ("PERRY_IDLE_TIMEOUT", "1"),
            ("PERRY_IDLE_ACTION", "azure-deallocate"),
            ("PERRY_AZURE_IMDS_URL", &url),
            ("PERRY_AZURE_ARM_URL", &url),
        ],
        0.0,
    );
    hub.wait_for_hello(1, WAIT).await.unwrap();
    let status = worker.exit_within(Duration::from_secs(30)).await;
    let log = worker.log();
    assert!(status.success(), "{status:?}; log:\n{log}");
    assert_eq!(
        hub.frames()
            .iter()
            .filter(|f| f.kind() == "worker_hello")
            .count(),
        2,
        "reconnected once after the refused deallocation"
    );
    wait_disconnected(&hub, WAIT).await;
    assert_eq!(
        hub.close_frames(),
        2,
        "the link was closed before each attempt"
    );
    assert!(log.contains("HTTP 403"), "the failure is logged: {log}");

    let compute = azure.seen(|s| s.uri.starts_with("/metadata/instance/compute"));
    assert_eq!(
        compute.len(),
        1,
        "the VM identity is asked once: {compute:?}"
    );
    assert_eq!(compute[0].method, "GET");
    assert_eq!(
        compute[0].uri,
        "/metadata/instance/compute?api-version=2021-02-01"
    );
    let tokens = azure.seen(|s| s.uri.starts_with("/metadata/identity/oauth2/token"));
    assert_eq!(tokens.len(), 2, "the 2 s token was renewed: {tokens:?}");
    for t in &tokens {
        assert_eq!(t.method, "GET");
        assert_eq!(t.metadata.as_deref(), Some("true"));
        assert_eq!(
            t.uri,
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
        );
    }
    let arm = azure.seen(|s| s.uri.contains("/deallocate"));
    let bearers: Vec<_> = arm
        .iter()
        .map(|s| s.authorization.clone().unwrap())
        .collect();
    assert_eq!(
        bearers,
        [
            "Bearer mi-token-1",
            "Bearer mi-token-2",
            "Bearer mi-token-2"
        ],
        "{arm:?}"
    );
    for call in &arm {
        assert_eq!(call.method, "POST");
        assert_eq!(call.uri, DEALLOCATE_URI);
        assert!(call.body.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_deallocate_with_a_service_principal_sends_its_form_and_never_logs_the_secret() {
    let hub = TestHub::start().await.unwrap();
    let (azure, url) = AzureStandIn::start(&[]).await;
    let secret = "sp-secret-Zq9!x";
    let mut worker = BinWorker::start(
        &hub,
        &[],
        &[
            ("PERRY_IDLE_TIMEOUT", "1"),
            ("PERRY_IDLE_ACTION", "azure-deallocate"),
            ("PERRY_AZURE_IMDS_URL", &url),
            ("PERRY_AZURE_ARM_URL", &url),
            ("PERRY_AZURE_AUTHORITY_URL", &url),
            ("AZURE_TENANT_ID", "tenant-1"),
            ("AZURE_CLIENT_ID", "client-1"),
            ("AZURE_CLIENT_SECRET", secret),
        ],
        0.0,
    );
    hub.wait_for_hello(1, WAIT).await.unwrap();
    let status = worker.exit_within(Duration::from_secs(15)).await;
    let log = worker.log();
    assert!(status.success(), "{status:?}; log:\n{log}");
    assert!(!log.contains(secret) && !log.contains("sp-token"), "{log}");

    let login = azure.seen(|s| s.uri.ends_with("/oauth2/v2.0/token"));
    assert_eq!(login.len(), 1, "{login:?}");
    assert_eq!(login[0].method, "POST");
    assert_eq!(login[0].uri, "/tenant-1/oauth2/v2.0/token");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(login[0].body.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("grant_type"), Some("client_credentials"));
    assert_eq!(field("client_id"), Some("client-1"));
    assert_eq!(field("client_secret"), Some(secret));
    assert_eq!(
        field("scope"),
        Some("https://management.azure.com/.default")
    );
    assert!(
        azure
            .seen(|s| s.uri.starts_with("/metadata/identity"))
            .is_empty(),
        "no managed identity token with a service principal"
    );
    let arm = azure.seen(|s| s.uri.contains("/deallocate"));
    assert_eq!(arm.len(), 1);
    assert_eq!(arm[0].uri, DEALLOCATE_URI);
    assert_eq!(arm[0].authorization.as_deref(), Some("Bearer sp-token-1"));
}
