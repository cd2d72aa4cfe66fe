//! Why an archive was refused: each message names the entry (quoted, shortened) and the rule.

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open the archive {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot prepare the destination {path}: {source}")]
    Destination {
        path: String,
        source: std::io::Error,
    },
    #[error("the archive is damaged or not a tar (.tar.gz where gzip is expected): {0}")]
    Corrupt(String),
    #[error("entry {entry} refused: {reason}")]
    UnsafePath { entry: String, reason: &'static str },
    #[error("entry {entry} refused: the name is not valid UTF-8")]
    NonUtf8Name { entry: String },
    #[error("entry {entry} refused: the name is {len} bytes long (limit {limit})")]
    NameTooLong {
        entry: String,
        len: usize,
        limit: usize,
    },
    #[error("entry {entry} refused: the path is {depth} levels deep (limit {limit})")]
    TooDeep {
        entry: String,
        depth: usize,
        limit: usize,
    },
    #[error("entry {entry} refused: it is outside {top:?}, the only top-level name allowed")]
    OutsideTop { entry: String, top: String },
    #[error("symbolic link {entry} -> {target} refused: {reason}")]
    LinkEscapes {
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("hard link {entry} -> {target} refused: {reason}")]
    HardLink {
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("entry {entry} refused: its folder {component:?} is a symbolic link; nothing is written through links")]
    ThroughSymlink { entry: String, component: String },
    #[error("entry {entry} refused: {kind} entries are not allowed")]
    SpecialFile { entry: String, kind: &'static str },
    #[error("entry {entry} refused: unsupported entry type {kind}")]
    Unsupported { entry: String, kind: String },
    #[error("entry {entry} refused: duplicate entry ({reason})")]
    Duplicate { entry: String, reason: &'static str },
    #[error("the archive has more than {limit} entries (PERRY_MAX_TARBALL_ENTRIES)")]
    TooManyEntries { limit: u64 },
    #[error("the archive is larger than {limit} bytes unpacked (PERRY_MAX_UNPACKED_SIZE), reached at entry {entry}")]
    TooLarge { entry: String, limit: u64 },
    #[error("the job was cancelled")]
    Cancelled,
    #[error("entry {entry}: {action} failed: {source}")]
    Io {
        entry: String,
        action: &'static str,
        source: std::io::Error,
    },
}
