//! Hub frames: tolerant parsing, the one error shape, and no value in any error.

use super::*;
use serde_json::json;

#[test]
fn hub_frames_parse_tolerantly() {
    assert!(matches!(
        parse_hub_frame("nope"),
        Err(FrameError::NotJson(_))
    ));
    assert!(matches!(
        parse_hub_frame("[1]"),
        Err(FrameError::NotJson(_))
    ));
    assert_eq!(parse_hub_frame("{}").unwrap_err(), FrameError::NoType);
    assert!(matches!(
        parse_hub_frame(r#"{"type":"x"}"#),
        Err(FrameError::UnknownType(_))
    ));
    assert_eq!(
        parse_hub_frame(r#"{"type":"job_assign","job_id":"a"}"#).unwrap_err(),
        FrameError::MissingField {
            frame: "job_assign",
            field: "manifest"
        }
    );
    let ok = parse_hub_frame(
        r#"{"type":"job_assign","job_id":"a","auth_token":"t","manifest":{},"tarball_url":"u","artifact_upload_url":"v","extra":1}"#,
    )
    .unwrap();
    match ok {
        HubFrame::JobAssign(a) => assert_eq!(a.credentials, json!({})),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        parse_hub_frame(r#"{"type":"cancel","job_id":"a"}"#),
        Ok(HubFrame::Cancel { .. })
    ));
    assert!(matches!(
        parse_hub_frame(r#"{"type":"update_perry"}"#),
        Ok(HubFrame::UpdatePerry)
    ));
}

#[test]
fn errors_name_the_field_never_its_value() {
    let frame = json!({
        "type": "job_assign", "job_id": "a", "auth_token": ["token-secret"],
        "manifest": {}, "credentials": {"pfx_password": "pfx-secret"},
        "tarball_url": "u", "artifact_upload_url": "v",
    });
    let err = parse_hub_frame(&frame.to_string()).unwrap_err();
    assert_eq!(
        err,
        FrameError::MissingField {
            frame: "job_assign",
            field: "auth_token"
        }
    );
    assert!(!err.to_string().contains("secret"), "{err}");
    let wrong_type = parse_hub_frame(r#"{"type":"cancel","job_id":7}"#).unwrap_err();
    assert_eq!(
        wrong_type,
        FrameError::MissingField {
            frame: "cancel",
            field: "job_id"
        }
    );
}

#[test]
fn every_hub_frame_type_maps_to_its_frame() {
    let assign = parse_hub_frame(
        r#"{"type":"job_assign","job_id":"a","auth_token":"t","manifest":{"app_name":"x"},"credentials":null,"tarball_url":"u","artifact_upload_url":"v"}"#,
    )
    .unwrap();
    match assign {
        HubFrame::JobAssign(a) => {
            assert_eq!(
                (
                    a.job_id.as_str(),
                    a.auth_token.as_str(),
                    a.tarball_url.as_str()
                ),
                ("a", "t", "u")
            );
            assert_eq!(a.artifact_upload_url, "v");
            assert_eq!(a.manifest, json!({"app_name":"x"}));
            assert_eq!(a.credentials, json!({}));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        parse_hub_frame(r#"{"type":"job_assign","job_id":"","manifest":{}}"#).unwrap_err(),
        FrameError::MissingField {
            frame: "job_assign",
            field: "job_id"
        }
    );
    match parse_hub_frame(r#"{"type":"error","code":"AUTH_FAILED","message":"bad secret"}"#) {
        Ok(HubFrame::Error { code, message }) => {
            assert_eq!(
                (code.as_str(), message.as_str()),
                ("AUTH_FAILED", "bad secret")
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    match parse_hub_frame(r#"{"type":"skip_distribute","job_id":"j","reason":"r"}"#) {
        Ok(HubFrame::Distribute {
            kind,
            job_id,
            reason,
        }) => {
            assert_eq!(kind, "skip_distribute");
            assert_eq!(
                (job_id.as_deref(), reason.as_deref()),
                (Some("j"), Some("r"))
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        parse_hub_frame(r#"{"type":"proceed_distribute"}"#),
        Ok(HubFrame::Distribute { job_id: None, .. })
    ));
    assert!(matches!(
        parse_hub_frame(r#"{"type":"update_perry","extra":[1]}"#),
        Ok(HubFrame::UpdatePerry)
    ));
    assert_eq!(
        parse_hub_frame(r#"{"type":5}"#).unwrap_err(),
        FrameError::NoType
    );
}
