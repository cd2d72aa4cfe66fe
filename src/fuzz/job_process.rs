//! Fuzz target for what a job's child process sends the worker: one JSON line per message,
//! decoded with the worker's types, then put through the worker's own checks (a step may
//! only read the job's files and write into its folder; events go to the job's sink, which
//! strips and masks every event alike). A child taken over by a hostile input must not get
//! past them.

use super::engine::{self, class, Target};
use super::mutate;
use crate::isolation::wire::FromChild;
use crate::isolation::{check_step, lexically_inside, resolves_inside, JobFolders};
use serde_json::json;
use std::time::Duration;

const KEYS: &[&str] = &[
    "type",
    "kind",
    "id",
    "stage",
    "message",
    "line",
    "stream",
    "percent",
    "step",
    "name",
    "image",
    "argv",
    "env",
    "inputs",
    "host_path",
    "dest",
    "outputs",
    "cwd",
    "timeout",
    "output_dir",
    "digest_hex",
    "perry_version",
    "artifacts",
    "path",
    "target",
    "code",
];

#[test]
fn fuzz_job_process_messages() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("job");
    let project = work.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(root.path().join("other-job")).unwrap();
    let work_text = work.display().to_string();
    let seeds: Vec<Vec<u8>> = [
        json!({"type": "event", "kind": "log", "stage": "bundling", "stream": "stdout",
               "line": "bundled DLL \u{1b}]0;title\u{7}x.dll\r[signing] ok"}),
        json!({"type": "event", "kind": "progress", "stage": "packaging", "percent": 250,
               "message": "half\u{202e}way"}),
        json!({"type": "run_step", "id": 1, "stage": "compiling",
               "output_dir": format!("{work_text}/compile"),
               "step": {"name": "compile", "image": "toolchain:latest", "argv": ["perry"],
                        "env": [], "inputs": [{"host_path": format!("{work_text}/project"),
                        "dest": "project"}], "outputs": ["out/"], "cwd": "",
                        "timeout": {"secs": 60, "nanos": 0}}}),
        json!({"type": "sign_digest", "id": 2, "digest_hex": "00".repeat(32)}),
        json!({"type": "toolchain", "id": 3, "perry_version": true}),
        json!({"type": "finished", "kind": "built", "artifacts": [
               {"path": format!("{work_text}/package/App.zip"), "name": "App.zip",
                "target": "windows"}]}),
    ]
    .into_iter()
    .map(|v| v.to_string().into_bytes())
    .collect();
    let folders = JobFolders {
        image: "toolchain:latest",
        work_dir: &work,
        project_dir: &project,
    };
    engine::run(Target {
        name: "job_process_messages",
        seeds,
        mutate: &|data, rng| mutate::json(data, KEYS, rng),
        check: &|input| match serde_json::from_slice::<FromChild>(input) {
            Ok(FromChild::Event(_)) => Ok("event".into()),
            Ok(FromChild::RunStep {
                step, output_dir, ..
            }) => match check_step(&folders, &step, &output_dir) {
                Ok(()) => {
                    let inside = step.inputs.iter().all(|i| {
                        resolves_inside(&i.host_path, &work)
                            || resolves_inside(&i.host_path, &project)
                    });
                    if !inside || !lexically_inside(&output_dir, &work) {
                        return Err(format!(
                            "step let through: {output_dir:?} {:?}",
                            step.inputs
                        ));
                    }
                    Ok("step accepted".into())
                }
                Err(e) => Ok(class(&e)),
            },
            Ok(_) => Ok("other message".into()),
            Err(e) => Ok(class(&e.to_string())),
        },
        max_time: Duration::from_secs(2),
        max_memory: 64 << 20,
    });
}
