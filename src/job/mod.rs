//! The job: its `lifecycle` (prepare → pipeline → deliver, shared by the hub's `run` and
//! the command line's `build`), its inputs (manifest and credentials, typed and validated),
//! secret masking and the job's work folder. The project tarball is unpacked by
//! [`crate::untrusted::archive`]; the hub's side of a job (download, upload, frames) lives in
//! [`crate::hub`].

pub mod credentials;
pub(crate) mod lifecycle;
pub mod manifest;
pub mod mask;
pub mod workdir;
