//! In-crate fuzzing of every parser of untrusted input, on the stable toolchain (compiled for
//! `cargo test` only). A short run of each target is part of the test suite;
//! `scripts/fuzz.sh [seconds]` runs them longer with a fresh seed.
//!
//! - [`engine`]: the seeded mutation loop, time and memory checks, crash files, regressions.
//! - [`alloc`]: the test binary's counting allocator behind the memory check.
//! - [`mutate`]: generic and shared structure-aware mutations.
//! - `archives`: project tarball extraction and copy-out unpacking.
//! - `images`: ICO and PNG (icon decoding, the bundle's `app.ico`).
//! - `pe`: PE resources, DLL imports, the Authenticode digest and signature embedding.
//! - `json`: hub frames, manifest, credentials, `metadata.json`.
//! - `job_process`: the messages a job's child process sends the worker (the child reads
//!   hostile files, so the worker treats what it says as untrusted too).
//!
//! Every input that broke a target is kept under `tests/fuzz-regressions/<target>/` and
//! replayed first by that target.

pub(crate) mod alloc;
mod archives;
pub(crate) mod engine;
pub(crate) mod images;
mod job_process;
mod json;
pub(crate) mod mutate;
pub(crate) mod pe;
