//! Moving files across the container boundary through the engine's archive API: inputs
//! go in as one streamed tar ([`super::tar_in`]), each output comes back as a tar streamed
//! through the unpacker's checks and limits ([`crate::untrusted::archive`], container output
//! policy) without touching
//! the disk first. Memory does not grow with the size of either.

use super::engine::engine_error;
use super::spec::TargetOs;
use super::tar_in;
use crate::config::ExtractLimits;
use crate::sandbox::paths::step_relative;
use crate::sandbox::StepInput;
use crate::untrusted::archive::{self, UnpackPolicy};
use anyhow::{anyhow, Context, Result};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Streams `inputs` and the empty output `folders` as one tar archive into the
/// container's work dir.
pub async fn copy_in(
    docker: &Docker,
    os: TargetOs,
    id: &str,
    inputs: &[StepInput],
    folders: &[String],
) -> Result<()> {
    let (stream, writer) = tar_in::input_tar_stream(inputs, folders);
    let options = UploadToContainerOptionsBuilder::new()
        .path(os.work_dir())
        .build();
    let upload = docker
        .upload_to_container(id, Some(options), bollard::body_try_stream(stream))
        .await;
    let written = writer.await.context("input archive task")?;
    match (upload, written) {
        (Ok(()), Ok(())) => Ok(()),
        // The writer's own error (missing input, special file) explains a failure best,
        // unless it only saw the engine hang up.
        (_, Err(e)) if !is_broken_pipe(&e) => Err(e),
        (Err(e), _) => Err(engine_error(
            "copying the inputs into the container",
            None,
            e,
        )),
        (Ok(()), Err(e)) => Err(e),
    }
}

/// Streams `/work/<output>` straight into the checked unpacker (on a blocking thread):
/// nothing is spooled, and the download stops as soon as the unpacker refuses an entry or
/// the entry/byte limits are reached.
pub async fn copy_out(
    docker: &Docker,
    os: TargetOs,
    limits: ExtractLimits,
    cancel: &CancellationToken,
    id: &str,
    output: &str,
    output_dir: &Path,
) -> Result<()> {
    let parts = step_relative(output)?;
    let Some((top, parents)) = parts.split_last() else {
        anyhow::bail!("step output {output:?} names the whole work dir");
    };
    let target_root: PathBuf = parents
        .iter()
        .fold(output_dir.to_path_buf(), |p, part| p.join(part));
    let container_path = os.container_path(output)?;
    let options = DownloadFromContainerOptionsBuilder::new()
        .path(&container_path)
        .build();
    let mut body = docker.download_from_container(id, Some(options));

    let (chunks, reader) = ChunkReader::channel();
    let policy = UnpackPolicy::container_output(top, limits, cancel.clone());
    let unpacker = tokio::task::spawn_blocking(move || {
        archive::unpack(std::io::BufReader::new(reader), &target_root, &policy)
    });
    let mut download_error = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                if chunks.send(chunk).await.is_err() {
                    break; // the unpacker stopped: its error says why
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                download_error = Some(anyhow!("step output {output:?} was not produced"));
                break;
            }
            Err(other) => {
                download_error = Some(engine_error(
                    &format!("copying output {output:?} out of the container"),
                    None,
                    other,
                ));
                break;
            }
        }
    }
    drop(chunks);
    drop(body);
    let unpacked = unpacker.await.context("output unpack task")?;
    if let Some(e) = download_error {
        return Err(e);
    }
    unpacked.with_context(|| format!("unpacking step output {output:?}"))?;
    Ok(())
}

/// A blocking [`std::io::Read`] over byte chunks sent from async code; end of input when
/// the sender is dropped. Few chunks are buffered, so memory stays small.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl ChunkReader {
    fn channel() -> (tokio::sync::mpsc::Sender<bytes::Bytes>, ChunkReader) {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        (
            tx,
            ChunkReader {
                chunks: rx,
                current: bytes::Bytes::new(),
            },
        )
    }
}

impl std::io::Read for ChunkReader {
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

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
