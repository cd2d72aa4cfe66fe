//! The step's inputs as a tar stream for `upload_to_container`, produced on the fly.
//!
//! A blocking task walks the input files and writes the tar into a bounded channel in
//! 64 KiB chunks; the HTTP body reads from the channel. Memory stays at a few chunks
//! whatever the input size, and dropping the body (timeout, cancel) stops the writer.
//!
//! The engine extracts archives as root and ignores our uid/gid, so entries get write
//! permission for everybody (folders 0777, files 0666 or 0777 when executable): the
//! container's non-root user must be able to write next to its inputs. The container
//! is disposable, so this widens nothing outside it. Symlinks are stored as links, never
//! followed; other special files are refused.

use crate::sandbox::paths::step_relative;
use crate::sandbox::StepInput;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

const CHUNK: usize = 64 * 1024;
const CHANNEL_CHUNKS: usize = 8;

/// The tar stream of `inputs` and the empty `folders` (for `bollard::body_try_stream`)
/// and the task producing it, which reports the first error (missing input, special file,
/// …) when joined.
pub(crate) fn input_tar_stream(
    inputs: &[StepInput],
    folders: &[String],
) -> (
    impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static,
    tokio::task::JoinHandle<Result<()>>,
) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let inputs = inputs.to_vec();
    let folders = folders.to_vec();
    let writer_task = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_inputs_tar(&inputs, &folders, &mut writer)
            .and_then(|()| writer.flush().map_err(Into::into));
        if let Err(e) = &result {
            // Make the upload fail instead of sending a silently truncated archive.
            let _ = tx.blocking_send(Err(io::Error::other(format!("{e:#}"))));
        }
        result
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (stream, writer_task)
}

/// Writes the tar of `inputs` (paths relative to the work dir), then of the empty
/// `folders` (the step's output folders, parents listed first), into `out`.
pub(crate) fn write_inputs_tar(
    inputs: &[StepInput],
    folders: &[String],
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut dirs_written = HashSet::new();
    for folder in folders {
        let parts = step_relative(folder)?;
        for depth in 1..=parts.len() {
            write_dir(&mut tar, &parts[..depth].join("/"), &mut dirs_written)?;
        }
    }
    for input in inputs {
        let parts = step_relative(&input.dest)?;
        // Parent folders first, with our permissions (the engine would create them 0755 root).
        for depth in 1..parts.len() {
            write_dir(&mut tar, &parts[..depth].join("/"), &mut dirs_written)?;
        }
        add_tree(
            &mut tar,
            &input.host_path,
            &parts.join("/"),
            &mut dirs_written,
        )
        .with_context(|| format!("adding input {}", input.host_path.display()))?;
    }
    tar.finish()?;
    Ok(())
}

fn add_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    from: &Path,
    name: &str,
    dirs: &mut HashSet<String>,
) -> Result<()> {
    let meta = fs::symlink_metadata(from).with_context(|| format!("reading {}", from.display()))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        if !name.is_empty() {
            write_dir(tar, name, dirs)?;
        }
        let mut children: Vec<PathBuf> = fs::read_dir(from)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()?;
        children.sort();
        for child in children {
            let file_name = child
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let child_name = if name.is_empty() {
                file_name
            } else {
                format!("{name}/{file_name}")
            };
            add_tree(tar, &child, &child_name, dirs)?;
        }
        Ok(())
    } else if name.is_empty() {
        bail!(
            "{} is a file; a file input needs a destination name",
            from.display()
        )
    } else if kind.is_symlink() {
        let target = fs::read_link(from)?;
        let mut header = header(tar::EntryType::Symlink, 0o777, &meta);
        tar.append_link(&mut header, name, &target)?;
        Ok(())
    } else if kind.is_file() {
        let mode = if is_executable(&meta) { 0o777 } else { 0o666 };
        let mut header = header(tar::EntryType::Regular, mode, &meta);
        header.set_size(meta.len());
        let file = fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
        tar.append_data(&mut header, name, file)?;
        Ok(())
    } else {
        bail!("{} is not a regular file, folder or link", from.display())
    }
}

fn write_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    dirs: &mut HashSet<String>,
) -> Result<()> {
    if dirs.insert(name.to_string()) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o777);
        header.set_size(0);
        header.set_mtime(0);
        tar.append_data(&mut header, format!("{name}/"), io::empty())?;
    }
    Ok(())
}

fn header(kind: tar::EntryType, mode: u32, meta: &fs::Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(0);
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    header.set_mtime(mtime);
    header
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

/// `Write` into the channel in chunks, blocking while the HTTP body is behind.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u32)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn folders_files_and_parents_are_streamed_with_writable_modes() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("proj/src")).unwrap();
        fs::write(dir.path().join("proj/src/main.ts"), "code").unwrap();
        fs::write(dir.path().join("icon.png"), vec![7u8; 200_000]).unwrap();
        let inputs = vec![
            StepInput {
                host_path: dir.path().join("proj"),
                dest: "".into(),
            },
            StepInput {
                host_path: dir.path().join("icon.png"),
                dest: "assets/img/icon.png".into(),
            },
        ];
        let (stream, task) = input_tar_stream(&inputs, &["out".into(), "dist/pkg".into()]);
        let chunks: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
        task.await.unwrap().unwrap();
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        let bytes: Vec<u8> = chunks.concat();
        let listed = entries(&bytes);
        let names: Vec<&str> = listed.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "out/",
                "dist/",
                "dist/pkg/",
                "src/",
                "src/main.ts",
                "assets/",
                "assets/img/",
                "assets/img/icon.png"
            ]
        );
        assert!(listed.iter().all(|(_, kind, mode)| if kind.is_dir() {
            *mode == 0o777
        } else {
            *mode == 0o666
        }));
    }

    #[tokio::test]
    async fn a_missing_input_fails_the_stream() {
        let inputs = vec![StepInput {
            host_path: "/nonexistent/perry-input".into(),
            dest: "x".into(),
        }];
        let (stream, task) = input_tar_stream(&inputs, &[]);
        let items: Vec<io::Result<Bytes>> = stream.collect().await;
        assert!(items.iter().any(|i| i.is_err()));
        assert!(task.await.unwrap().is_err());
    }

    #[test]
    fn escaping_destinations_are_refused() {
        let inputs = vec![StepInput {
            host_path: "/etc/hostname".into(),
            dest: "../x".into(),
        }];
        assert!(write_inputs_tar(&inputs, &[], io::sink()).is_err());
    }
}
