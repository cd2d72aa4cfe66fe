//! Untrusted file trees coming into the worker, and the rules they are held to. Everything
//! that writes files named by someone else goes through here:
//! - `path`: the one rule for a relative path (archive entries, link targets, step paths).
//! - [`archive`]: the streaming unpacker for tar archives (project tarballs, container
//!   outputs), one [`archive::UnpackPolicy`] per use.
//! - `tree_copy`: the one recursive copy of a file or folder tree (assets, host step
//!   inputs and outputs), one `tree_copy::CopyPolicy` per use.
//! - `budget`: the entry, byte and cancel budget every tree walk runs within.
//!
//! All of it is synchronous, blocking and free of async state (the unpacker takes any
//! [`std::io::Read`]), so it can run on a blocking thread or in a per-job child process.

pub mod archive;
pub(crate) mod budget;
pub(crate) mod path;
pub(crate) mod tree_copy;
