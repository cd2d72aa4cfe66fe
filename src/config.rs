//! Worker configuration: every `PERRY_*` environment variable, parsed and validated once.
//!
//! `Config::from_env` either returns a complete configuration or a `ConfigError` that
//! names the variable and says what is wrong with its value, so `main` can print one clear
//! line and exit non-zero. Nothing else in the crate reads the environment.

mod fleet;
mod parts;
mod values;

use values::{
    check_ws_url, existing_path, hostname, http_url, parse_bool, parse_cpus, parse_int, parse_secs,
    parse_size, parse_size_str, timestamp_urls,
};

pub(crate) use fleet::{AzureVmSettings, FleetConfig, IdleAction};
pub use parts::{
    default_image, DockerConfig, ExtractLimits, LinkTimings, LogLimits, SigningEndpoints,
};
pub(crate) use parts::{Isolation, LogFormat};

use crate::isolation::JobProcessLimits;
use crate::package::nsis_compression::NsisCompression;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A bad value in one environment variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub(crate) struct ConfigError {
    /// The variable's name, e.g. `PERRY_DOCKER_TIMEOUT`.
    pub(crate) var: &'static str,
    /// What is wrong with its value, in one phrase.
    pub(crate) problem: String,
}

fn bad(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// The worker's whole configuration, read from the environment by `Config::from_env`.
#[derive(Clone, Debug)]
pub struct Config {
    /// `PERRY_HUB_URL`: the hub's WebSocket URL (`ws://` or `wss://`).
    pub hub_url: String,
    /// `PERRY_HUB_WORKER_SECRET`: sent as `secret` in `worker_hello`; never logged.
    pub(crate) worker_secret: Option<String>,
    /// `PERRY_WORKER_NAME`: display name (default: the hostname), at most 100 printable characters.
    pub worker_name: String,
    /// `PERRY_WORKER_CAPABILITIES`: `windows` (compile) and/or `windows-sign`.
    pub(crate) capabilities: Vec<String>,
    /// `PERRY_BUILD_PERRY_BINARY`: the compiler (inside the image when Docker is on).
    pub perry_binary: String,
    /// `PERRY_BUILD_WINDOWS_SDK_PATH`: Windows SDK folder or `signtool.exe`; must exist when set.
    pub(crate) windows_sdk_path: Option<PathBuf>,
    /// `PERRY_BUILD_NSIS_PATH`: the makensis binary (default `makensis` on the `PATH`).
    pub(crate) nsis_path: Option<PathBuf>,
    /// `PERRY_NSIS_COMPRESSION`: how the NSIS installer compresses its payload.
    pub(crate) nsis_compression: NsisCompression,
    /// Container settings (`PERRY_DOCKER_*`).
    pub docker: DockerConfig,
    /// `PERRY_MAX_CONCURRENT_BUILDS`: jobs run at once (1–64).
    pub(crate) max_concurrent: usize,
    /// `PERRY_WORK_DIR`: absolute folder holding one work folder per job.
    pub work_dir: PathBuf,
    /// `PERRY_JOB_TIMEOUT`: time for a whole job (default 3600 s).
    pub(crate) job_timeout: Duration,
    /// `PERRY_DRAIN_TIMEOUT`: on shutdown, how long running jobs may still take (default 600 s).
    pub(crate) drain_timeout: Duration,
    /// `PERRY_MIN_FREE_DISK`: bytes the work dir needs free for a job to start (default 5 GiB).
    pub(crate) min_free_disk: u64,
    /// `PERRY_MAX_ARTIFACT_SIZE`: largest artifact uploaded, in bytes (default 300 MiB).
    pub(crate) max_artifact_bytes: u64,
    /// Limits of the project tarball and of every copied tree.
    pub(crate) extract_limits: ExtractLimits,
    /// Per-job limits of the log lines sent to the hub.
    pub(crate) log_limits: LogLimits,
    /// `PERRY_LOG_FORMAT`: text or JSON log lines.
    pub(crate) log_format: LogFormat,
    /// `PERRY_LOG`: the log filter (default `info`).
    pub(crate) log_filter: String,
    /// `PERRY_METRICS_ADDR`: where the status server listens; None: no server.
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Base URLs of the signing services and timestamp fallbacks.
    pub signing: SigningEndpoints,
    /// Origins a job's tarball and upload URLs may use: the hub's own (its WebSocket URL
    /// as http/https) plus `PERRY_TRANSFER_ORIGINS`.
    pub(crate) transfer_origins: Vec<url::Origin>,
    /// `PERRY_MAX_ASSIGN_FRAME`: largest `job_assign` frame taken; bigger ones are refused.
    pub(crate) max_assign_frame: usize,
    /// `PERRY_MAX_QUEUED_JOBS`: assignments waiting for a slot; more are refused.
    pub(crate) max_queued_jobs: usize,
    /// Idle timeout and action, job limit, pause control, Azure VM access.
    pub(crate) fleet: FleetConfig,
    /// `PERRY_PROVENANCE_UPLOAD`: upload each artifact's build record before the artifact.
    pub(crate) provenance_upload: bool,
    /// Hub link timings (not read from the environment).
    pub link: LinkTimings,
    /// Limits of each job's child process (`PERRY_JOB_MEMORY`, `PERRY_JOB_CPU_TIME`,
    /// `PERRY_JOB_MAX_FILE`, `PERRY_JOB_OPEN_FILES`).
    pub(crate) job_limits: JobProcessLimits,
    /// The `PERRY_*` variables this configuration was read from (the job process reads
    /// them again, secrets left out).
    pub(crate) settings: Vec<(String, String)>,
}

impl Config {
    /// Reads the process environment.
    pub(crate) fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get`, so tests can pass a map.
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // Every `PERRY_*` setting that had a value, for the job process to parse again.
        let settings = std::cell::RefCell::new(Vec::<(String, String)>::new());
        let get = |name: &str| {
            let value = get(name);
            if let (true, Some(v)) = (name.starts_with("PERRY_"), &value) {
                settings.borrow_mut().push((name.to_string(), v.clone()));
            }
            value
        };
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let hub_url = var("PERRY_HUB_URL").unwrap_or_else(|| "wss://hub.perryts.com/ws".into());
        check_ws_url(&hub_url).map_err(|p| bad("PERRY_HUB_URL", p))?;

        let worker_name = match var("PERRY_WORKER_NAME") {
            Some(n) => n,
            None => hostname(),
        };
        if worker_name.len() > 100 || worker_name.chars().any(char::is_control) {
            return Err(bad(
                "PERRY_WORKER_NAME",
                "must be at most 100 printable characters",
            ));
        }

        let capabilities: Vec<String> = var("PERRY_WORKER_CAPABILITIES")
            .unwrap_or_else(|| "windows,windows-sign".into())
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        if capabilities.is_empty() {
            return Err(bad("PERRY_WORKER_CAPABILITIES", "lists no capability"));
        }
        if let Some(c) = capabilities
            .iter()
            .find(|c| *c != "windows" && *c != "windows-sign")
        {
            return Err(bad(
                "PERRY_WORKER_CAPABILITIES",
                format!("unknown capability {c:?} (expected windows and/or windows-sign)"),
            ));
        }

        // Read by the package writers (crate::package::source_date); checked here so a bad
        // value stops the worker instead of being ignored.
        if let Some(v) = var(crate::package::source_date::SOURCE_DATE_EPOCH) {
            crate::package::source_date::parse_source_date(&v)
                .map_err(|p| bad(crate::package::source_date::SOURCE_DATE_EPOCH, p))?;
        }

        let docker = DockerConfig {
            enabled: parse_bool("PERRY_DOCKER_ENABLED", var("PERRY_DOCKER_ENABLED"), false)?,
            image: var("PERRY_DOCKER_IMAGE").unwrap_or_else(|| default_image().into()),
            isolation: match var("PERRY_DOCKER_ISOLATION").as_deref() {
                None | Some("process") => Isolation::Process,
                Some("hyperv") => Isolation::HyperV,
                Some(other) => {
                    return Err(bad(
                        "PERRY_DOCKER_ISOLATION",
                        format!("{other:?} is not one of process, hyperv"),
                    ))
                }
            },
            step_timeout: parse_secs("PERRY_DOCKER_TIMEOUT", var("PERRY_DOCKER_TIMEOUT"), 600)?,
            memory_bytes: parse_size("PERRY_DOCKER_MEMORY", var("PERRY_DOCKER_MEMORY"), 4 << 30)?
                as i64,
            pids_limit: parse_int(
                "PERRY_DOCKER_PIDS",
                var("PERRY_DOCKER_PIDS"),
                1024,
                16,
                1 << 22,
            )? as i64,
            cpus: parse_cpus(var("PERRY_DOCKER_CPUS"))?,
            disk_bytes: match var("PERRY_DOCKER_DISK") {
                None => None,
                Some(v) => match parse_size_str(&v) {
                    Some(n) if n >= 1 << 20 => Some(n),
                    _ => {
                        return Err(bad(
                            "PERRY_DOCKER_DISK",
                            format!("{v:?} is not a size of at least 1m (like 2g)"),
                        ))
                    }
                },
            },
        };

        let work_dir = var("PERRY_WORK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("perry-ship-windows"));
        if !work_dir.is_absolute() {
            return Err(bad("PERRY_WORK_DIR", "must be an absolute path"));
        }

        let log_format = match var("PERRY_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "PERRY_LOG_FORMAT",
                    format!("{other:?} is not one of text, json"),
                ))
            }
        };

        let metrics_addr = match var("PERRY_METRICS_ADDR") {
            None => None,
            Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
                bad(
                    "PERRY_METRICS_ADDR",
                    format!("{a:?} is not an address like 127.0.0.1:9184"),
                )
            })?),
        };

        let mut transfer_origins =
            vec![crate::hub::transfer::hub_origin(&hub_url).map_err(|p| bad("PERRY_HUB_URL", p))?];
        transfer_origins.extend(
            crate::hub::transfer::parse_origin_list(
                &var("PERRY_TRANSFER_ORIGINS").unwrap_or_default(),
            )
            .map_err(|p| bad("PERRY_TRANSFER_ORIGINS", p))?,
        );

        let defaults = SigningEndpoints::default();
        let signing = SigningEndpoints {
            gcloud_kms: http_url(
                "PERRY_GCLOUD_KMS_URL",
                var("PERRY_GCLOUD_KMS_URL"),
                defaults.gcloud_kms,
            )?,
            gcloud_token: http_url(
                "PERRY_GCLOUD_TOKEN_URL",
                var("PERRY_GCLOUD_TOKEN_URL"),
                defaults.gcloud_token,
            )?,
            azure_authority: http_url(
                "PERRY_AZURE_AUTHORITY_URL",
                var("PERRY_AZURE_AUTHORITY_URL"),
                defaults.azure_authority,
            )?,
            timestamp_fallbacks: timestamp_urls(
                var("PERRY_TIMESTAMP_URLS"),
                defaults.timestamp_fallbacks,
            )?,
        };

        let fleet = fleet::parse_fleet(&var)?;

        Ok(Config {
            hub_url,
            worker_secret: var("PERRY_HUB_WORKER_SECRET"),
            worker_name,
            capabilities,
            perry_binary: var("PERRY_BUILD_PERRY_BINARY").unwrap_or_else(|| "perry".into()),
            windows_sdk_path: existing_path(
                "PERRY_BUILD_WINDOWS_SDK_PATH",
                var("PERRY_BUILD_WINDOWS_SDK_PATH"),
            )?,
            nsis_path: var("PERRY_BUILD_NSIS_PATH").map(PathBuf::from),
            nsis_compression: match var("PERRY_NSIS_COMPRESSION") {
                None => NsisCompression::default(),
                Some(v) => {
                    NsisCompression::parse(&v).map_err(|p| bad("PERRY_NSIS_COMPRESSION", p))?
                }
            },
            docker,
            max_concurrent: parse_int(
                "PERRY_MAX_CONCURRENT_BUILDS",
                var("PERRY_MAX_CONCURRENT_BUILDS"),
                1,
                1,
                64,
            )? as usize,
            work_dir,
            job_timeout: parse_secs("PERRY_JOB_TIMEOUT", var("PERRY_JOB_TIMEOUT"), 3600)?,
            drain_timeout: parse_secs("PERRY_DRAIN_TIMEOUT", var("PERRY_DRAIN_TIMEOUT"), 600)?,
            min_free_disk: parse_size("PERRY_MIN_FREE_DISK", var("PERRY_MIN_FREE_DISK"), 5 << 30)?,
            max_artifact_bytes: parse_size(
                "PERRY_MAX_ARTIFACT_SIZE",
                var("PERRY_MAX_ARTIFACT_SIZE"),
                300 << 20,
            )?,
            extract_limits: ExtractLimits {
                max_entries: parse_int(
                    "PERRY_MAX_TARBALL_ENTRIES",
                    var("PERRY_MAX_TARBALL_ENTRIES"),
                    100_000,
                    1,
                    u64::MAX,
                )?,
                max_unpacked_bytes: parse_size(
                    "PERRY_MAX_UNPACKED_SIZE",
                    var("PERRY_MAX_UNPACKED_SIZE"),
                    4 << 30,
                )?,
            },
            log_limits: LogLimits {
                max_lines: parse_int(
                    "PERRY_LOG_MAX_LINES",
                    var("PERRY_LOG_MAX_LINES"),
                    20_000,
                    1,
                    u64::MAX,
                )?,
                max_line_len: LogLimits::default().max_line_len,
            },
            log_format,
            log_filter: var("PERRY_LOG").unwrap_or_else(|| "info".into()),
            metrics_addr,
            signing,
            transfer_origins,
            max_assign_frame: parse_size(
                "PERRY_MAX_ASSIGN_FRAME",
                var("PERRY_MAX_ASSIGN_FRAME"),
                4 << 20,
            )
            .and_then(|n| {
                if (64 << 10..=256 << 20).contains(&n) {
                    Ok(n as usize)
                } else {
                    Err(bad(
                        "PERRY_MAX_ASSIGN_FRAME",
                        "must be between 64k and 256m",
                    ))
                }
            })?,
            max_queued_jobs: parse_int(
                "PERRY_MAX_QUEUED_JOBS",
                var("PERRY_MAX_QUEUED_JOBS"),
                16,
                1,
                4096,
            )? as usize,
            fleet,
            provenance_upload: parse_bool(
                "PERRY_PROVENANCE_UPLOAD",
                var("PERRY_PROVENANCE_UPLOAD"),
                false,
            )?,
            link: LinkTimings::default(),
            job_limits: JobProcessLimits {
                memory_bytes: parse_size(
                    "PERRY_JOB_MEMORY",
                    var("PERRY_JOB_MEMORY"),
                    JobProcessLimits::default().memory_bytes,
                )
                .and_then(|n| {
                    if n >= 64 << 20 {
                        Ok(n)
                    } else {
                        Err(bad("PERRY_JOB_MEMORY", "must be at least 64m"))
                    }
                })?,
                cpu_time: parse_secs(
                    "PERRY_JOB_CPU_TIME",
                    var("PERRY_JOB_CPU_TIME"),
                    JobProcessLimits::default().cpu_time.as_secs(),
                )?,
                max_file_bytes: parse_size(
                    "PERRY_JOB_MAX_FILE",
                    var("PERRY_JOB_MAX_FILE"),
                    JobProcessLimits::default().max_file_bytes,
                )?,
                open_files: parse_int(
                    "PERRY_JOB_OPEN_FILES",
                    var("PERRY_JOB_OPEN_FILES"),
                    JobProcessLimits::default().open_files,
                    64,
                    1 << 20,
                )?,
            },
            settings: settings.take(),
        })
    }

    /// A configuration for tests and local builds: defaults plus the given overrides.
    pub fn for_tests(overrides: &[(&str, &str)]) -> Config {
        let map: std::collections::HashMap<String, String> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned()).expect("test configuration is valid")
    }

    /// Whether this worker compiles projects (capability `windows`), not only signs them.
    pub(crate) fn can_compile(&self) -> bool {
        self.capabilities.iter().any(|c| c == "windows")
    }
}

#[cfg(test)]
mod tests;
