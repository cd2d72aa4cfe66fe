//! Benchmark: signing a 100 MiB PE (a mingw exe with a 100 MiB overlay, like an NSIS
//! installer) with our signer vs `osslsigncode sign`, same PFX key, same local TSA, same run.
//! Each signer runs in a child process so its wall time and peak RSS (wait4 ru_maxrss) are
//! measured alone. Prints a table and writes `target/bench/signing.json`.
//!
//! `cargo bench --bench signing` (needs openssl, osslsigncode, x86_64-w64-mingw32-gcc).
// Linux-host benchmark (Docker engine, /proc, rusage): empty on other targets, so that
// `cargo clippy --all-targets --target x86_64-pc-windows-gnu` checks the rest.
#![cfg_attr(not(unix), no_main)]
#![cfg(unix)]

use perry_test_support::sign_fixtures as fixtures;
use perry_test_support::sign_servers as servers;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SIZE_MIB: usize = 100;
const RUNS: usize = 3;
const PASSWORD_ENV: &str = "PERRY_BENCH_PFX_PASSWORD";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--sign-child") {
        return sign_child(Path::new(&args[2]), Path::new(&args[3]), &args[4]);
    }
    if !fixtures::require_tools(&["openssl", "osslsigncode", "x86_64-w64-mingw32-gcc"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = fixtures::Pki::create(&tmp.path().join("pki"));
    let password = "bench-pfx-password";
    let pfx = pki.pfx("rsa", "rsa.key", "rsa.crt", password, &[]);
    let pfx_path = tmp.path().join("key.pfx");
    std::fs::write(&pfx_path, &pfx).unwrap();
    let pass_file = tmp.path().join("pass.txt");
    write_private(&pass_file, password.as_bytes());

    let input = big_pe(tmp.path());
    let size = std::fs::metadata(&input).unwrap().len();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tsa = rt.block_on(servers::start_tsa(pki.dir.clone()));

    let self_exe = std::env::current_exe().unwrap();
    let mut ours = Vec::new();
    let mut ossl = Vec::new();
    for run in 0..RUNS {
        let target = tmp.path().join(format!("ours{run}.exe"));
        std::fs::copy(&input, &target).unwrap();
        let mut cmd = Command::new(&self_exe);
        cmd.arg("--sign-child")
            .arg(&target)
            .arg(&pfx_path)
            .arg(&tsa.url)
            .env(PASSWORD_ENV, password);
        ours.push(measure(&mut cmd));
        fixtures::assert_osslsigncode_ok(&pki, &target);
        std::fs::remove_file(&target).unwrap();

        let out = tmp.path().join(format!("ossl{run}.exe"));
        let mut cmd = Command::new("osslsigncode");
        cmd.args(["sign", "-pkcs12"])
            .arg(&pfx_path)
            .arg("-readpass")
            .arg(&pass_file);
        cmd.args(["-h", "sha256", "-ts", &tsa.url, "-in"])
            .arg(&input)
            .arg("-out")
            .arg(&out);
        ossl.push(measure(&mut cmd));
        fixtures::assert_osslsigncode_ok(&pki, &out);
        std::fs::remove_file(&out).unwrap();
    }
    let summary = |name: &str, runs: &[(Duration, u64)]| {
        let mut times: Vec<f64> = runs.iter().map(|r| r.0.as_secs_f64() * 1000.0).collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let rss = runs.iter().map(|r| r.1).max().unwrap();
        println!(
            "{name:<22} median {:>8.1} ms  min {:>8.1} ms  peak RSS {:>7.1} MiB",
            times[times.len() / 2],
            times[0],
            rss as f64 / 1024.0
        );
        serde_json::json!({"median_ms": times[times.len() / 2], "min_ms": times[0], "runs_ms": times, "peak_rss_kib": rss})
    };
    println!(
        "signing a {:.1} MiB PE ({RUNS} runs each, local TSA, RSA-2048 PFX)",
        size as f64 / 1048576.0
    );
    let json = serde_json::json!({
        "file_bytes": size,
        "runs": RUNS,
        "ours": summary("perry-ship-windows", &ours),
        "osslsigncode": summary("osslsigncode sign", &ossl),
        "note": "ours = parse PFX + streaming digest + sign + RFC 3161 + embed + checksum + our verify, in a child process; osslsigncode = sign to a new file",
    });
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("signing.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
    println!("wrote {}", dir.join("signing.json").display());
}

fn write_private(path: &Path, data: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}

/// A mingw exe followed by a 100 MiB pseudo-random overlay.
fn big_pe(dir: &Path) -> PathBuf {
    let exe = fixtures::mingw_exe(dir, "big");
    let mut f = std::fs::OpenOptions::new().append(true).open(&exe).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..SIZE_MIB {
        for b in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b.copy_from_slice(&state.to_le_bytes());
        }
        f.write_all(&chunk).unwrap();
    }
    exe
}

/// Runs `cmd` to completion; returns wall time and the child's peak RSS in KiB.
// The child is reaped by `wait4` (which also gives its rusage), not `Child::wait`.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> (Duration, u64) {
    let started = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child pid with valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    assert_eq!(pid, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    (elapsed, usage.ru_maxrss as u64)
}

/// Child: sign `file` in place with the PFX at `pfx_path` (password from the environment).
fn sign_child(file: &Path, pfx_path: &Path, tsa_url: &str) {
    use base64::Engine as _;
    use perry_ship_windows::job::credentials::{Credentials, PfxCredentials, Secret};
    let password = std::env::var(PASSWORD_ENV).unwrap();
    let creds = Credentials {
        pfx: Some(PfxCredentials {
            pfx_base64: Secret::new(
                base64::engine::general_purpose::STANDARD.encode(std::fs::read(pfx_path).unwrap()),
            ),
            password: Secret::new(password),
        }),
        timestamp_url: Some(tsa_url.to_string()),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let endpoints = perry_ship_windows::config::SigningEndpoints::default();
        let session =
            perry_ship_windows::sign::SigningSession::from_credentials(&creds, &http, &endpoints)
                .await
                .unwrap()
                .unwrap();
        session.sign_pe(file).await.unwrap();
    });
}
