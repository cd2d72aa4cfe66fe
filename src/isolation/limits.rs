//! The OS limits a job's child process runs under.
//!
//! Linux and other Unix: set between fork and exec (`RLIMIT_DATA` for memory, `RLIMIT_CPU`,
//! `RLIMIT_FSIZE`, `RLIMIT_NOFILE`, `RLIMIT_CORE` 0), with `SIGXFSZ` ignored so a write
//! past the file-size limit fails with an error instead of killing the child. The child
//! turns `PR_SET_DUMPABLE` off itself (exec turns it back on). Windows: a Job Object with
//! a per-process memory limit, a user-time limit and kill-on-close, so the child dies
//! with the worker's handle.

use std::time::Duration;

/// Limits of one job's child process (`PERRY_JOB_MEMORY`, `PERRY_JOB_CPU_TIME`,
/// `PERRY_JOB_MAX_FILE`, `PERRY_JOB_OPEN_FILES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobProcessLimits {
    /// Heap and other private memory, in bytes.
    pub(crate) memory_bytes: u64,
    /// CPU time, all threads together.
    pub(crate) cpu_time: Duration,
    /// Largest file the child may write, in bytes.
    pub(crate) max_file_bytes: u64,
    /// Open file descriptors (Unix).
    pub(crate) open_files: u64,
}

impl Default for JobProcessLimits {
    fn default() -> Self {
        JobProcessLimits {
            memory_bytes: 2 << 30,
            cpu_time: Duration::from_secs(3600),
            max_file_bytes: 8 << 30,
            open_files: 1024,
        }
    }
}

#[cfg(unix)]
pub(crate) fn apply_before_exec(command: &mut tokio::process::Command, limits: JobProcessLimits) {
    let set = move |resource, soft: u64, hard: u64| {
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit only reads the struct; it is async-signal-safe.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (setrlimit, signal); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            set(libc::RLIMIT_DATA, limits.memory_bytes, limits.memory_bytes)?;
            // SIGXCPU at the soft limit ends the child; the hard one (SIGKILL) is a backstop.
            let cpu = limits.cpu_time.as_secs().max(1);
            set(libc::RLIMIT_CPU, cpu, cpu + 5)?;
            set(
                libc::RLIMIT_FSIZE,
                limits.max_file_bytes,
                limits.max_file_bytes,
            )?;
            set(libc::RLIMIT_NOFILE, limits.open_files, limits.open_files)?;
            set(libc::RLIMIT_CORE, 0, 0)?;
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Puts the started child in a Job Object with the limits; the returned handle kills the
/// child when it is closed (dropped).
#[cfg(windows)]
pub(crate) fn confine(
    child: &tokio::process::Child,
    limits: JobProcessLimits,
) -> std::io::Result<JobObject> {
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
        SetInformationJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
        JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOB_OBJECT_LIMIT_PROCESS_MEMORY, JOB_OBJECT_LIMIT_PROCESS_TIME,
    };
    let process = child
        .raw_handle()
        .ok_or_else(|| std::io::Error::other("the job process has already exited"))?;
    // SAFETY: plain Win32 calls on handles we own; the struct is zero-initialised and
    // sized as the API expects.
    unsafe {
        let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
        if job.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        let job = JobObject(job);
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
            | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION
            | JOB_OBJECT_LIMIT_PROCESS_MEMORY
            | JOB_OBJECT_LIMIT_PROCESS_TIME;
        // 100-nanosecond units.
        info.BasicLimitInformation.PerProcessUserTimeLimit =
            (limits.cpu_time.as_secs() as i64).saturating_mul(10_000_000);
        info.ProcessMemoryLimit = limits.memory_bytes as usize;
        if SetInformationJobObject(
            job.0,
            JobObjectExtendedLimitInformation,
            &info as *const _ as *const core::ffi::c_void,
            std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if AssignProcessToJobObject(job.0, process as _) == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(job)
    }
}

/// A Job Object handle; closing it kills the processes in it.
#[cfg(windows)]
pub(crate) struct JobObject(windows_sys::Win32::Foundation::HANDLE);

#[cfg(windows)]
// SAFETY: a kernel handle may be used and closed from any thread.
unsafe impl Send for JobObject {}

#[cfg(windows)]
impl Drop for JobObject {
    fn drop(&mut self) {
        // SAFETY: the handle came from CreateJobObjectW and is closed once.
        unsafe {
            windows_sys::Win32::Foundation::CloseHandle(self.0);
        }
    }
}
