//! Why an archive was refused: each message names the entry (quoted, shortened) and the rule.

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The archive file cannot be opened.
    #[error("cannot open the archive {path}: {source}")]
    Open {
        /// The archive's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The destination folder cannot be created or opened.
    #[error("cannot prepare the destination {path}: {source}")]
    Destination {
        /// The destination's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a readable (gzipped) tar; carries the reader's message.
    #[error("the archive is damaged or not a tar (.tar.gz where gzip is expected): {0}")]
    Corrupt(String),
    /// The entry's name breaks the relative-path rule.
    #[error("entry {entry} refused: {reason}")]
    UnsafePath {
        /// The entry's name, quoted and shortened.
        entry: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The entry's name is not UTF-8.
    #[error("entry {entry} refused: the name is not valid UTF-8")]
    NonUtf8Name {
        /// The entry's name, quoted and shortened.
        entry: String,
    },
    /// The entry's name is longer than the policy allows.
    #[error("entry {entry} refused: the name is {len} bytes long (limit {limit})")]
    NameTooLong {
        /// The entry's name, quoted and shortened.
        entry: String,
        /// The name's length, in bytes.
        len: usize,
        /// The longest name allowed, in bytes.
        limit: usize,
    },
    /// The entry's path has more levels than the policy allows.
    #[error("entry {entry} refused: the path is {depth} levels deep (limit {limit})")]
    TooDeep {
        /// The entry's name, quoted and shortened.
        entry: String,
        /// The path's number of components.
        depth: usize,
        /// The most components allowed.
        limit: usize,
    },
    /// The entry is not under the one top-level folder the policy allows.
    #[error("entry {entry} refused: it is outside {top:?}, the only top-level name allowed")]
    OutsideTop {
        /// The entry's name, quoted and shortened.
        entry: String,
        /// The allowed top-level name.
        top: String,
    },
    /// A symbolic link the policy refuses (e.g. one that leads out of the tree).
    #[error("symbolic link {entry} -> {target} refused: {reason}")]
    LinkEscapes {
        /// The link's name, quoted and shortened.
        entry: String,
        /// Where it points, quoted and shortened.
        target: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A hard link the policy refuses.
    #[error("hard link {entry} -> {target} refused: {reason}")]
    HardLink {
        /// The link's name, quoted and shortened.
        entry: String,
        /// The entry it names, quoted and shortened.
        target: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The entry would be written through a folder that is a symbolic link.
    #[error("entry {entry} refused: its folder {component:?} is a symbolic link; nothing is written through links")]
    ThroughSymlink {
        /// The entry's name, quoted and shortened.
        entry: String,
        /// The folder that is a link.
        component: String,
    },
    /// A device or FIFO entry.
    #[error("entry {entry} refused: {kind} entries are not allowed")]
    SpecialFile {
        /// The entry's name, quoted and shortened.
        entry: String,
        /// The entry's type, e.g. `block device`.
        kind: &'static str,
    },
    /// An entry type (or tar feature) the unpacker does not handle.
    #[error("entry {entry} refused: unsupported entry type {kind}")]
    Unsupported {
        /// The entry's name, quoted and shortened.
        entry: String,
        /// The type or feature, e.g. `PAX size override`.
        kind: String,
    },
    /// The entry clashes with one already extracted.
    #[error("entry {entry} refused: duplicate entry ({reason})")]
    Duplicate {
        /// The entry's name, quoted and shortened.
        entry: String,
        /// How it clashes.
        reason: &'static str,
    },
    /// More entries than allowed.
    #[error("the archive has more than {limit} entries (PERRY_MAX_TARBALL_ENTRIES)")]
    TooManyEntries {
        /// The entry limit.
        limit: u64,
    },
    /// More unpacked bytes than allowed.
    #[error("the archive is larger than {limit} bytes unpacked (PERRY_MAX_UNPACKED_SIZE), reached at entry {entry}")]
    TooLarge {
        /// The entry at which the limit was passed, quoted and shortened.
        entry: String,
        /// The byte limit.
        limit: u64,
    },
    /// The job was cancelled while unpacking.
    #[error("the job was cancelled")]
    Cancelled,
    /// Writing an entry failed.
    #[error("entry {entry}: {action} failed: {source}")]
    Io {
        /// The entry's name, quoted and shortened.
        entry: String,
        /// What was being done, e.g. `creating a folder`.
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}
