//! Why a job's child process ended without a result, in words a user can act on.
//!
//! The child's stderr tail tells a failed allocation (the memory limit) and a stack
//! overflow apart; the exit status tells a CPU-time limit and other signals. The job fails
//! with the error code of the stage the child was in.

use super::limits::JobProcessLimits;
use crate::error::{ErrorCode, JobError};
use crate::events::Stage;
use crate::sandbox::lines::strip_controls;
use std::process::ExitStatus;
use tokio::io::AsyncReadExt;

/// How much of the child's stderr is kept.
const TAIL_BYTES: usize = 8 << 10;

/// Reads the child's stderr to its end, keeping the last [`TAIL_BYTES`].
pub(super) async fn keep_tail(mut stderr: tokio::process::ChildStderr) -> String {
    let mut tail = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > TAIL_BYTES {
            tail.drain(..tail.len() - TAIL_BYTES);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

/// The job's error for a child that ended with `status` and printed `stderr_tail`.
pub(super) fn explain(
    stage: Option<Stage>,
    status: Option<ExitStatus>,
    stderr_tail: &str,
    limits: &JobProcessLimits,
) -> JobError {
    let what = stage
        .map(|s| s.as_str().replace('_', " "))
        .unwrap_or_else(|| "the job process".into());
    let why = if stderr_tail.contains("memory allocation of") {
        format!(
            "exceeded its {} memory limit (PERRY_JOB_MEMORY)",
            human_size(limits.memory_bytes)
        )
    } else if stderr_tail.contains("has overflowed its stack") {
        "overflowed its stack (an input nested too deeply)".to_string()
    } else if status.is_some_and(cpu_limit_hit) {
        format!(
            "exceeded its CPU time limit of {} s (PERRY_JOB_CPU_TIME)",
            limits.cpu_time.as_secs()
        )
    } else {
        let how = status.map_or("ended".to_string(), describe_status);
        match last_line(stderr_tail) {
            Some(line) => format!("crashed ({how}): {line}"),
            None => format!("crashed ({how})"),
        }
    };
    JobError::new(code_of(stage), stage, format!("{what} {why}"))
}

/// The error code a failure in `stage` is reported with.
fn code_of(stage: Option<Stage>) -> ErrorCode {
    match stage {
        Some(Stage::Compiling) => ErrorCode::CompileFailed,
        Some(Stage::Signing) => ErrorCode::SigningFailed,
        Some(Stage::GeneratingAssets | Stage::Bundling | Stage::Packaging) => {
            ErrorCode::PackageFailed
        }
        _ => ErrorCode::InternalError,
    }
}

/// The last non-empty line of the child's stderr, cleaned and cut short.
fn last_line(tail: &str) -> Option<String> {
    let line = tail.lines().rev().find(|l| !l.trim().is_empty())?;
    let clean = strip_controls(line.trim());
    Some(clean.chars().take(200).collect())
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes % (1 << 30) == 0 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

#[cfg(unix)]
fn cpu_limit_hit(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGXCPU)
}

/// A Job Object ends a process over its time limit with `ERROR_NOT_ENOUGH_QUOTA`.
#[cfg(windows)]
fn cpu_limit_hit(status: ExitStatus) -> bool {
    status.code() == Some(1816)
}

#[cfg(unix)]
fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(signal)) => format!("signal {signal}"),
        (Some(code), _) => format!("exit status {code}"),
        _ => "ended".into(),
    }
}

#[cfg(windows)]
fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {:#x}", code as u32),
        None => "ended".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_allocation_is_reported_as_the_memory_limit_of_the_stage() {
        let limits = JobProcessLimits {
            memory_bytes: 1 << 30,
            ..Default::default()
        };
        let e = explain(
            Some(Stage::Bundling),
            None,
            "memory allocation of 4000000000 bytes failed\n",
            &limits,
        );
        assert_eq!(e.code, ErrorCode::PackageFailed);
        assert_eq!(
            e.message,
            "bundling exceeded its 1 GiB memory limit (PERRY_JOB_MEMORY)"
        );
    }

    #[test]
    fn a_stack_overflow_and_an_unknown_crash_say_so() {
        let limits = JobProcessLimits::default();
        let e = explain(
            Some(Stage::GeneratingAssets),
            None,
            "\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n",
            &limits,
        );
        assert!(e
            .message
            .starts_with("generating assets overflowed its stack"));
        let e = explain(Some(Stage::Signing), None, "oops \u{1b}[2J\n", &limits);
        assert_eq!(e.code, ErrorCode::SigningFailed);
        assert_eq!(e.message, "signing crashed (ended): oops [2J");
    }
}
