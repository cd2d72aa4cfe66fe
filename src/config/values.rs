//! How one variable's text becomes a value: URLs, booleans, bounded integers, durations,
//! sizes (`512m`), CPU counts, paths that must exist, timestamp server lists, and the host
//! name used as the default worker name. Every error names the variable.

use super::{bad, ConfigError};
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn check_ws_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    match parsed.scheme() {
        "ws" | "wss" => {}
        other => return Err(format!("scheme {other:?} is not ws:// or wss://")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

pub(super) fn http_url(
    var: &'static str,
    value: Option<String>,
    default: String,
) -> Result<String, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    let parsed = url::Url::parse(&v).map_err(|e| bad(var, format!("{v:?} is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(var, "must be an http:// or https:// URL"));
    }
    Ok(v.trim_end_matches('/').to_string())
}

/// `PERRY_TIMESTAMP_URLS`: URLs separated by commas/whitespace, or `none` for no fallback.
pub(super) fn timestamp_urls(
    value: Option<String>,
    default: Vec<String>,
) -> Result<Vec<String>, ConfigError> {
    use crate::sign::timestamp_servers::{parse_url_list, TimestampChoice};
    match value {
        None => Ok(default),
        Some(v) => {
            match parse_url_list(&v).map_err(|p| bad("PERRY_TIMESTAMP_URLS", p.to_string()))? {
                TimestampChoice::Off => Ok(Vec::new()),
                TimestampChoice::Servers(urls) => Ok(urls),
            }
        }
    }
}

/// An optional path that must exist when given (a folder or a file).
pub(super) fn existing_path(
    var: &'static str,
    value: Option<String>,
) -> Result<Option<PathBuf>, ConfigError> {
    let Some(v) = value else { return Ok(None) };
    let path = PathBuf::from(&v);
    if !path.exists() {
        return Err(bad(var, format!("{v:?} does not exist")));
    }
    Ok(Some(path))
}

pub(super) fn parse_bool(
    var: &'static str,
    value: Option<String>,
    default: bool,
) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(bad(var, format!("{other:?} is not a boolean (true/false)"))),
    }
}

pub(super) fn parse_int(
    var: &'static str,
    value: Option<String>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    let n: u64 = v
        .parse()
        .map_err(|_| bad(var, format!("{v:?} is not a whole number")))?;
    if n < min || n > max {
        return Err(bad(var, format!("{n} is outside {min}..={max}")));
    }
    Ok(n)
}

pub(super) fn parse_secs(
    var: &'static str,
    value: Option<String>,
    default: u64,
) -> Result<Duration, ConfigError> {
    let Some(v) = value else {
        return Ok(Duration::from_secs(default));
    };
    let n: u64 = v
        .parse()
        .map_err(|_| bad(var, format!("{v:?} is not a number of seconds")))?;
    if n == 0 || n > 7 * 24 * 3600 {
        return Err(bad(var, format!("{n} seconds is outside 1..=604800")));
    }
    Ok(Duration::from_secs(n))
}

/// Parses `512m`, `4g`, `1048576`, `2GiB`, … into bytes.
pub(crate) fn parse_size_str(v: &str) -> Option<u64> {
    let s = v.trim().to_ascii_lowercase();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub(super) fn parse_size(
    var: &'static str,
    value: Option<String>,
    default: u64,
) -> Result<u64, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    parse_size_str(&v).ok_or_else(|| bad(var, format!("{v:?} is not a size like 512m or 4g")))
}

pub(super) fn parse_cpus(value: Option<String>) -> Result<f64, ConfigError> {
    let Some(v) = value else { return Ok(2.0) };
    let n: f64 = v.parse().map_err(|_| {
        bad(
            "PERRY_DOCKER_CPUS",
            format!("{v:?} is not a number like 1.5"),
        )
    })?;
    if !(0.1..=256.0).contains(&n) {
        return Err(bad(
            "PERRY_DOCKER_CPUS",
            format!("{n} is outside 0.1..=256"),
        ));
    }
    Ok(n)
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "perry-windows-worker".into())
}
