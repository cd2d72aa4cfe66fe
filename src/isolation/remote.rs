//! The child's side of the worker link: requests to the worker and their answers.
//!
//! [`WorkerLink`] writes the child's lines to stdout and matches the worker's answers (read
//! from stdin) to the request that waits for them. [`RemoteRunner`] runs tool steps in the
//! worker's sandbox, [`RemoteSigner`] has the worker sign digests with the job's key, and
//! [`LinkSink`] forwards the job's events.

use super::wire::{self, FromChild, ToChild, WireSignResult};
use crate::events::{EventSink, JobEvent};
use crate::sandbox::{Runner, Step, StepContext, StepError, StepOutcome, Toolchain};
use crate::sign::signer::{CertChain, DigestSignature, DigestSigner};
use crate::sign::SignError;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The child's link to the worker: its stdout for requests and events, and the answers.
pub(crate) struct WorkerLink {
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<ToChild>>>,
    out: Mutex<std::io::Stdout>,
}

impl WorkerLink {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(WorkerLink {
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            out: Mutex::new(std::io::stdout()),
        })
    }

    /// Writes one line to the worker. A broken pipe means the worker is gone: the child
    /// has nobody to work for and exits.
    pub(crate) fn send(&self, message: &FromChild) {
        let line = wire::encode(message);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if out.write_all(&line).and_then(|_| out.flush()).is_err() {
            std::process::exit(3);
        }
    }

    /// Sends the request `make(id)` and waits for the worker's answer to it.
    async fn request(&self, make: impl FnOnce(u64) -> FromChild) -> Option<ToChild> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id, tx);
        self.send(&make(id));
        rx.await.ok()
    }

    /// Hands an answer from the worker to the request waiting for it.
    pub(crate) fn answer(&self, message: ToChild) {
        let id = match &message {
            ToChild::StepDone { id, .. }
            | ToChild::Signed { id, .. }
            | ToChild::Toolchain { id, .. } => *id,
            ToChild::Start(_) => return,
        };
        if let Some(tx) = self.waiting.lock().unwrap().remove(&id) {
            let _ = tx.send(message);
        }
    }
}

/// Forwards the job's events to the worker, which masks them and sends them on.
pub(crate) struct LinkSink(pub(crate) Arc<WorkerLink>);

impl EventSink for LinkSink {
    fn emit(&self, event: JobEvent) {
        self.0.send(&FromChild::Event(event));
    }
}

/// Runs tool steps in the worker's sandbox (Docker or host processes).
pub(crate) struct RemoteRunner(pub(crate) Arc<WorkerLink>);

#[async_trait::async_trait]
impl Runner for RemoteRunner {
    async fn run(&self, step: &Step, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let answer = self
            .0
            .request(|id| FromChild::RunStep {
                id,
                step: step.clone(),
                stage: ctx.stage,
                output_dir: ctx.output_dir.clone(),
            })
            .await;
        match answer {
            Some(ToChild::StepDone { result, .. }) => result.into(),
            _ => Err(StepError::Infrastructure(anyhow::anyhow!(
                "the worker did not answer the {} step",
                step.name
            ))),
        }
    }

    fn describe(&self) -> String {
        "the worker's sandbox".into()
    }

    async fn toolchain(
        &self,
        _config: &crate::config::Config,
        perry_version: bool,
    ) -> anyhow::Result<Toolchain> {
        match self
            .0
            .request(|id| FromChild::Toolchain { id, perry_version })
            .await
        {
            Some(ToChild::Toolchain { result, .. }) => result.map_err(anyhow::Error::msg),
            _ => anyhow::bail!("the worker did not describe its toolchain"),
        }
    }
}

/// Has the worker sign digests with the job's key; the key never reaches the child.
pub(crate) struct RemoteSigner {
    pub(crate) link: Arc<WorkerLink>,
    pub(crate) chain: CertChain,
    pub(crate) method: &'static str,
}

#[async_trait::async_trait]
impl DigestSigner for RemoteSigner {
    fn chain(&self) -> &CertChain {
        &self.chain
    }

    async fn sign_digest(&self, digest: &[u8; 32]) -> Result<DigestSignature, SignError> {
        let answer = self
            .link
            .request(|id| FromChild::SignDigest {
                id,
                digest_hex: hex::encode(digest),
            })
            .await;
        match answer {
            Some(ToChild::Signed {
                result:
                    WireSignResult::Signed {
                        signature_hex,
                        chain_hex,
                    },
                ..
            }) => {
                let bad = |e: String| SignError::new(self.method, e);
                let signature = hex::decode(signature_hex).map_err(|e| bad(e.to_string()))?;
                let chain = super::chain_from_hex(&chain_hex).map_err(bad)?;
                Ok(DigestSignature { signature, chain })
            }
            Some(ToChild::Signed {
                result: WireSignResult::Failed { message, .. },
                ..
            }) => Err(SignError::new(self.method, message)),
            _ => Err(SignError::new(
                self.method,
                "the worker did not answer a signing request",
            )),
        }
    }
}
