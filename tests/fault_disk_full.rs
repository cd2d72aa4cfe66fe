//! Fault injection: the work dir's filesystem fills up during a job (a 3 MiB tmpfs). The job
//! fails cleanly with a message that says the disk is full, nothing is left in the work
//! dir, and the worker then serves the next job.

use perry_test_support::gate;
use perry_test_support::hub_support as support;

use serde_json::json;
use std::process::Command;
use support::*;

/// A tmpfs mounted for the test's lifetime; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !gate::require(
            ok,
            "a tmpfs cannot be mounted (the tests run as root in CI)",
        ) {
            return None;
        }
        Some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A project tarball holding `size` incompressible bytes.
fn big_tarball(size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, bytes) in [
        ("src/main.ts", b"console.log(1)\n".to_vec()),
        ("assets/big.bin", data),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, bytes.as_slice())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_work_disk_fails_the_job_cleanly_and_the_next_job_runs() {
    let Some(disk) = SmallDisk::mount("3m") else {
        return;
    };
    let hub = perry_test_support::testhub::TestHub::start().await.unwrap();
    let work = disk.dir.path().to_string_lossy().into_owned();
    let worker = start_worker(
        &hub,
        &[
            ("PERRY_WORK_DIR", work.as_str()),
            ("PERRY_MIN_FREE_DISK", "1k"),
        ],
        |_| {},
    );
    hub.wait_for_hello(1, WAIT).await.unwrap();

    hub.assign(
        "disk-full",
        "tok-full",
        big_tarball(8 << 20),
        manifest(),
        json!({}),
    )
    .unwrap();
    hub.wait_for_complete("disk-full", WAIT).await.unwrap();
    let error = assert_failed(&hub, "disk-full");
    let message = error["message"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        message.contains("space") || message.contains("disk"),
        "the error must say the disk is full: {error}"
    );
    assert!(hub.uploads().is_empty());
    settle().await;
    assert_work_dir_clean(disk.dir.path());

    // The disk is empty again: a small job goes through.
    assign(&hub, "after-full", json!({}));
    let complete = hub.wait_for_complete("after-full", WAIT).await.unwrap();
    assert_eq!(complete.json["success"], json!(true), "{}", complete.raw);
    worker.shutdown.cancel();
    let _ = tokio::time::timeout(WAIT, worker.handle).await;
    drop(disk);
}
