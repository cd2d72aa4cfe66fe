//! One job's inputs and transfers: manifest and credentials (typed and validated), the
//! tarball download and its safe extraction, the artifact upload, secret masking and the
//! job's work folder.

pub mod budget;
pub mod credentials;
pub mod extract;
pub mod lifecycle;
pub mod manifest;
pub mod mask;
pub mod workdir;
