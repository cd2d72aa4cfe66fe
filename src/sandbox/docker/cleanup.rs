//! Getting rid of containers: kill and force-remove (with volumes) under our own
//! deadlines, a guard that removes the container if the step future is dropped
//! (cancel, panic), the list of containers whose removal failed (the engine was down or
//! restarting), retried before every later step, and the start-up reaper for a crashed
//! worker's leftovers.

use super::engine::engine_error;
use super::spec::LABEL_WORKER;
use anyhow::{Context, Result};
use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Deadline for one kill request (cancel must take effect within 2 s).
pub(crate) const KILL_DEADLINE: Duration = Duration::from_millis(1500);
/// Deadline for one force-remove request (zombie containers can make `rm -f` hang).
pub(crate) const REMOVE_DEADLINE: Duration = Duration::from_secs(30);

/// SIGKILL the container; "not running" and "no such container" count as done.
pub(crate) async fn kill(docker: &Docker, id: &str) -> Result<()> {
    let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
    match tokio::time::timeout(KILL_DEADLINE, docker.kill_container(id, Some(options))).await {
        Err(_) => anyhow::bail!("kill of container {id} did not answer within {KILL_DEADLINE:?}"),
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if is_gone_or_stopped(&e) => Ok(()),
        Ok(Err(e)) => Err(e).with_context(|| format!("killing container {id}")),
    }
}

/// Force-removes the container and its anonymous volumes; "no such container" is success.
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match tokio::time::timeout(REMOVE_DEADLINE, docker.remove_container(id, Some(options))).await {
        Err(_) => {
            anyhow::bail!("removing container {id} did not finish within {REMOVE_DEADLINE:?}")
        }
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if is_gone(&e) => Ok(()),
        Ok(Err(e)) => Err(engine_error(&format!("removing container {id}"), None, e)),
    }
}

fn status_code(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn is_gone(err: &bollard::errors::Error) -> bool {
    status_code(err) == Some(404) || err.to_string().contains("is already in progress")
}

fn is_gone_or_stopped(err: &bollard::errors::Error) -> bool {
    is_gone(err) || status_code(err) == Some(409)
}

/// Removes every container labelled with `worker` (running or not, with volumes).
/// Returns how many were removed.
pub(crate) async fn reap(docker: &Docker, worker: &str) -> Result<usize> {
    let filters = HashMap::from([("label", vec![format!("{LABEL_WORKER}={worker}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let listed = tokio::time::timeout(
        Duration::from_secs(30),
        docker.list_containers(Some(options)),
    )
    .await
    .context("listing leftover containers timed out")?
    .context("listing leftover containers")?;
    let mut removed = 0;
    for container in listed {
        let Some(id) = container.id else { continue };
        // A label filter is exact, but re-check: never remove what is not ours.
        let ours = container
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_WORKER))
            .is_some_and(|w| w == worker);
        if ours {
            remove(docker, &id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Containers that could not be removed when their step ended (engine unreachable or
/// restarting). [`Leftovers::retry`] is started (in the background) with each new step,
/// so they disappear as soon as the engine answers again, without waiting for the next
/// start's reaper.
#[derive(Clone, Default)]
pub(crate) struct Leftovers(Arc<Mutex<Vec<String>>>);

impl Leftovers {
    pub(crate) fn add(&self, id: String) {
        if let Ok(mut ids) = self.0.lock() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }

    /// Nothing is waiting for removal.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().map_or(true, |ids| ids.is_empty())
    }

    /// Tries to remove every pending container once; keeps the ones that still fail.
    pub(crate) async fn retry(&self, docker: &Docker) {
        let pending = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for id in pending {
            let _ = kill(docker, &id).await;
            match remove(docker, &id).await {
                Ok(()) => {
                    tracing::info!(container = %id, "removed a step container left by an engine outage")
                }
                Err(e) => {
                    tracing::debug!(container = %id, "still cannot remove: {e:#}");
                    self.add(id);
                }
            }
        }
    }
}

/// Removes the container when dropped unless it was removed successfully first. Removal
/// runs on a spawned task (Drop cannot await); a container that cannot be removed then
/// goes to the [`Leftovers`]; if no runtime is left, the next start's reaper removes it.
pub(crate) struct ContainerGuard {
    docker: Docker,
    id: String,
    armed: bool,
    leftovers: Leftovers,
}

impl ContainerGuard {
    pub(crate) fn new(docker: Docker, id: String, leftovers: Leftovers) -> Self {
        ContainerGuard {
            docker,
            id,
            armed: true,
            leftovers,
        }
    }

    /// Kills and removes now; the guard is disarmed only when removal succeeded.
    pub(crate) async fn kill_and_remove(mut self) -> Result<()> {
        let _ = kill(&self.docker, &self.id).await;
        remove(&self.docker, &self.id).await?;
        self.armed = false;
        Ok(())
    }

    /// Removes now (force, with volumes); disarmed only on success.
    pub(crate) async fn remove(mut self) -> Result<()> {
        remove(&self.docker, &self.id).await?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let docker = self.docker.clone();
        let id = std::mem::take(&mut self.id);
        let leftovers = self.leftovers.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let _ = kill(&docker, &id).await;
                    if let Err(e) = remove(&docker, &id).await {
                        tracing::warn!(container = %id, "container not removed yet, retried before the next step: {e:#}");
                        leftovers.add(id);
                    }
                });
            }
            Err(_) => {
                tracing::warn!(container = %id, "no runtime to remove the container; the reaper will")
            }
        }
    }
}
