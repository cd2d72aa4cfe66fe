//! Unpacking an untrusted tar stream (a project tarball, a container's output) in a child
//! process (`perry-ship-windows __unpack`), so a hostile archive costs only its job.
//!
//! The worker sends one JSON line (where to, which policy, the limits) and then the archive
//! bytes on the child's stdin, copied unread (a tarball file, or a container's output chunk
//! by chunk as the engine streams it). The child unpacks with
//! [`crate::untrusted::archive`] under the job limits and answers with one JSON line. When
//! no job program is registered (the library used in-process, as unit tests do), the same
//! unpacker runs on a blocking thread instead.

use super::limits::JobProcessLimits;
use crate::config::ExtractLimits;
use crate::untrusted::archive::{self, UnpackPolicy, UnpackStats};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The hidden subcommand the unpacking child runs.
pub const UNPACK_SUBCOMMAND: &str = "__unpack";

/// Which rules an archive is unpacked with (see [`UnpackPolicy`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum ArchiveKind {
    /// A project tarball (`.tar.gz`).
    ProjectTarball,
    /// A container's output: a plain tar whose entries all lie under `top`.
    ContainerOutput { top: String },
}

#[derive(Serialize, Deserialize)]
struct Request {
    dest: PathBuf,
    kind: ArchiveKind,
    max_entries: u64,
    max_unpacked_bytes: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Unpacked { entries: u64, bytes: u64 },
    Refused { message: String },
}

/// The limits an archive is unpacked within: its own (entries, bytes) and those of the
/// process that unpacks it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnpackLimits {
    pub(crate) archive: ExtractLimits,
    pub(crate) process: JobProcessLimits,
}

impl UnpackLimits {
    pub(crate) fn of(config: &crate::config::Config) -> Self {
        UnpackLimits {
            archive: config.extract_limits,
            process: config.job_limits,
        }
    }
}

/// Where the bytes of an archive come from.
pub(crate) enum ArchiveSource {
    /// A file on disk (the downloaded project tarball).
    File(PathBuf),
    /// Chunks arriving from elsewhere (the engine's archive API); the sender closes it.
    Chunks(tokio::sync::mpsc::Receiver<bytes::Bytes>),
}

/// Unpacks `source` into `dest` by the rules of `kind`; the error is the unpacker's
/// message (naming the entry and the rule) or why the child died.
pub(crate) async fn unpack(
    source: ArchiveSource,
    dest: &Path,
    kind: ArchiveKind,
    limits: UnpackLimits,
    cancel: &CancellationToken,
) -> Result<UnpackStats, String> {
    match super::job_program() {
        Some(program) => in_child(program, source, dest, kind, limits, cancel).await,
        None => in_process(source, dest, kind, limits.archive, cancel).await,
    }
}

async fn in_process(
    source: ArchiveSource,
    dest: &Path,
    kind: ArchiveKind,
    limits: ExtractLimits,
    cancel: &CancellationToken,
) -> Result<UnpackStats, String> {
    let policy = policy_for(&kind, limits, cancel.clone());
    let dest = dest.to_path_buf();
    let work = move || match source {
        ArchiveSource::File(path) => archive::unpack_tar_gz_file(&path, &dest, &policy),
        ArchiveSource::Chunks(rx) => {
            let reader = std::io::BufReader::new(ChunkReader::new(rx));
            archive::unpack(reader, &dest, &policy)
        }
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("the unpacker crashed: {e}"))?
        .map_err(|e| e.to_string())
}

async fn in_child(
    program: &Path,
    source: ArchiveSource,
    dest: &Path,
    kind: ArchiveKind,
    limits: UnpackLimits,
    cancel: &CancellationToken,
) -> Result<UnpackStats, String> {
    let job_limits = limits.process;
    let request = Request {
        dest: dest.to_path_buf(),
        kind,
        max_entries: limits.archive.max_entries,
        max_unpacked_bytes: limits.archive.max_unpacked_bytes,
    };
    let mut command = super::child_command(program, UNPACK_SUBCOMMAND);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (file, chunks) = match source {
        ArchiveSource::File(path) => (Some(path), None),
        ArchiveSource::Chunks(rx) => (None, Some(rx)),
    };
    command.stdin(Stdio::piped());
    #[cfg(unix)]
    super::limits::apply_before_exec(&mut command, job_limits);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the unpacking process: {e}"))?;
    #[cfg(windows)]
    let _job_object = super::limits::confine(&child, job_limits)
        .map_err(|e| format!("cannot confine the unpacking process: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr_tail = tokio::spawn(super::death::keep_tail(
        child.stderr.take().expect("stderr is piped"),
    ));
    let feed = async move {
        stdin.write_all(&super::wire::encode(&request)).await?;
        if let Some(path) = file {
            let mut f = tokio::fs::File::open(&path).await?;
            tokio::io::copy(&mut f, &mut stdin).await?;
        }
        if let Some(mut rx) = chunks {
            while let Some(chunk) = rx.recv().await {
                stdin.write_all(&chunk).await?;
            }
        }
        stdin.shutdown().await
    };
    let answer = async move {
        let mut line = Vec::new();
        (&mut stdout)
            .take(64 << 10)
            .read_to_end(&mut line)
            .await
            .map(|_| line)
    };
    let work = async {
        // A child that stops reading (it refused an entry) breaks the pipe: its answer
        // says why, so a failed feed is not an error by itself.
        let (_fed, answer) = tokio::join!(feed, answer);
        answer
    };
    let answer = tokio::select! {
        _ = cancel.cancelled() => {
            let _ = child.kill().await;
            return Err("cancelled".into());
        }
        answer = work => answer,
    };
    let status = child.wait().await.ok();
    let answer = answer
        .ok()
        .and_then(|line| serde_json::from_slice::<Answer>(&line).ok());
    match answer {
        Some(Answer::Unpacked { entries, bytes }) => Ok(UnpackStats { entries, bytes }),
        Some(Answer::Refused { message }) => Err(message),
        None => {
            let tail = stderr_tail.await.unwrap_or_default();
            let e = super::death::explain(None, status, &tail, &job_limits);
            Err(e
                .message
                .replacen("the job process", "the unpacking process", 1))
        }
    }
}

/// Starts an unpacking child under the configured limits on an empty archive: job
/// processes can start on this host with these limits (`doctor`).
pub async fn self_check(config: &crate::config::Config) -> Result<(), String> {
    if super::job_program().is_none() {
        return Err("this process registered no program to start job processes with".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("a scratch folder: {e}"))?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    // Two zero blocks: the end of an empty tar archive.
    let _ = tx.send(bytes::Bytes::from(vec![0u8; 1024])).await;
    drop(tx);
    let kind = ArchiveKind::ContainerOutput { top: "out".into() };
    let limits = UnpackLimits::of(config);
    unpack(
        ArchiveSource::Chunks(rx),
        dir.path(),
        kind,
        limits,
        &CancellationToken::new(),
    )
    .await
    .map(|_| ())
}

fn policy_for(
    kind: &ArchiveKind,
    limits: ExtractLimits,
    cancel: CancellationToken,
) -> UnpackPolicy {
    match kind {
        ArchiveKind::ProjectTarball => UnpackPolicy::project_tarball(limits),
        ArchiveKind::ContainerOutput { top } => UnpackPolicy::container_output(top, limits, cancel),
    }
}

/// Entry point of the hidden `__unpack` subcommand.
pub fn unpack_main() -> ExitCode {
    if let Err(e) = crate::cli::core_dumps::disable_core_dumps() {
        eprintln!("cannot turn core dumps off: {e}");
        return ExitCode::FAILURE;
    }
    let mut input = std::io::BufReader::with_capacity(64 << 10, std::io::stdin().lock());
    let mut line = Vec::new();
    if let Err(e) = (&mut input).take(64 << 10).read_until(b'\n', &mut line) {
        eprintln!("no request: {e}");
        return ExitCode::FAILURE;
    }
    let request: Request = match serde_json::from_slice(&line) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("unreadable request: {e}");
            return ExitCode::FAILURE;
        }
    };
    let limits = ExtractLimits {
        max_entries: request.max_entries,
        max_unpacked_bytes: request.max_unpacked_bytes,
    };
    let policy = policy_for(&request.kind, limits, CancellationToken::new());
    let result = match request.kind {
        ArchiveKind::ProjectTarball => {
            archive::unpack(archive::gunzip(input), &request.dest, &policy)
        }
        ArchiveKind::ContainerOutput { .. } => archive::unpack(input, &request.dest, &policy),
    };
    let answer = match result {
        Ok(stats) => Answer::Unpacked {
            entries: stats.entries,
            bytes: stats.bytes,
        },
        Err(e) => Answer::Refused {
            message: e.to_string(),
        },
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&super::wire::encode(&answer));
    let _ = out.flush();
    ExitCode::SUCCESS
}

/// A blocking [`Read`] over byte chunks sent from async code; end of input when the sender
/// is dropped. Few chunks are buffered, so memory stays small.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl ChunkReader {
    fn new(chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        ChunkReader {
            chunks,
            current: bytes::Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
