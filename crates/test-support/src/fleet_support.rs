//! Pieces of the fleet tests: the worker binary run as a child process with a stand-in
//! `perry`, and small HTTP helpers.

use crate::testhub::TestHub;
use crate::worker_binary;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A worker process (the real binary) and its private folders.
pub struct BinWorker {
    pub child: tokio::process::Child,
    pub dir: tempfile::TempDir,
}

impl BinWorker {
    /// `perry` is a stand-in that answers `--version` and fails a compile after `sleep_s`.
    pub fn start(hub: &TestHub, args: &[&str], env: &[(&str, &str)], sleep_s: f32) -> BinWorker {
        let dir = tempfile::tempdir().unwrap();
        let perry = dir.path().join("perry");
        std::fs::write(
            &perry,
            format!(
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'perry 0.5.3'; exit 0; fi\nsleep {sleep_s}\necho 'stand-in compiler: no compiler here' >&2\nexit 3\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&perry, std::fs::Permissions::from_mode(0o755)).unwrap();
        BinWorker::spawn(hub, args, env, &perry, dir)
    }

    /// The worker with the repository's stand-in compiler, which builds real exes (it
    /// needs mingw: check with [`crate::gate::require_tools`]), and host processes.
    pub fn start_building(hub: &TestHub, env: &[(&str, &str)]) -> BinWorker {
        let perry = crate::repo_root().join("images/linux/standin/perry");
        BinWorker::spawn(hub, &[], env, &perry, tempfile::tempdir().unwrap())
    }

    fn spawn(
        hub: &TestHub,
        args: &[&str],
        env: &[(&str, &str)],
        perry: &Path,
        dir: tempfile::TempDir,
    ) -> BinWorker {
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let log = std::fs::File::create(dir.path().join("worker.log")).unwrap();
        let child = tokio::process::Command::new(worker_binary())
            .arg("run")
            .args(args)
            .env("PERRY_HUB_URL", hub.ws_url())
            .env("PERRY_HUB_WORKER_SECRET", "fleet-hub-secret")
            .env("PERRY_WORK_DIR", &work)
            .env("PERRY_MIN_FREE_DISK", "1m")
            .env("PERRY_WORKER_NAME", "fleet-worker")
            .env("PERRY_BUILD_PERRY_BINARY", perry)
            .env("PERRY_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the worker binary starts");
        BinWorker { child, dir }
    }

    /// Where the worker keeps its job folders.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The worker's job processes (`__job` children) right now.
    pub fn job_processes(&self) -> Vec<u32> {
        let parent = self.pid().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:"));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if ppid.map(str::trim) == Some(parent.as_str())
                && cmdline.split(|&b| b == 0).any(|a| a == b"__job")
            {
                found.push(pid);
            }
        }
        found
    }

    /// Peak resident memory of the worker process in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> u64 {
        crate::measure::process_status_kib(&self.pid().to_string(), "VmHWM") * 1024
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("the worker runs") as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of our own child process.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({signal})");
    }

    /// Waits for the process to exit within `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "the worker did not exit within {limit:?}; log:\n{}",
                self.log()
            ),
        }
    }
}

/// Waits until the hub has no worker connected.
pub async fn wait_disconnected(hub: &TestHub, limit: Duration) {
    let deadline = Instant::now() + limit;
    while hub.is_connected() {
        assert!(Instant::now() < deadline, "the worker stayed connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn free_local_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

pub async fn get_json(http: &reqwest::Client, url: String) -> (u16, serde_json::Value) {
    let resp = http.get(url).send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap())
}
