//! Moving files across the container boundary through the engine's archive API: inputs
//! go in as one streamed tar ([`super::tar_in`]), each output comes back as a tar streamed
//! into the unpacking child process ([`crate::isolation::unpack`], container output policy)
//! without touching the disk first. Memory does not grow with the size of either.

use super::engine::engine_error;
use super::spec::TargetOs;
use super::tar_in;
use crate::isolation::unpack::{self, ArchiveKind, ArchiveSource, UnpackLimits};
use crate::sandbox::paths::step_relative;
use crate::sandbox::StepInput;
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
pub(crate) async fn copy_in(
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
pub(crate) async fn copy_out(
    docker: &Docker,
    os: TargetOs,
    limits: UnpackLimits,
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

    let (chunks, received) = tokio::sync::mpsc::channel(8);
    let kind = ArchiveKind::ContainerOutput {
        top: top.to_string(),
    };
    let (cancel, root) = (cancel.clone(), target_root.clone());
    let unpacker = tokio::spawn(async move {
        unpack::unpack(
            ArchiveSource::Chunks(received),
            &root,
            kind,
            limits,
            &cancel,
        )
        .await
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
    unpacked
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("unpacking step output {output:?}"))?;
    Ok(())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
