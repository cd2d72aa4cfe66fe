//! The parts a [`super::Config`] is made of: the Docker section, the limits on untrusted
//! trees and log lines, the hub link's timings, the signing services' endpoints, and the
//! small enums the values parse into. `config.rs` reads them from the environment.

use std::time::Duration;

/// Windows container isolation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// `process`: containers share the host kernel (the default).
    Process,
    /// `hyperv`: each container runs in its own lightweight VM.
    HyperV,
}

/// `PERRY_LOG_FORMAT`: how the worker's own log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line.
    Json,
}

/// Base URLs of the cloud signing services. Real services by default; tests point them at
/// local stand-ins on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct SigningEndpoints {
    /// `PERRY_GCLOUD_KMS_URL`, default `https://cloudkms.googleapis.com`.
    pub gcloud_kms: String,
    /// `PERRY_GCLOUD_TOKEN_URL`, default `https://oauth2.googleapis.com/token`.
    pub gcloud_token: String,
    /// `PERRY_AZURE_AUTHORITY_URL`, default `https://login.microsoftonline.com`.
    pub azure_authority: String,
    /// `PERRY_TIMESTAMP_URLS`: RFC 3161 servers tried after the job's own
    /// `windows_timestamp_url` ones; default: a few well-known public servers, `none`: none.
    pub timestamp_fallbacks: Vec<String>,
}

impl Default for SigningEndpoints {
    fn default() -> Self {
        SigningEndpoints {
            gcloud_kms: "https://cloudkms.googleapis.com".into(),
            gcloud_token: "https://oauth2.googleapis.com/token".into(),
            azure_authority: "https://login.microsoftonline.com".into(),
            timestamp_fallbacks: crate::sign::timestamp_servers::DEFAULT_FALLBACKS
                .iter()
                .map(|u| u.to_string())
                .collect(),
        }
    }
}

/// Limits applied to an untrusted project tarball (and to archives copied out of containers).
#[derive(Clone, Copy, Debug)]
pub struct ExtractLimits {
    /// `PERRY_MAX_TARBALL_ENTRIES`: entries per tree (default 100 000).
    pub max_entries: u64,
    /// `PERRY_MAX_UNPACKED_SIZE`: bytes of file content per tree (default 4 GiB).
    pub max_unpacked_bytes: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_entries: 100_000,
            max_unpacked_bytes: 4 << 30,
        }
    }
}

/// Per-job limits on log lines sent to the hub.
#[derive(Clone, Copy, Debug)]
pub struct LogLimits {
    /// Lines forwarded per job before the rest are counted and dropped.
    pub max_lines: u64,
    /// Characters kept per line; longer lines are cut and marked.
    pub(crate) max_line_len: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_lines: 20_000,
            max_line_len: 4096,
        }
    }
}

/// Timings of the hub link. Production values by default; tests shorten them.
#[derive(Clone, Copy, Debug)]
pub struct LinkTimings {
    /// WebSocket Ping interval, idle and busy.
    pub ping_interval: Duration,
    /// Nothing received (pongs included) for this long: the link is dead.
    pub silence_timeout: Duration,
    /// First reconnect window; doubles per failed attempt.
    pub backoff_initial: Duration,
    /// Largest reconnect window.
    pub backoff_max: Duration,
    /// A connection up this long resets the backoff window.
    pub healthy_after: Duration,
    /// Minimum wait after the hub answered `AUTH_FAILED`.
    pub auth_failed_backoff: Duration,
}

impl Default for LinkTimings {
    fn default() -> Self {
        LinkTimings {
            ping_interval: Duration::from_secs(30),
            silence_timeout: Duration::from_secs(90),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(64),
            healthy_after: Duration::from_secs(60),
            auth_failed_backoff: Duration::from_secs(300),
        }
    }
}

/// Container resource limits and hardening knobs.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// `PERRY_DOCKER_ENABLED`: compile and package in disposable containers.
    pub enabled: bool,
    /// `PERRY_DOCKER_IMAGE`: the toolchain image (default: [`default_image`]).
    pub image: String,
    /// `PERRY_DOCKER_ISOLATION`: Windows containers only.
    pub(crate) isolation: Isolation,
    /// `PERRY_DOCKER_TIMEOUT`: time per container step (copy-in to copy-out), default 600 s.
    pub step_timeout: Duration,
    /// `PERRY_DOCKER_MEMORY`: memory limit per container, in bytes (default 4 GiB).
    pub(crate) memory_bytes: i64,
    /// `PERRY_DOCKER_PIDS`: process limit per container (default 1024).
    pub(crate) pids_limit: i64,
    /// `PERRY_DOCKER_CPUS`: CPU quota per container, in CPUs (default 2).
    pub(crate) cpus: f64,
    /// `PERRY_DOCKER_DISK`: size of the container's work dir; unset: not limited.
    pub(crate) disk_bytes: Option<u64>,
}

/// Default toolchain image for the host OS (built from `images/`).
pub fn default_image() -> &'static str {
    if cfg!(windows) {
        "perry-ship-windows/toolchain-windows:latest"
    } else {
        "perry-ship-windows/toolchain-linux:latest"
    }
}
