//! Parsing and validation of every variable, through [`Config::for_tests`].

use super::*;

fn err(pairs: &[(&str, &str)]) -> ConfigError {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).unwrap_err()
}

#[test]
fn defaults_are_valid() {
    let c = Config::for_tests(&[]);
    assert_eq!(c.hub_url, "wss://hub.perryts.com/ws");
    assert_eq!(c.max_concurrent, 1);
    assert_eq!(c.docker.step_timeout, Duration::from_secs(600));
    assert!(!c.docker.enabled);
    assert_eq!(c.capabilities, vec!["windows", "windows-sign"]);
    assert!(!c.provenance_upload);
    let on = Config::for_tests(&[
        ("PERRY_PROVENANCE_UPLOAD", "true"),
        ("SOURCE_DATE_EPOCH", "1700000000"),
    ]);
    assert!(on.provenance_upload);
}

#[test]
fn bad_values_name_their_variable() {
    assert_eq!(
        err(&[("PERRY_DOCKER_TIMEOUT", "abc")]).var,
        "PERRY_DOCKER_TIMEOUT"
    );
    assert_eq!(err(&[("PERRY_HUB_URL", "http://x")]).var, "PERRY_HUB_URL");
    assert_eq!(
        err(&[("PERRY_DOCKER_ENABLED", "maybe")]).var,
        "PERRY_DOCKER_ENABLED"
    );
    assert_eq!(
        err(&[("PERRY_MAX_CONCURRENT_BUILDS", "0")]).var,
        "PERRY_MAX_CONCURRENT_BUILDS"
    );
    assert_eq!(
        err(&[("PERRY_DOCKER_MEMORY", "lots")]).var,
        "PERRY_DOCKER_MEMORY"
    );
    assert_eq!(err(&[("PERRY_LOG_FORMAT", "xml")]).var, "PERRY_LOG_FORMAT");
    assert_eq!(
        err(&[("PERRY_PROVENANCE_UPLOAD", "sometimes")]).var,
        "PERRY_PROVENANCE_UPLOAD"
    );
    assert_eq!(
        err(&[("SOURCE_DATE_EPOCH", "yesterday")]).var,
        "SOURCE_DATE_EPOCH"
    );
    assert_eq!(err(&[("SOURCE_DATE_EPOCH", "12")]).var, "SOURCE_DATE_EPOCH");
    assert_eq!(
        err(&[("PERRY_WORK_DIR", "relative/dir")]).var,
        "PERRY_WORK_DIR"
    );
    assert_eq!(
        err(&[("PERRY_WORKER_CAPABILITIES", "linux")]).var,
        "PERRY_WORKER_CAPABILITIES"
    );
    assert_eq!(
        err(&[("PERRY_BUILD_WINDOWS_SDK_PATH", "/no/such/Windows Kits")]).var,
        "PERRY_BUILD_WINDOWS_SDK_PATH"
    );
    assert_eq!(
        err(&[("PERRY_TRANSFER_ORIGINS", "https://cdn.example/path")]).var,
        "PERRY_TRANSFER_ORIGINS"
    );
    assert_eq!(
        err(&[("PERRY_MAX_ASSIGN_FRAME", "1k")]).var,
        "PERRY_MAX_ASSIGN_FRAME"
    );
    assert_eq!(
        err(&[("PERRY_MAX_QUEUED_JOBS", "0")]).var,
        "PERRY_MAX_QUEUED_JOBS"
    );
}

#[test]
fn timestamp_fallbacks_parse() {
    let c = Config::for_tests(&[]);
    assert_eq!(
        c.signing.timestamp_fallbacks[0],
        "http://timestamp.digicert.com"
    );
    let c = Config::for_tests(&[("PERRY_TIMESTAMP_URLS", "http://a.example, http://b.example")]);
    assert_eq!(
        c.signing.timestamp_fallbacks,
        ["http://a.example", "http://b.example"]
    );
    let c = Config::for_tests(&[("PERRY_TIMESTAMP_URLS", "none")]);
    assert!(c.signing.timestamp_fallbacks.is_empty());
    assert_eq!(
        err(&[("PERRY_TIMESTAMP_URLS", "ftp://x")]).var,
        "PERRY_TIMESTAMP_URLS"
    );
}

#[test]
fn nsis_compression_is_validated() {
    assert_eq!(
        Config::for_tests(&[]).nsis_compression,
        NsisCompression::Auto
    );
    for (value, expected) in [
        ("auto", NsisCompression::Auto),
        ("lzma-solid", NsisCompression::LzmaSolid),
        ("bzip2", NsisCompression::Bzip2),
        ("zlib", NsisCompression::Zlib),
        (" STORE ", NsisCompression::Store),
    ] {
        let c = Config::for_tests(&[("PERRY_NSIS_COMPRESSION", value)]);
        assert_eq!(c.nsis_compression, expected, "{value}");
    }
    let e = err(&[("PERRY_NSIS_COMPRESSION", "lzma")]);
    assert_eq!(e.var, "PERRY_NSIS_COMPRESSION");
    assert_eq!(
        e.to_string(),
        "PERRY_NSIS_COMPRESSION: \"lzma\" is not one of auto, lzma-solid, bzip2, zlib, store"
    );
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size_str("512m"), Some(512 << 20));
    assert_eq!(parse_size_str("4G"), Some(4 << 30));
    assert_eq!(parse_size_str("1024"), Some(1024));
    assert_eq!(parse_size_str("x"), None);
}
