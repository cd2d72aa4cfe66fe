//! No core dumps of the worker: a core of this process would hold the PFX passwords and
//! tokens of every running job. Linux: `RLIMIT_CORE` 0 (soft and hard, so no child can
//! raise it) and `PR_SET_DUMPABLE` 0 (also keeps other processes of the same user from
//! ptrace-attaching). Other Unix: `RLIMIT_CORE` 0. Windows writes no core files by itself;
//! nothing to do there.

/// Turns core dumps off for this process (and, through the limit, its children).
#[cfg(unix)]
pub fn disable_core_dumps() -> std::io::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads a valid, fully initialised rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes one integer argument; the rest are ignored.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Windows: no core files are written unless configured system-wide (WER LocalDumps).
#[cfg(not(unix))]
pub fn disable_core_dumps() -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn core_limit_is_zero_and_the_process_is_not_dumpable() {
        super::disable_core_dumps().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: getrlimit writes into a valid rlimit struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) }, 0);
        assert_eq!((limit.rlim_cur, limit.rlim_max), (0, 0));
        // SAFETY: PR_GET_DUMPABLE takes no further arguments.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }
}
