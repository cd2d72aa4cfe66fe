//! The job's child process (`perry-ship-windows __job`): runs the Windows pipeline on the
//! job's files with no credentials, under the limits the worker set before it started.
//!
//! stdin carries the job ([`ToChild::Start`]) and the worker's answers; stdout carries the
//! job's events, the step and signing requests and, last, the result. Diagnostics go to
//! stderr, which the worker keeps a tail of to explain a crash.

use super::remote::{LinkSink, RemoteRunner, RemoteSigner, WorkerLink};
use super::wire::{FromChild, JobSpec, ToChild, WireArtifact, WireJobError, WireOutcome};
use crate::config::Config;
use crate::error::JobError;
use crate::job::credentials::Credentials;
use crate::pipeline::windows::WindowsPipeline;
use crate::pipeline::JobContext;
use crate::sign::SigningSession;
use std::collections::HashMap;
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Entry point of the hidden `__job` subcommand.
pub fn child_main() -> ExitCode {
    if let Err(e) = crate::cli::core_dumps::disable_core_dumps() {
        eprintln!("cannot turn core dumps off: {e}");
        return ExitCode::FAILURE;
    }
    let link = WorkerLink::new();
    let spec = match read_start() {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("no job: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reader_link = link.clone();
    std::thread::spawn(move || read_answers(&reader_link));

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(spec, link.clone()));
    link.send(&FromChild::Finished(match outcome {
        Ok(artifacts) => WireOutcome::Built {
            artifacts: artifacts.iter().map(WireArtifact::from).collect(),
        },
        Err(e) => WireOutcome::Failed(WireJobError::from(&e)),
    }));
    ExitCode::SUCCESS
}

/// The first line of stdin: the job.
fn read_start() -> Result<Box<JobSpec>, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    match serde_json::from_str::<ToChild>(&line) {
        Ok(ToChild::Start(spec)) => Ok(spec),
        Ok(_) => Err("the first message was not the job".into()),
        Err(e) => Err(format!("unreadable job: {e}")),
    }
}

/// Hands the worker's answers to the requests waiting for them; the worker closing stdin
/// ends the child (the job was cancelled or the worker is gone).
fn read_answers(link: &WorkerLink) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<ToChild>(&line) {
            Ok(message) => link.answer(message),
            Err(e) => {
                eprintln!("unreadable message from the worker: {e}");
                break;
            }
        }
    }
    std::process::exit(4);
}

async fn run(
    spec: Box<JobSpec>,
    link: Arc<WorkerLink>,
) -> Result<Vec<crate::pipeline::Artifact>, JobError> {
    let JobSpec {
        job_id,
        attempt,
        manifest,
        project_dir,
        work_dir,
        config_vars,
        signing,
    } = *spec;
    let vars: HashMap<String, String> = config_vars.into_iter().collect();
    let config = Config::from_lookup(|k| vars.get(k).cloned())
        .map_err(|e| JobError::internal(None, format!("job process configuration: {e}")))?;
    let http = crate::hub::transfer::http_client();
    let session = match signing {
        None => None,
        Some(s) => {
            let chain = super::chain_from_hex(&s.chain_hex)
                .map_err(|e| JobError::internal(None, format!("signing certificate: {e}")))?;
            let signer = RemoteSigner {
                link: link.clone(),
                chain,
                method: s.method.as_str(),
            };
            Some(SigningSession::delegated(
                s.method,
                Box::new(signer),
                s.certificate,
                s.timestamp_urls,
                &http,
            ))
        }
    };
    let job = JobContext {
        job_id,
        attempt,
        manifest: Arc::new(manifest),
        credentials: Arc::new(Credentials::default()),
        project_dir,
        work_dir,
        events: Arc::new(LinkSink(link.clone())),
        cancel: CancellationToken::new(),
        runner: Arc::new(RemoteRunner(link)),
        config: Arc::new(config),
        http,
        certificates: Default::default(),
    };
    WindowsPipeline.run_with_session(&job, session).await
}
