//! Unit tests of the container request bodies (Linux and Windows) and of the hardening check.

use super::*;
use std::time::Duration;

fn step(argv: &[&str]) -> Step {
    Step {
        name: "compile".into(),
        image: "img:latest".into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PERRY_FEATURES".into(), "a,b".into())],
        inputs: vec![],
        outputs: vec![],
        cwd: "project/src".into(),
        timeout: Duration::from_secs(5),
    }
}

fn hardening(isolation: Isolation) -> Hardening {
    Hardening {
        memory_bytes: 512 << 20,
        pids_limit: 256,
        nano_cpus: 1_500_000_000,
        isolation,
        work_disk_bytes: None,
    }
}

const OWNER: Owner<'static> = Owner {
    worker: "w1",
    job_id: "job/42 x",
    attempt: 2,
};

/// The body as the engine receives it (JSON field names of the API).
fn wire(spec: &ContainerSpec) -> serde_json::Value {
    serde_json::to_value(&spec.body).unwrap()
}

#[test]
fn linux_body_carries_every_hardening_setting() {
    let spec = ContainerSpec::new(
        &step(&["perry", "--version"]),
        &OWNER,
        &hardening(Isolation::Process),
        TargetOs::Linux,
    )
    .unwrap();
    let body = wire(&spec);
    let hc = &body["HostConfig"];
    assert_eq!(hc["NetworkMode"], "none");
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(hc["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
    assert_eq!(hc["PidsLimit"], 256);
    assert_eq!(hc["Memory"], 512 << 20);
    assert_eq!(hc["MemorySwap"], 512 << 20);
    assert_eq!(hc["NanoCpus"], 1_500_000_000i64);
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["AutoRemove"], false);
    assert!(hc["Tmpfs"]["/tmp"].as_str().unwrap().contains("nosuid"));
    assert_eq!(hc["Mounts"][0]["Target"], "/work");
    assert_eq!(hc["Mounts"][0]["Type"], "volume");
    assert!(
        hc["Mounts"][0].get("Source").is_none(),
        "work volume must be anonymous"
    );
    assert!(hc.get("Binds").is_none(), "no host bind mounts");
    assert!(hc.get("Isolation").is_none());
    assert_eq!(body["Cmd"], serde_json::json!(["perry", "--version"]));
    assert_eq!(body["WorkingDir"], "/work/project/src");
    assert_eq!(body["Env"], serde_json::json!(["PERRY_FEATURES=a,b"]));
    assert_eq!(body["Labels"]["perry-ship.worker"], "w1");
    assert_eq!(body["Labels"]["perry-ship.job"], "job/42 x");
    assert_eq!(body["Labels"]["perry-ship.step"], "compile");
    assert!(
        body.get("User").is_none(),
        "the image's own (non-root) user is kept"
    );
}

#[test]
fn a_disk_limit_caps_the_file_size_on_linux_only() {
    let mut h = hardening(Isolation::Process);
    h.work_disk_bytes = Some(64 << 20);
    let linux = wire(&ContainerSpec::new(&step(&["x"]), &OWNER, &h, TargetOs::Linux).unwrap());
    assert_eq!(
        linux["HostConfig"]["Ulimits"],
        serde_json::json!([{"Name": "fsize", "Soft": 64 << 20, "Hard": 64 << 20}])
    );
    let windows = wire(&ContainerSpec::new(&step(&["x"]), &OWNER, &h, TargetOs::Windows).unwrap());
    assert!(windows["HostConfig"].get("Ulimits").is_none());
    let unlimited = wire(
        &ContainerSpec::new(
            &step(&["x"]),
            &OWNER,
            &hardening(Isolation::Process),
            TargetOs::Linux,
        )
        .unwrap(),
    );
    assert!(unlimited["HostConfig"].get("Ulimits").is_none());
}

#[test]
fn windows_body_uses_windows_paths_isolation_and_no_linux_only_fields() {
    let spec = ContainerSpec::new(
        &step(&["perry.exe", "compile"]),
        &OWNER,
        &hardening(Isolation::HyperV),
        TargetOs::Windows,
    )
    .unwrap();
    let body = wire(&spec);
    let hc = &body["HostConfig"];
    assert_eq!(hc["Isolation"], "hyperv");
    assert_eq!(hc["NetworkMode"], "none");
    assert_eq!(hc["Memory"], 512 << 20);
    assert_eq!(hc["Mounts"][0]["Target"], "C:\\work");
    for linux_only in [
        "ReadonlyRootfs",
        "CapDrop",
        "SecurityOpt",
        "PidsLimit",
        "Tmpfs",
    ] {
        assert!(
            hc.get(linux_only).is_none(),
            "{linux_only} sent to a Windows engine"
        );
    }
    assert_eq!(body["WorkingDir"], "C:\\work\\project\\src");
    assert_eq!(body["Cmd"], serde_json::json!(["perry.exe", "compile"]));

    let process = ContainerSpec::new(
        &step(&["x"]),
        &OWNER,
        &hardening(Isolation::Process),
        TargetOs::Windows,
    )
    .unwrap();
    assert_eq!(wire(&process)["HostConfig"]["Isolation"], "process");
}

#[test]
fn only_batch_files_are_wrapped_in_cmd() {
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        command_line(&argv(&["build.CMD", "a b"]), TargetOs::Windows),
        argv(&["cmd", "/c", "build.CMD", "a b"])
    );
    assert_eq!(
        command_line(&argv(&["makensis.exe", "/V2"]), TargetOs::Windows),
        argv(&["makensis.exe", "/V2"])
    );
    assert_eq!(
        command_line(&argv(&["run.bat"]), TargetOs::Linux),
        argv(&["run.bat"])
    );
}

#[test]
fn names_are_unique_and_docker_safe() {
    let a = container_name(&OWNER, "nsis step");
    let b = container_name(&OWNER, "nsis step");
    assert_ne!(a, b);
    assert!(a.starts_with("perry-job-42-x-a2-nsis-step-"), "{a}");
    assert!(a
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
}

#[test]
fn bad_steps_are_refused() {
    let h = hardening(Isolation::Process);
    assert!(ContainerSpec::new(&step(&[]), &OWNER, &h, TargetOs::Linux).is_err());
    let mut s = step(&["x"]);
    s.env = vec![("A=B".into(), "c".into())];
    assert!(ContainerSpec::new(&s, &OWNER, &h, TargetOs::Linux).is_err());
    let mut s = step(&["x"]);
    s.cwd = "../up".into();
    assert!(ContainerSpec::new(&s, &OWNER, &h, TargetOs::Linux).is_err());
}

#[test]
fn verification_rejects_a_dropped_setting() {
    let spec = ContainerSpec::new(
        &step(&["x"]),
        &OWNER,
        &hardening(Isolation::Process),
        TargetOs::Linux,
    )
    .unwrap();
    let mut host_config = spec.body.host_config.clone().unwrap();
    let mounts = Some(vec![bollard::models::MountPoint {
        typ: Some("volume".into()),
        destination: Some("/work".into()),
        ..Default::default()
    }]);
    let inspected = ContainerInspectResponse {
        host_config: Some(host_config.clone()),
        mounts: mounts.clone(),
        ..Default::default()
    };
    verify_hardening(&spec, &inspected, TargetOs::Linux).unwrap();

    host_config.readonly_rootfs = None;
    host_config.pids_limit = Some(0);
    let inspected = ContainerInspectResponse {
        host_config: Some(host_config),
        mounts,
        ..Default::default()
    };
    let err = verify_hardening(&spec, &inspected, TargetOs::Linux)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ReadonlyRootfs") && err.contains("PidsLimit"),
        "{err}"
    );
}
