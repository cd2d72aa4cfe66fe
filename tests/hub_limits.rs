//! What leaves the worker is bounded and clean: a log flood is capped with a visible
//! "lines dropped" notice, and job secrets never appear in any frame.

use perry_test_support::hub_support;

use base64::Engine;
use hub_support::*;
use perry_test_support::testhub::TestHub;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_flood_is_capped_and_the_drop_is_reported() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[("PERRY_LOG_MAX_LINES", "1000")]).await;
    assign(&hub, "flood", json!({"log_lines": 1_000_000}));
    let complete = hub.wait_for_complete("flood", WAIT).await.unwrap();
    assert_eq!(complete.json["success"], true);
    settle().await;
    let logs: Vec<String> = hub
        .job_frames("flood")
        .iter()
        .filter(|f| f.kind() == "log")
        .map(|f| f.json["line"].as_str().unwrap().to_string())
        .collect();
    assert!(
        logs.len() <= 1001,
        "{} log frames reached the hub",
        logs.len()
    );
    let notice: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("log lines dropped"))
        .collect();
    assert_eq!(notice.len(), 1, "exactly one drop notice");
    let dropped: u64 = notice[0]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped >= 999_000, "{}", notice[0]);
    let kinds = kinds(&hub.job_frames("flood"));
    assert_eq!(kinds.last().map(String::as_str), Some("complete"));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_are_cut() {
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    assign(&hub, "ok", json!({}));
    hub.wait_for_complete("ok", WAIT).await.unwrap();
    for f in hub.frames() {
        if f.kind() == "log" {
            assert!(f.json["line"].as_str().unwrap().chars().count() <= 4096 + 20);
        }
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_secrets_never_reach_the_hub() {
    let secrets = [
        "Pfx-Pa55word-very-secret",
        "azure-client-secret-value-123",
        "apple-p12-password-xyz",
        "quote\"and\\backslash-secret",
    ];
    // Valid PFX credentials plus other platforms' keys (which must be masked too).
    let credentials = json!({
        "windows_pfx_base64": base64::engine::general_purpose::STANDARD.encode("not a real pfx file at all"),
        "windows_pfx_password": secrets[0],
        "android_keystore_password": secrets[1],
        "apple_p12_password": secrets[2],
        "ios_api_key": secrets[3],
    });
    // Incomplete Azure credentials: rejected, and the rejection must not leak either.
    let bad_credentials = json!({
        "azure_client_secret": secrets[1],
        "azure_tenant_id": secrets[3],
        "windows_pfx_password": secrets[0],
    });
    let hub = TestHub::start().await.unwrap();
    let worker = connected_worker(&hub, &[]).await;
    hub.assign(
        "bad-creds",
        "t-bad",
        project_tarball(json!({"echo_secrets": true})),
        manifest(),
        bad_credentials,
    )
    .unwrap();
    hub.wait_for_complete("bad-creds", WAIT).await.unwrap();
    for (job, fail) in [("leaky-ok", None), ("leaky-fail", Some("SIGNING_FAILED"))] {
        let control = json!({"echo_secrets": true, "fail": fail});
        hub.assign(
            job,
            &format!("t-{job}"),
            project_tarball(control),
            manifest(),
            credentials.clone(),
        )
        .unwrap();
        hub.wait_for_complete(job, WAIT).await.unwrap();
    }
    settle().await;
    assert_failed(&hub, "leaky-fail");
    assert_failed(&hub, "bad-creds");
    let ok = hub.wait_for_complete("leaky-ok", WAIT).await.unwrap();
    assert_eq!(
        ok.json["success"],
        true,
        "{:?}",
        kinds(&hub.job_frames("leaky-ok"))
    );
    let frames = hub.frames();
    assert!(
        frames.iter().any(|f| f.raw.contains("[redacted]")),
        "the pipeline's echoes arrived masked"
    );
    for f in &frames {
        for s in secrets {
            let b64 = base64::engine::general_purpose::STANDARD.encode(s);
            let json_escaped = serde_json::to_string(s).unwrap();
            let json_escaped = json_escaped.trim_matches('"');
            for form in [s, b64.as_str(), json_escaped] {
                assert!(
                    !f.raw.contains(form),
                    "secret form {form:?} leaked in {}",
                    f.raw
                );
            }
        }
    }
    worker.stop().await;
}
