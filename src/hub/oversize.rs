//! Hub frames over `PERRY_MAX_ASSIGN_FRAME`: never parsed as JSON (a parsed 30 MB frame
//! costs far more memory than its text), yet never dropped silently. The job id is picked
//! out of the text with a plain scan, and the job is answered with `error` +
//! `complete{success:false}` as any other failed job is.

use super::protocol::{JobFrames, WorkerFrame};
use crate::error::ErrorCode;
use crate::job::workdir::human_bytes;

/// Longest job id picked out of an oversized frame.
const MAX_JOB_ID: usize = 256;

/// The frames that refuse an oversized frame `text` (limit `cap` bytes): `error` and
/// `complete{success:false}` for its job, or nothing (logged) when it names no job.
pub(crate) fn refusal(text: &str, cap: usize) -> Vec<WorkerFrame> {
    let size = human_bytes(text.len() as u64);
    let limit = human_bytes(cap as u64);
    let job_id = text
        .contains("\"job_assign\"")
        .then(|| job_id_in(text))
        .flatten();
    let Some(job_id) = job_id else {
        tracing::warn!(
            "ignoring a hub frame of {size} (more than the {limit} accepted) that names no job"
        );
        return Vec::new();
    };
    tracing::warn!(%job_id, "refusing a job_assign of {size}: more than the {limit} accepted");
    let frames = JobFrames::new(job_id);
    let message = format!(
        "the job_assign frame is {size}, more than the {limit} this worker accepts \
         (PERRY_MAX_ASSIGN_FRAME)"
    );
    vec![
        frames.error(ErrorCode::InternalError, message.clone(), None),
        frames.complete_failure(0.0, message),
    ]
}

/// The first `"job_id": "<value>"` in `text` whose value is a plain string (no escapes,
/// no control characters, at most 256 bytes).
pub(crate) fn job_id_in(text: &str) -> Option<String> {
    const KEY: &str = "\"job_id\"";
    let mut rest = text;
    while let Some(at) = rest.find(KEY) {
        rest = &rest[at + KEY.len()..];
        let value = rest.trim_start().strip_prefix(':').map(str::trim_start);
        let Some(value) = value.and_then(|v| v.strip_prefix('"')) else {
            continue;
        };
        let end = value.find(['"', '\\'])?;
        let id = &value[..end];
        if value[end..].starts_with('"')
            && !id.is_empty()
            && id.len() <= MAX_JOB_ID
            && !id.chars().any(char::is_control)
        {
            return Some(id.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_is_found_without_parsing_the_frame() {
        let big = "x".repeat(1000);
        let text =
            format!(r#"{{"type":"job_assign","manifest":{{"a":"{big}"}},"job_id" : "j-42","x":1"#);
        assert_eq!(job_id_in(&text).as_deref(), Some("j-42"));
        assert_eq!(job_id_in(r#"{"job_id":"a\"b"}"#), None);
        assert_eq!(job_id_in(r#"{"job_id":12}"#), None);
        let frames = refusal(&text, 100);
        assert_eq!(frames.len(), 2);
        let error = frames[0].to_json();
        assert!(
            error.contains("PERRY_MAX_ASSIGN_FRAME") && error.contains("j-42"),
            "{error}"
        );
        assert!(frames[1].to_json().contains("\"success\":false"));
        assert!(refusal(r#"{"type":"cancel","job_id":"j"}"#, 1).is_empty());
    }
}
