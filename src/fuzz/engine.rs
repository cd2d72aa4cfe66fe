//! The fuzzing loop: seeded, reproducible, bounded in iterations and time.
//!
//! Each target gives valid seed inputs, a structure-aware mutator and a check that runs one
//! input through the real parser and returns its outcome class (`Ok`) or a broken invariant
//! (`Err`). The loop replays the kept regressions (`tests/fuzz-regressions/<target>/`) first,
//! then mutates corpus entries; an input whose outcome class is new joins the corpus (a cheap
//! stand-in for coverage feedback). It fails the test, saving the input under
//! `target/fuzz-crashes/<target>/`, when the check panics, returns `Err`, takes longer than
//! the per-input time, or its peak memory exceeds the cap (a request past the cap ends the
//! process; the input is in `target/fuzz-crashes/<target>.in-flight`).
//!
//! Budget: `FUZZ_SECONDS` (per target, default 3) and `FUZZ_ITERATIONS` (default 4000),
//! whichever ends first; `FUZZ_SEED` picks the random sequence (default fixed).

use super::alloc;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// splitmix64: tiny, seedable, good enough to pick mutations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    pub(crate) fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What one target is: its seeds, how to mutate, how to check.
pub(crate) struct Target<'a> {
    pub(crate) name: &'static str,
    pub(crate) seeds: Vec<Vec<u8>>,
    /// Structure-aware mutation of one input (the engine adds generic byte mutations).
    pub(crate) mutate: &'a dyn Fn(&mut Vec<u8>, &mut Rng),
    /// Runs the real parser; `Ok(outcome class)` or `Err(broken invariant)`.
    pub(crate) check: &'a dyn Fn(&[u8]) -> Result<String, String>,
    /// Most time one input may take.
    pub(crate) max_time: Duration,
    /// Most memory one input may allocate above what was live before it.
    pub(crate) max_memory: usize,
}

const CORPUS_CAP: usize = 512;
const MAX_INPUT: usize = 1 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn regressions(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(name);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let data = std::fs::read(e.path()).ok()?;
                    Some((e.file_name().to_string_lossy().into_owned(), data))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Aborts the process when one input runs far past its time (a hang cannot be unwound).
fn watchdog(name: &'static str, started_ms: Arc<AtomicU64>, done: Arc<AtomicBool>, hard: Duration) {
    let origin = Instant::now();
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            let started = started_ms.load(Ordering::Relaxed);
            let now = origin.elapsed().as_millis() as u64;
            if started != u64::MAX && now.saturating_sub(started) > hard.as_millis() as u64 {
                eprintln!(
                    "fuzz target {name}: one input ran for more than {hard:?}; it is in \
                     target/fuzz-crashes/{name}.in-flight"
                );
                std::process::abort();
            }
        }
    });
}

/// Runs `target` for its budget; panics (failing the test) on the first bad input.
pub(crate) fn run(target: Target<'_>) {
    let seconds = env_u64("FUZZ_SECONDS", 3);
    let iterations = env_u64("FUZZ_ITERATIONS", 4000);
    let seed = env_u64("FUZZ_SEED", 0x5eed) ^ fnv(target.name.as_bytes());
    let mut rng = Rng::new(seed);
    let crash_dir = target_dir().join("fuzz-crashes").join(target.name);
    let in_flight = target_dir()
        .join("fuzz-crashes")
        .join(format!("{}.in-flight", target.name));
    let _ = std::fs::create_dir_all(&crash_dir);
    let started_ms = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let origin = Instant::now();
    watchdog(
        target.name,
        started_ms.clone(),
        done.clone(),
        target.max_time * 10,
    );

    let mut corpus: Vec<Vec<u8>> = target.seeds.clone();
    let mut outcomes: BTreeSet<String> = BTreeSet::new();
    let mut replay: Vec<(String, Vec<u8>)> = regressions(target.name);
    replay.extend(
        target
            .seeds
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("seed {i}"), s.clone())),
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut executed = 0u64;
    let mut next_replay = 0;
    loop {
        let (label, input) = if next_replay < replay.len() {
            next_replay += 1;
            replay[next_replay - 1].clone()
        } else {
            if executed >= iterations || Instant::now() >= deadline {
                break;
            }
            let mut input = rng.pick(&corpus).clone();
            for _ in 0..1 + rng.below(4) {
                if rng.chance(2) {
                    (target.mutate)(&mut input, &mut rng);
                } else {
                    let other = rng.pick(&corpus).clone();
                    super::mutate::bytes(&mut input, &other, &mut rng);
                }
            }
            input.truncate(MAX_INPUT);
            (
                format!("iteration {executed} (FUZZ_SEED base {seed:#x})"),
                input,
            )
        };
        let _ = std::fs::write(&in_flight, &input);
        started_ms.store(origin.elapsed().as_millis() as u64, Ordering::Relaxed);
        let clock = Instant::now();
        let baseline = alloc::start_measuring(target.max_memory);
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.check)(&input)));
        let peak = alloc::stop_measuring(baseline);
        let elapsed = clock.elapsed();
        started_ms.store(u64::MAX, Ordering::Relaxed);
        executed += 1;
        let problem = match result {
            Err(panic) => Some(format!("panicked: {}", panic_text(&panic))),
            Ok(Err(broken)) => Some(broken),
            Ok(Ok(_)) if elapsed > target.max_time => {
                Some(format!("took {elapsed:?} (limit {:?})", target.max_time))
            }
            Ok(Ok(_)) if peak > target.max_memory => Some(format!(
                "allocated {peak} bytes (limit {})",
                target.max_memory
            )),
            Ok(Ok(outcome)) => {
                if outcomes.insert(outcome) && corpus.len() < CORPUS_CAP {
                    corpus.push(input.clone());
                }
                None
            }
        };
        if let Some(problem) = problem {
            done.store(true, Ordering::Relaxed);
            let path = crash_dir.join(format!("{:016x}.bin", fnv(&input)));
            let _ = std::fs::write(&path, &input);
            panic!(
                "fuzz target {}: {label}: {problem}; input saved as {}",
                target.name,
                path.display()
            );
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = std::fs::remove_file(&in_flight);
    eprintln!(
        "fuzz target {}: {executed} inputs in {:?}, {} outcome classes, corpus {}",
        target.name,
        origin.elapsed(),
        outcomes.len(),
        corpus.len()
    );
    assert!(executed > replay.len() as u64 || iterations == 0);
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-text panic".into())
}

/// FNV-1a, for stable file names and per-target seeds.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Keeps an outcome class short and free of numbers, so e.g. every "offset 123" error is one
/// class.
pub(crate) fn class(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_ascii_digit())
        .take(60)
        .collect()
}
