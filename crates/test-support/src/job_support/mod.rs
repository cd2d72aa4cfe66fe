//! Fixtures of the job tests: a tar archive builder that writes the headers hostile archives
//! use, and a local HTTP server for the transfer tests.

pub mod tar_builder;
pub mod transfer_server;
