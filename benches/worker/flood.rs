//! Log flood (issue 6, figure 5): the stand-in compiler prints 1 000 000 lines inside the
//! container (`// perry-standin: flood 1000000`) during a real portable-ZIP job. Checks that
//! the job completes, the hub receives at most `PERRY_LOG_MAX_LINES` log lines (the
//! configured cap, `Config.log_limits.max_lines`) plus one "N log lines dropped" line, and
//! that peak RSS stays flat (growth over idle, VmHWM after a clear_refs reset).

use crate::support::{self, mib, BenchEnv, Worker};
use perry_ship_windows::config::LogLimits;
use perry_test_support::bench_report::Report;

const LINES: u64 = 1_000_000;
const TARGET_GROWTH_MIB: f64 = 64.0;

pub async fn run(env: &BenchEnv, report: &mut Report) {
    let cap = LogLimits::default().max_lines;
    println!("\n== log flood: stand-in compiler prints {LINES} lines in the container (cap {cap} lines per job)");
    let tmp = tempfile::tempdir().unwrap();
    let project = support::example_with_marker(
        &tmp.path().join("project"),
        &format!("perry-standin: flood {LINES}"),
    );
    let worker = Worker::start(env, support::production_pipeline(), &[]).await;
    let job = "flood";
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let idle = support::status_kib("VmRSS");
    support::reset_peak_rss();
    let (ok, took) = worker
        .run_job(
            job,
            support::tarball_of(&project),
            support::example_manifest("portable"),
            serde_json::json!({}),
        )
        .await;
    let peak = support::status_kib("VmHWM");
    let logs: Vec<String> = worker
        .hub
        .job_frames(job)
        .into_iter()
        .filter(|f| f.kind() == "log")
        .map(|f| f.json["line"].as_str().unwrap_or_default().to_string())
        .collect();
    worker.stop().await;

    let dropped_lines: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("log lines dropped"))
        .collect();
    let flood_received = logs.iter().filter(|l| l.starts_with("flood line ")).count() as u64;
    let within_cap = logs.len() as u64 <= cap + 1 && dropped_lines.len() == 1;
    let growth = mib(peak.saturating_sub(idle));
    println!(
        "  job {} in {:.1} s; hub got {} log lines ({flood_received} flood lines), dropped-line: {}",
        if ok { "completed" } else { "FAILED" },
        took.as_secs_f64(),
        logs.len(),
        dropped_lines.first().map_or("MISSING", |l| l.as_str())
    );
    println!(
        "  idle {:.1} MiB, peak {:.1} MiB, growth {growth:.1} MiB (target <= {TARGET_GROWTH_MIB} MiB)",
        mib(idle),
        mib(peak)
    );
    report.figure(
        "flood: job completed",
        if ok { 1.0 } else { 0.0 },
        "bool",
        Some("completed"),
        Some(ok),
    );
    report.figure(
        "flood: log lines received by the hub",
        logs.len() as f64,
        "lines",
        Some(&format!("<= {cap} + 1 \"dropped\" line")),
        Some(within_cap),
    );
    report.figure(
        "flood: peak RSS growth",
        growth,
        "MiB",
        Some("<= 64 MiB over idle"),
        Some(growth <= TARGET_GROWTH_MIB),
    );
    report.figure("flood: job time", took.as_secs_f64(), "s", None, None);
}
