//! Whole-job overhead (issue 6, figure 2): examples/hello as a signed NSIS installer through
//! the worker, against the same tool invocations run directly, interleaved in one run.
//!
//! Worker side, timed from `job_assign` to `complete`: tarball download + extract, compile
//! step (DockerRunner), icon + bundle + PE resources, PFX signing of the exe and DLL (our
//! signer, local TSA), the two makensis steps that embed a signed uninstaller (DockerRunner;
//! see `package::nsis_uninstaller`), signing of the uninstaller and of Setup.exe, base64
//! upload.
//!
//! Baseline, the sum of only these timed commands (the same tools, inputs and order):
//!   1. `docker run --rm --network=none -v <dir>:/work -w /work/project IMAGE perry compile …`
//!   2. `osslsigncode sign` of the exe and of perry_runtime.dll (same PFX, same local TSA)
//!   3. `docker run … makensis` pass 1 (exports the uninstaller; payload placeholders)
//!   4. `osslsigncode sign` of the uninstaller
//!   5. `docker run … makensis` pass 2 (embeds the signed uninstaller; real payload)
//!   6. `osslsigncode sign` of Setup.exe
//!
//! Not timed in the baseline (prepared between the commands): copying the project, the
//! bundle folder, app.ico and the NSIS scripts and payload (rendered by our library code).
//! The baseline bind-mounts folders where the worker copies files in and out of a hardened
//! container, and it has no download, extract, resource embedding or upload.

use crate::support::{self, median, BenchEnv, Worker};
use perry_ship_windows::job::manifest::Manifest;
use perry_ship_windows::package::nsis_compression::NsisCompression;
use perry_ship_windows::package::nsis_uninstaller::{
    Finalize, SIGNED_UNINSTALLER, UNSIGNED_UNINSTALLER,
};
use perry_ship_windows::package::{icon, nsis, AppInfo, Bundle};
use perry_test_support::bench_report::Report;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const EXE_NAME: &str = "Hello Perry.exe";
const TARGET_RATIO: f64 = 1.05;
/// The timed parts of one baseline run, in order.
const STEP_NAMES: [&str; 6] = [
    "docker run compile",
    "osslsigncode exe + dll",
    "docker run makensis pass 1",
    "osslsigncode uninstaller",
    "docker run makensis pass 2",
    "osslsigncode Setup.exe",
];

pub async fn run(env: &BenchEnv, report: &mut Report) {
    let runs: usize = std::env::var("BENCH_WORKER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    println!("== whole job: examples/hello installer + PFX signing, worker vs direct tools ({runs} runs each, interleaved, 1 warm-up)");
    let worker = Worker::start(env, support::production_pipeline(), &[]).await;
    let tarball = support::tarball_of(&support::example_dir());
    let manifest_json = support::example_manifest("installer");
    let manifest = Manifest::from_json(&manifest_json).expect("example manifest");
    let app = AppInfo::from_manifest(&manifest);

    let mut ours = Vec::new();
    let mut direct = Vec::new();
    let mut steps: Vec<Vec<Duration>> = vec![Vec::new(); STEP_NAMES.len()];
    let mut failures = 0;
    for i in 0..=runs {
        let job = format!("whole-{i}");
        let (ok, took) = worker
            .run_job(
                &job,
                tarball.clone(),
                manifest_json.clone(),
                env.credentials.clone(),
            )
            .await;
        let upload_ok = worker
            .hub
            .uploads()
            .iter()
            .any(|u| u.job_id == job && u.name == nsis::installer_file_name(&app));
        if !ok || !upload_ok {
            failures += 1;
        } else if i == 0 {
            // Once: the worker's installer really is signed and timestamped.
            let setup = worker
                .hub
                .upload_path(&job, &nsis::installer_file_name(&app));
            let (verified, text) = crate::fixtures::osslsigncode_verify(&env.pki, &setup);
            println!(
                "  warm-up installer: osslsigncode verify {}",
                if verified { "ok" } else { "FAILED" }
            );
            if !verified {
                eprintln!("{text}");
                failures += 1;
            }
        }
        let parts = baseline_once(env, &app).await;
        if i == 0 {
            continue; // warm-up
        }
        ours.push(took);
        direct.push(parts.iter().sum());
        for (k, d) in parts.into_iter().enumerate() {
            steps[k].push(d);
        }
    }
    worker.stop().await;

    let ours_ms = median(ours).as_secs_f64() * 1000.0;
    let direct_ms = median(direct).as_secs_f64() * 1000.0;
    let ratio = ours_ms / direct_ms;
    println!("  worker job (assign → complete), median:      {ours_ms:>9.1} ms");
    println!("  direct tools (sum of the 6 below), median:   {direct_ms:>9.1} ms");
    for (name, samples) in STEP_NAMES.iter().zip(steps) {
        println!(
            "    {name:<28} median {:>9.1} ms",
            median(samples).as_secs_f64() * 1000.0
        );
    }
    println!(
        "  ratio {ratio:.2}x, overhead {:+.1} ms (target <= {TARGET_RATIO:.2}x); failed worker jobs: {failures}",
        ours_ms - direct_ms
    );
    report.figure("whole job: worker median", ours_ms, "ms", None, None);
    report.figure(
        "whole job: direct tools median",
        direct_ms,
        "ms",
        None,
        None,
    );
    report.figure(
        "whole job: worker / direct",
        ratio,
        "x",
        Some("<= 1.05"),
        Some(ratio <= TARGET_RATIO && failures == 0),
    );
    report.figure(
        "whole job: failed worker jobs",
        failures as f64,
        "jobs",
        Some("0"),
        Some(failures == 0),
    );
    report.note(
        "whole job baseline = docker run compile + osslsigncode (exe, dll) + docker run makensis (pass 1) + \
         osslsigncode (uninstaller) + docker run makensis (pass 2) + osslsigncode (Setup.exe), bind mounts, \
         same PFX and local TSA; it excludes download/extract, icon, resources, bundle copying, NSIS script \
         rendering and upload, which the worker figure includes",
    );
}

/// One direct run; returns the timed parts named in [`STEP_NAMES`].
async fn baseline_once(env: &BenchEnv, app: &AppInfo) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    support::copy_dir(&support::example_dir(), &work.join("project"));
    std::fs::create_dir_all(work.join("out")).unwrap();
    open_up(&work);
    open_up(&work.join("out"));
    let out_exe = format!("../out/{EXE_NAME}");
    let compile = docker_run(
        env,
        &work,
        "/work/project",
        &[
            "perry",
            "compile",
            "src/main.ts",
            "-o",
            &out_exe,
            "--target",
            "windows",
        ],
    )
    .await;

    let bundle_root = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle_root).unwrap();
    std::fs::copy(work.join("out").join(EXE_NAME), bundle_root.join(EXE_NAME)).unwrap();
    std::fs::copy(
        work.join("out/perry_runtime.dll"),
        bundle_root.join("perry_runtime.dll"),
    )
    .unwrap();
    support::copy_dir(
        &support::example_dir().join("assets"),
        &bundle_root.join("assets"),
    );
    icon::png_to_ico(
        &support::example_dir().join("icon.png"),
        &bundle_root.join("app.ico"),
    )
    .unwrap();
    let sign_bins = osslsign(env, &bundle_root.join(EXE_NAME)).await
        + osslsign(env, &bundle_root.join("perry_runtime.dll")).await;

    let bundle = Bundle {
        root: bundle_root,
        exe_name: EXE_NAME.into(),
    };
    let setup_name = nsis::installer_file_name(app);
    let nsis_dir = dir.path().join("nsis");
    std::fs::create_dir_all(&nsis_dir).unwrap();
    let staged = nsis::stage_payload(
        &bundle,
        app,
        &setup_name,
        &nsis_dir,
        Finalize::Export,
        NsisCompression::Auto,
    )
    .unwrap();
    open_up(&nsis_dir);
    // Pass 1 sees the placeholders as its payload, as in the worker.
    let (payload, real) = (nsis_dir.join("payload"), nsis_dir.join("payload.real"));
    std::fs::rename(&payload, &real).unwrap();
    std::fs::rename(nsis_dir.join("placeholders"), &payload).unwrap();
    let pass1 = makensis(env, &nsis_dir).await;
    let uninstaller = nsis_dir.join(SIGNED_UNINSTALLER);
    std::fs::rename(nsis_dir.join(UNSIGNED_UNINSTALLER), &uninstaller).unwrap();
    let sign_uninstaller = osslsign(env, &uninstaller).await;
    std::fs::remove_dir_all(&payload).unwrap();
    std::fs::rename(&real, &payload).unwrap();
    nsis::restage_script(
        &bundle,
        &staged,
        app,
        &setup_name,
        &nsis_dir,
        Finalize::Import,
    )
    .unwrap();
    let pass2 = makensis(env, &nsis_dir).await;
    let sign_setup = osslsign(env, &nsis_dir.join(&setup_name)).await;
    vec![
        compile,
        sign_bins,
        pass1,
        sign_uninstaller,
        pass2,
        sign_setup,
    ]
}

/// `docker run … makensis installer.nsi` over a bind-mounted staged folder (timed).
async fn makensis(env: &BenchEnv, nsis_dir: &Path) -> Duration {
    let argv = ["makensis", "-V2", "-INPUTCHARSET", "UTF8", "installer.nsi"];
    docker_run(env, nsis_dir, "/work", &argv).await
}

/// `docker run --rm --network=none -v <dir>:/work -w <cwd> IMAGE <argv…>` (timed).
async fn docker_run(env: &BenchEnv, dir: &Path, cwd: &str, argv: &[&str]) -> Duration {
    let volume = format!("{}:/work", dir.display());
    let mut args = vec![
        "run",
        "--rm",
        "--network=none",
        "-v",
        &volume,
        "-w",
        cwd,
        &env.image,
    ];
    args.extend_from_slice(argv);
    timed("docker", &args).await
}

/// The container user (uid 1000) writes into bind-mounted folders.
fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// `osslsigncode sign` into a new file (timed), then replaces the input with it.
async fn osslsign(env: &BenchEnv, file: &Path) -> Duration {
    let signed = file.with_extension("signed");
    let (pfx, pass) = (
        env.pfx_path.display().to_string(),
        env.pass_file.display().to_string(),
    );
    let took = timed(
        "osslsigncode",
        &[
            "sign",
            "-pkcs12",
            &pfx,
            "-readpass",
            &pass,
            "-h",
            "sha256",
            "-ts",
            &env.tsa.url,
            "-in",
            &file.display().to_string(),
            "-out",
            &signed.display().to_string(),
        ],
    )
    .await;
    std::fs::rename(&signed, file).unwrap();
    took
}

async fn timed(program: &str, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}
