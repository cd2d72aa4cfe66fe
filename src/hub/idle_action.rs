//! What the worker does once it has been idle for `PERRY_IDLE_TIMEOUT` and has closed its
//! hub link: nothing more (`exit`), deallocate its Azure VM (`azure-deallocate`), or run
//! `PERRY_IDLE_COMMAND` (`command`). Success means the worker exits 0; an error means it
//! reconnects and waits for work again.

use super::azure_vm::AzureVmClient;
use crate::config::{Config, IdleAction};
use crate::sign::HttpPolicy;
use anyhow::{bail, Context};
use std::process::Stdio;
use std::time::Duration;

/// Longest an idle command may run (a cloud CLI call, a `shutdown`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the configured idle action; keeps state (Azure token, VM identity) between runs.
pub(crate) struct IdleActor {
    action: IdleAction,
    azure: Option<AzureVmClient>,
}

impl IdleActor {
    /// The Azure calls use the signing services' retry rules ([`HttpPolicy::default`]).
    pub(crate) fn new(config: &Config, http: reqwest::Client) -> IdleActor {
        let action = config.fleet.idle_action.clone();
        let azure = (action == IdleAction::AzureDeallocate).then(|| {
            AzureVmClient::new(
                config.fleet.azure.clone(),
                &config.signing.azure_authority,
                http,
                HttpPolicy::default(),
            )
        });
        IdleActor { action, azure }
    }

    pub(crate) fn describe(&self) -> &'static str {
        self.action.as_str()
    }

    /// Performs the action once.
    pub(crate) async fn perform(&mut self) -> anyhow::Result<()> {
        match &self.action {
            IdleAction::Exit => Ok(()),
            IdleAction::AzureDeallocate => {
                let client = self
                    .azure
                    .as_mut()
                    .context("no Azure client for azure-deallocate")?;
                let vm = client.deallocate().await?;
                tracing::info!(
                    vm = %vm.name,
                    resource_group = %vm.resource_group,
                    "Azure accepted the deallocation of this VM"
                );
                Ok(())
            }
            IdleAction::Command(argv) => run_command(argv).await,
        }
    }
}

/// Runs `argv` directly (no shell), without the hub secret in its environment.
async fn run_command(argv: &[String]) -> anyhow::Result<()> {
    let (program, args) = argv.split_first().context("PERRY_IDLE_COMMAND is empty")?;
    tracing::info!(program = %program, "running PERRY_IDLE_COMMAND");
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_remove("PERRY_HUB_WORKER_SECRET")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start PERRY_IDLE_COMMAND ({program})"))?;
    let status = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait()).await {
        Ok(status) => status.context("waiting for PERRY_IDLE_COMMAND")?,
        Err(_) => bail!(
            "PERRY_IDLE_COMMAND did not finish within {} s",
            COMMAND_TIMEOUT.as_secs()
        ),
    };
    if !status.success() {
        bail!("PERRY_IDLE_COMMAND failed ({status})");
    }
    Ok(())
}
