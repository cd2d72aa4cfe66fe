//! STAND-IN (hub branch only): replaced by the job helper's version at merge.
use std::path::{Path, PathBuf};

pub struct JobWorkDir {
    path: PathBuf,
}

impl JobWorkDir {
    pub fn create(root: &Path, job_id: &str, attempt: u32) -> anyhow::Result<JobWorkDir> {
        let safe: String = job_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = root.join(format!("job-{safe}-{attempt}"));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("project"))?;
        Ok(JobWorkDir { path })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn project_dir(&self) -> PathBuf {
        self.path.join("project")
    }
}

impl Drop for JobWorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn ensure_free_disk(path: &Path, min: u64) -> anyhow::Result<()> {
    let _ = (path, min);
    Ok(())
}
