//! The budget a job's project gets for every tree the worker walks or writes for it: the
//! project tarball limits (`PERRY_MAX_TARBALL_ENTRIES`, `PERRY_MAX_UNPACKED_SIZE`) apply to
//! the asset copy, host-runner copies and container copy-out as well, and each walk also
//! stops at once when the job is cancelled (hub cancel, job timeout, shutdown).
//!
//! A [`Budget`] is plain data plus a cancel flag, so the walks that take one stay pure
//! functions that could run in a per-job child process unchanged.

use crate::config::ExtractLimits;
use tokio_util::sync::CancellationToken;

/// Why a walk stopped early.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BudgetError {
    /// More files and folders than allowed.
    #[error("{what} holds more than {limit} files and folders (PERRY_MAX_TARBALL_ENTRIES)")]
    TooManyEntries {
        /// The tree walked, e.g. `the asset folders`.
        what: String,
        /// The entry limit.
        limit: u64,
    },
    /// More bytes of file content than allowed.
    #[error("{what} is larger than {limit} bytes (PERRY_MAX_UNPACKED_SIZE)")]
    TooManyBytes {
        /// The tree walked.
        what: String,
        /// The byte limit.
        limit: u64,
    },
    /// The job was cancelled during the walk.
    #[error("the job was cancelled")]
    Cancelled,
}

/// Entries and bytes left for one walk, and the job's cancel token.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    what: String,
    limits: ExtractLimits,
    entries: u64,
    bytes: u64,
    cancel: CancellationToken,
}

impl Budget {
    /// A fresh budget for `what` (named in errors: "the assets", "step output \"out\"").
    pub(crate) fn new(
        what: impl Into<String>,
        limits: ExtractLimits,
        cancel: CancellationToken,
    ) -> Self {
        Budget {
            what: what.into(),
            limits,
            entries: 0,
            bytes: 0,
            cancel,
        }
    }

    /// Counts one file, folder or link; fails past the entry limit or once cancelled.
    pub(crate) fn take_entry(&mut self) -> Result<(), BudgetError> {
        if self.cancel.is_cancelled() {
            return Err(BudgetError::Cancelled);
        }
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(BudgetError::TooManyEntries {
                what: self.what.clone(),
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// Counts `n` bytes about to be written; fails when they would pass the byte limit.
    pub(crate) fn take_bytes(&mut self, n: u64) -> Result<(), BudgetError> {
        let total = self.bytes.saturating_add(n);
        if total > self.limits.max_unpacked_bytes {
            return Err(BudgetError::TooManyBytes {
                what: self.what.clone(),
                limit: self.limits.max_unpacked_bytes,
            });
        }
        self.bytes = total;
        Ok(())
    }

    /// Whether the job's cancel token has fired.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cancel_stop_the_walk() {
        let limits = ExtractLimits {
            max_entries: 2,
            max_unpacked_bytes: 10,
        };
        let cancel = CancellationToken::new();
        let mut b = Budget::new("the assets", limits, cancel.clone());
        b.take_entry().unwrap();
        b.take_entry().unwrap();
        let e = b.take_entry().unwrap_err().to_string();
        assert!(
            e.contains("the assets") && e.contains("PERRY_MAX_TARBALL_ENTRIES"),
            "{e}"
        );
        b.take_bytes(10).unwrap();
        assert!(matches!(
            b.take_bytes(1),
            Err(BudgetError::TooManyBytes { .. })
        ));
        let mut b = Budget::new("x", limits, cancel.clone());
        cancel.cancel();
        assert_eq!(b.take_entry(), Err(BudgetError::Cancelled));
    }
}
