//! The link to the Perry Hub: wire protocol, connection, and the job scheduler.
