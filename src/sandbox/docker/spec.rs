//! The container a step runs in, as a Docker Engine API request body, and the check that
//! the engine really applied it.
//!
//! [`ContainerSpec`] turns a [`Step`] plus the runner's [`Hardening`] into a
//! `ContainerCreateBody` for Linux or Windows containers ([`TargetOs`]), so both bodies are
//! unit-testable here. [`verify_hardening`] compares an `inspect_container` answer with
//! what was asked for: released bollard versions do not pin the API version, so an older
//! engine may silently drop fields it does not know.

use crate::config::{DockerConfig, Isolation};
use crate::sandbox::paths::step_relative;
use crate::sandbox::Step;
use anyhow::{bail, Result};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, HostConfigIsolationEnum, Mount,
    MountType, ResourcesUlimits,
};
use std::collections::HashMap;

/// Container label: the worker that created it (to remove a crashed run's leftovers).
pub const LABEL_WORKER: &str = "perry-ship.worker";
/// Container label: the job it runs for.
pub(crate) const LABEL_JOB: &str = "perry-ship.job";
/// Container label: the step's name.
pub(crate) const LABEL_STEP: &str = "perry-ship.step";
/// Container label: the job's attempt number.
pub(crate) const LABEL_ATTEMPT: &str = "perry-ship.attempt";

/// Operating system of the containers (Linux here; Windows containers on Windows hosts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetOs {
    Linux,
    Windows,
}

impl TargetOs {
    /// The OS this worker was built for (Windows hosts run Windows containers).
    pub(crate) fn host() -> Self {
        if cfg!(windows) {
            TargetOs::Windows
        } else {
            TargetOs::Linux
        }
    }

    /// The step work dir inside the container (an anonymous volume).
    pub(crate) fn work_dir(self) -> &'static str {
        match self {
            TargetOs::Linux => "/work",
            TargetOs::Windows => "C:\\work",
        }
    }

    /// `rel` (already checked by [`step_relative`]) inside the work dir, in this OS's syntax.
    pub(crate) fn container_path(self, rel: &str) -> Result<String> {
        let parts = step_relative(rel)?;
        let sep = match self {
            TargetOs::Linux => "/",
            TargetOs::Windows => "\\",
        };
        let mut path = self.work_dir().to_string();
        for part in parts {
            path.push_str(sep);
            path.push_str(&part);
        }
        Ok(path)
    }
}

/// Resource limits and isolation applied to every container.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hardening {
    pub(crate) memory_bytes: i64,
    pub(crate) pids_limit: i64,
    pub(crate) nano_cpus: i64,
    pub(crate) isolation: Isolation,
    /// Largest file a step may write (`PERRY_DOCKER_DISK`, as `RLIMIT_FSIZE` in the
    /// container); `None`: no limit. Linux only: Windows containers have no ulimits.
    pub(crate) work_disk_bytes: Option<u64>,
}

impl Hardening {
    pub(crate) fn from_config(docker: &DockerConfig) -> Self {
        Hardening {
            memory_bytes: docker.memory_bytes,
            pids_limit: docker.pids_limit,
            nano_cpus: (docker.cpus * 1e9).round() as i64,
            isolation: docker.isolation,
            work_disk_bytes: docker.disk_bytes,
        }
    }
}

/// Everything needed to create one step's container.
#[derive(Clone, Debug)]
pub(crate) struct ContainerSpec {
    pub(crate) name: String,
    pub(crate) body: ContainerCreateBody,
}

/// Who asks for the container (labels and name).
#[derive(Clone, Debug)]
pub(crate) struct Owner<'a> {
    pub(crate) worker: &'a str,
    pub(crate) job_id: &'a str,
    pub(crate) attempt: u32,
}

impl ContainerSpec {
    pub(crate) fn new(
        step: &Step,
        owner: &Owner<'_>,
        hardening: &Hardening,
        os: TargetOs,
    ) -> Result<Self> {
        if step.argv.is_empty() {
            bail!("step {} has an empty argv", step.name);
        }
        for (key, value) in &step.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
                bail!("environment variable name {key:?} (or its value) is not valid");
            }
        }
        let labels = HashMap::from([
            (LABEL_WORKER.to_string(), owner.worker.to_string()),
            (LABEL_JOB.to_string(), owner.job_id.to_string()),
            (LABEL_STEP.to_string(), step.name.clone()),
            (LABEL_ATTEMPT.to_string(), owner.attempt.to_string()),
        ]);
        let work_volume = Mount {
            target: Some(os.work_dir().to_string()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        };
        let host_config = match os {
            TargetOs::Linux => HostConfig {
                network_mode: Some("none".into()),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                pids_limit: Some(hardening.pids_limit),
                memory: Some(hardening.memory_bytes),
                memory_swap: Some(hardening.memory_bytes),
                nano_cpus: Some(hardening.nano_cpus),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_string(),
                    format!(
                        "rw,nosuid,nodev,size={}",
                        (hardening.memory_bytes / 2).max(64 << 20)
                    ),
                )])),
                mounts: Some(vec![work_volume]),
                ulimits: hardening.work_disk_bytes.map(file_size_limit),
                auto_remove: Some(false),
                privileged: Some(false),
                ..Default::default()
            },
            // Windows containers support neither read-only roots, capabilities,
            // no-new-privileges, pids limits nor tmpfs; isolation is theirs instead.
            TargetOs::Windows => HostConfig {
                network_mode: Some("none".into()),
                memory: Some(hardening.memory_bytes),
                nano_cpus: Some(hardening.nano_cpus),
                isolation: Some(match hardening.isolation {
                    Isolation::Process => HostConfigIsolationEnum::PROCESS,
                    Isolation::HyperV => HostConfigIsolationEnum::HYPERV,
                }),
                mounts: Some(vec![work_volume]),
                auto_remove: Some(false),
                ..Default::default()
            },
        };
        let body = ContainerCreateBody {
            image: Some(step.image.clone()),
            cmd: Some(command_line(&step.argv, os)),
            env: Some(step.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: Some(os.container_path(&step.cwd)?),
            labels: Some(labels),
            attach_stdin: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            open_stdin: Some(false),
            network_disabled: Some(true),
            host_config: Some(host_config),
            ..Default::default()
        };
        Ok(ContainerSpec {
            name: container_name(owner, &step.name),
            body,
        })
    }
}

/// `RLIMIT_FSIZE` of `size` bytes (soft and hard): a step cannot write, extend or
/// truncate-grow any file past it ("File too large"). A size-limited *volume* is not used:
/// a tmpfs volume is remounted empty between the archive copy-in of the stopped container
/// and its start, and the `local` driver's `size` option needs XFS project quotas.
fn file_size_limit(size: u64) -> Vec<ResourcesUlimits> {
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    vec![ResourcesUlimits {
        name: Some("fsize".into()),
        soft: Some(size),
        hard: Some(size),
    }]
}

/// argv as the container's Cmd. Windows cannot start `.cmd`/`.bat` files directly, so only
/// those are wrapped in `cmd /c`; everything else runs as given, never through a shell.
pub(crate) fn command_line(argv: &[String], os: TargetOs) -> Vec<String> {
    let is_batch = |p: &str| {
        let lower = p.to_ascii_lowercase();
        lower.ends_with(".cmd") || lower.ends_with(".bat")
    };
    match os {
        TargetOs::Windows if argv.first().is_some_and(|p| is_batch(p)) => {
            let mut wrapped = vec!["cmd".to_string(), "/c".to_string()];
            wrapped.extend(argv.iter().cloned());
            wrapped
        }
        _ => argv.to_vec(),
    }
}

/// `perry-<job>-a<attempt>-<step>-<8 hex>`, restricted to the characters Docker allows.
pub(crate) fn container_name(owner: &Owner<'_>, step: &str) -> String {
    let clean = |s: &str, max: usize| -> String {
        let mut out: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(max)
            .collect();
        if out.is_empty() {
            out.push('x');
        }
        out
    };
    let short = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "perry-{}-a{}-{}-{}",
        clean(owner.job_id, 48),
        owner.attempt,
        clean(step, 24),
        &short[..8]
    )
}

/// Refuses a container whose inspected settings differ from `spec`'s hardening.
pub(crate) fn verify_hardening(
    spec: &ContainerSpec,
    inspected: &ContainerInspectResponse,
    os: TargetOs,
) -> Result<()> {
    let Some(want) = spec.body.host_config.as_ref() else {
        bail!("spec has no host config")
    };
    let Some(got) = inspected.host_config.as_ref() else {
        bail!("the engine returned no HostConfig")
    };
    let mut problems: Vec<String> = Vec::new();
    let mut check = |what: &str, ok: bool, seen: String| {
        if !ok {
            problems.push(format!("{what} (engine reports {seen})"));
        }
    };

    check(
        "NetworkMode none",
        got.network_mode.as_deref() == Some("none"),
        format!("{:?}", got.network_mode),
    );
    check(
        "Memory",
        got.memory == want.memory,
        format!("{:?}", got.memory),
    );
    check(
        "NanoCpus",
        got.nano_cpus == want.nano_cpus,
        format!("{:?}", got.nano_cpus),
    );
    check(
        "AutoRemove off",
        got.auto_remove != Some(true),
        format!("{:?}", got.auto_remove),
    );
    check(
        "not privileged",
        got.privileged != Some(true),
        format!("{:?}", got.privileged),
    );
    let work_volume = inspected.mounts.iter().flatten().any(|m| {
        m.destination.as_deref() == Some(os.work_dir()) && m.typ.as_deref() == Some("volume")
    });
    check(
        "anonymous volume at the work dir",
        work_volume,
        format!("{:?}", inspected.mounts),
    );
    match os {
        TargetOs::Linux => {
            let cap_drop_all = got
                .cap_drop
                .iter()
                .flatten()
                .any(|c| c.eq_ignore_ascii_case("ALL"));
            check("CapDrop ALL", cap_drop_all, format!("{:?}", got.cap_drop));
            let nnp = got
                .security_opt
                .iter()
                .flatten()
                .any(|o| o == "no-new-privileges" || o == "no-new-privileges:true");
            check(
                "SecurityOpt no-new-privileges",
                nnp,
                format!("{:?}", got.security_opt),
            );
            check(
                "PidsLimit",
                got.pids_limit == want.pids_limit,
                format!("{:?}", got.pids_limit),
            );
            check(
                "ReadonlyRootfs",
                got.readonly_rootfs == Some(true),
                format!("{:?}", got.readonly_rootfs),
            );
            check(
                "Ulimits (file size)",
                got.ulimits.as_ref().unwrap_or(&Vec::new())
                    == want.ulimits.as_ref().unwrap_or(&Vec::new()),
                format!("{:?}", got.ulimits),
            );
            check(
                "no added capabilities",
                got.cap_add.as_ref().is_none_or(Vec::is_empty),
                format!("{:?}", got.cap_add),
            );
        }
        TargetOs::Windows => {
            check(
                "Isolation",
                got.isolation == want.isolation,
                format!("{:?}", got.isolation),
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "hardening not applied by the engine: {}",
            problems.join("; ")
        )
    }
}

#[cfg(test)]
mod tests;
