//! The test binary's allocator: the system allocator plus per-thread accounting, so a fuzz
//! target can measure the peak memory one input needs and refuse to let it grow past a cap.
//!
//! Only the fuzzing thread sets a cap; every other thread of the test binary is unaffected.
//! A request that would take the fuzzing thread's live bytes past its cap fails (null), which
//! ends the process with "memory allocation of N bytes failed": the in-flight input is on disk
//! (see [`super::engine`]), so the crash can be replayed and kept as a regression.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

#[global_allocator]
static COUNTING: Counting = Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static CAP: Cell<usize> = const { Cell::new(0) };
}

/// Accounts `grow` more bytes to this thread; false when its cap forbids them.
fn admit(grow: usize) -> bool {
    let live = LIVE.try_with(Cell::get).unwrap_or(0);
    let cap = CAP.try_with(Cell::get).unwrap_or(0);
    let next = live.saturating_add(grow);
    if cap != 0 && next > cap {
        return false;
    }
    let _ = LIVE.try_with(|l| l.set(next));
    let _ = PEAK.try_with(|p| p.set(p.get().max(next)));
    true
}

fn release(shrink: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(shrink)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the accounting only
// touches const-initialised thread-locals (no allocation, no destructor) and never unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !admit(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        release(layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !admit(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        let moved = System.realloc(ptr, layout, new_size);
        if new_size < layout.size() && !moved.is_null() {
            release(layout.size() - new_size);
        }
        moved
    }
}

/// Starts measuring this thread: the peak restarts from the live bytes now, and the live
/// bytes may grow by at most `cap_bytes` (0: no cap). Returns the baseline.
pub(crate) fn start_measuring(cap_bytes: usize) -> usize {
    let live = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(live));
    CAP.with(|c| c.set(if cap_bytes == 0 { 0 } else { live + cap_bytes }));
    live
}

/// Stops the cap and returns how far above `baseline` this thread's memory peaked.
pub(crate) fn stop_measuring(baseline: usize) -> usize {
    CAP.with(|c| c.set(0));
    PEAK.with(Cell::get).saturating_sub(baseline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_measured_per_thread() {
        let base = start_measuring(0);
        let big = vec![1u8; 8 << 20];
        drop(big);
        let peak = stop_measuring(base);
        assert!(peak >= 8 << 20, "{peak}");
        assert!(peak < 9 << 20, "{peak}");
    }

    #[test]
    fn capped_requests_fail_instead_of_growing() {
        let base = start_measuring(1 << 20);
        let mut v: Vec<u8> = Vec::new();
        let refused = v.try_reserve_exact(4 << 20).is_err();
        let peak = stop_measuring(base);
        assert!(refused);
        assert!(peak < 1 << 20, "{peak}");
        assert!(v.try_reserve_exact(4 << 20).is_ok(), "cap lifted");
    }
}
