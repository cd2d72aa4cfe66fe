//! perry-ship-windows: the build worker that turns Perry projects into signed Windows
//! executables and installers.
//!
//! Map of the crate (one module per concern):
//! - [`config`]: every `PERRY_*` environment variable, parsed and validated once at start.
//! - [`events`]: the stage / log / progress events a job emits, and the sinks that carry them
//!   (to the hub, to a terminal, or to a test).
//! - [`error`]: the typed job error ([`error::JobError`]) whose code the hub shows to users.
//! - [`hub`]: both sides of the Perry Hub: the WebSocket link, the wire protocol and the job
//!   scheduler, and the HTTP transfers ([`hub::transfer`]: tarball download, artifact
//!   upload).
//! - [`job`]: the job itself: `job::lifecycle` (prepare → pipeline → deliver, the same for
//!   `run` and `build`), manifest, credentials, secret masking, work folders.
//! - [`untrusted`]: untrusted file trees: the one relative-path rule, the tar unpacker
//!   (project tarballs, container outputs) and the tree copy, each under an explicit policy.
//! - [`pipeline`]: the stages after extraction: compile → assets → bundle → sign → package.
//! - [`isolation`]: the pipeline in a disposable child process per job, under OS limits and
//!   without credentials, so no byte the project made is read by the long-lived worker.
//! - [`sandbox`]: where a tool runs: disposable Docker containers or host processes.
//! - [`package`]: icons, PE resources, NSIS installer, MSIX and portable ZIP.
//! - [`sign`]: Authenticode signing on the host (PFX, Azure Trusted Signing, Cloud KMS).
//! - [`provenance`]: the signed build record (in-toto statement in a DSSE envelope) and the
//!   checks behind `verify`.
//! - `fuzz` (test builds only): one structure-aware fuzz target per parser of untrusted input.
//!
//! Test fakes are not part of the product: the in-process test hub, the stand-in pipeline and
//! runners, fixtures, the skip-or-fail gate and the one worker starter live in the dev-only
//! workspace crate `perry-test-support` (crates/test-support), used by `tests/` and `benches/`.
//! The public items are the ones the binary (`src/main.rs`), `tests/`, `benches/` and
//! `perry-test-support` use; everything else is `pub(crate)`.
//!
//! Data flows one way: [`hub`] (or [`cli`]'s `build`) → `job::lifecycle` → [`isolation`]
//! → [`pipeline`] → [`package`] / [`sign`] / [`sandbox`].

#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod error;
pub mod events;
#[cfg(test)]
mod fuzz;
pub mod hub;
pub mod isolation;
pub mod job;
pub mod package;
pub mod pipeline;
pub mod provenance;
pub mod sandbox;
pub mod sign;
pub mod untrusted;
