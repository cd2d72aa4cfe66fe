//! Reconnect delays: exponential windows with full jitter.
//!
//! Attempt *n* waits a uniformly random time in `[0, min(cap, initial · 2ⁿ)]`, so a fleet of
//! workers that lost the hub at the same moment does not reconnect in lock step. A
//! connection that stayed healthy long enough resets the window.

use std::time::Duration;

#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, cap: Duration) -> Self {
        Backoff {
            initial,
            cap: cap.max(initial),
            failures: 0,
        }
    }

    /// The current window (upper bound of the next delay).
    pub(crate) fn window(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(30)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.cap)
    }

    /// A random delay within the current window; widens the window for next time.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let window = self.window();
        self.failures = self.failures.saturating_add(1);
        let millis = window.as_millis() as u64;
        Duration::from_millis(if millis == 0 {
            0
        } else {
            rand::random_range(0..=millis)
        })
    }

    /// Back to the first window (after a healthy connection).
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(64));
        let mut windows = Vec::new();
        for _ in 0..9 {
            windows.push(b.window().as_secs());
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(*windows.last().unwrap()));
        }
        assert_eq!(windows, vec![1, 2, 4, 8, 16, 32, 64, 64, 64]);
        b.reset();
        assert_eq!(b.window(), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_jittered() {
        let mut b = Backoff::new(Duration::from_secs(64), Duration::from_secs(64));
        let delays: std::collections::HashSet<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(
            delays.len() > 5,
            "full jitter gives varied delays: {delays:?}"
        );
    }
}
