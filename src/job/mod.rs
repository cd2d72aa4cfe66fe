//! The job: its [`lifecycle`] (prepare → pipeline → deliver, shared by the hub's `run` and
//! the command line's `build`), its inputs (manifest and credentials, typed and validated),
//! the project tarball's safe extraction, secret masking and the job's work folder. The
//! hub's side of a job (download, upload, frames) lives in [`crate::hub`].

pub(crate) mod budget;
pub mod credentials;
pub mod extract;
pub mod lifecycle;
pub mod manifest;
pub mod mask;
pub mod workdir;
