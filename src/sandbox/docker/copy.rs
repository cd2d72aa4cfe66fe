//! Moving files across the container boundary through the engine's archive API: inputs
//! go in as one streamed tar ([`super::tar_in`]), each output comes back as a tar spooled
//! to disk and unpacked with traversal checks ([`super::unpack`]). Memory does not grow
//! with the size of either.

use super::engine::engine_error;
use super::spec::TargetOs;
use super::{tar_in, unpack};
use crate::config::ExtractLimits;
use crate::sandbox::paths::step_relative;
use crate::sandbox::StepInput;
use anyhow::{anyhow, Context, Result};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

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

/// Streams `/work/<output>` into a temp file, then unpacks it into `output_dir`.
pub async fn copy_out(
    docker: &Docker,
    os: TargetOs,
    limits: ExtractLimits,
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

    let spool_dir = output_dir
        .parent()
        .filter(|p| p.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let spool =
        tempfile::NamedTempFile::new_in(&spool_dir).context("creating the output spool file")?;
    let mut file = tokio::fs::File::from_std(spool.reopen()?);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => {
                anyhow!("step output {output:?} was not produced")
            }
            other => engine_error(
                &format!("copying output {output:?} out of the container"),
                None,
                other,
            ),
        })?;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    drop(file);

    let top = top.to_string();
    let spool_path = spool.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let reader = std::io::BufReader::new(std::fs::File::open(&spool_path)?);
        unpack::unpack_checked(reader, &target_root, &top, limits)
    })
    .await
    .context("output unpack task")?
    .with_context(|| format!("unpacking step output {output:?}"))?;
    drop(spool);
    Ok(())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
