//! What the worker lets a job's child ask for: steps only on the job's own files, artifacts
//! only among the job's files.

use super::wire::WireArtifact;
use super::{check_artifact, check_step, JobFolders};
use crate::sandbox::{Step, StepInput};
use std::path::Path;
use std::time::Duration;

fn step(image: &str, input: &Path) -> Step {
    Step {
        name: "compile".into(),
        image: image.into(),
        argv: vec!["perry".into()],
        env: Vec::new(),
        inputs: vec![StepInput {
            host_path: input.to_path_buf(),
            dest: "project".into(),
        }],
        outputs: vec!["out/".into()],
        cwd: String::new(),
        timeout: Duration::from_secs(60),
    }
}

#[test]
fn a_step_may_read_only_the_job_and_write_only_into_its_folder() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("job");
    let other = root.path().join("other-job");
    std::fs::create_dir_all(work.join("project")).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret.exe"), "x").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(other.join("secret.exe"), work.join("project/link.exe")).unwrap();
    let job = JobFolders {
        image: "toolchain:latest",
        work_dir: &work,
        project_dir: &work.join("project"),
    };
    let out = work.join("compile");

    assert_eq!(
        check_step(&job, &step("toolchain:latest", &work.join("project")), &out),
        Ok(())
    );
    let outside = check_step(&job, &step("toolchain:latest", &other), &out).unwrap_err();
    assert!(outside.contains("a file outside the job"), "{outside}");
    #[cfg(unix)]
    {
        let via_link = step("toolchain:latest", &work.join("project/link.exe"));
        assert!(check_step(&job, &via_link, &out).is_err());
    }
    let image = check_step(&job, &step("evil:latest", &work.join("project")), &out).unwrap_err();
    assert!(image.contains("another image"), "{image}");
    let escape = work.join("../other-job");
    let write = check_step(
        &job,
        &step("toolchain:latest", &work.join("project")),
        &escape,
    );
    assert!(write.unwrap_err().contains("write outside the job folder"));
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&other, work.join("evil")).unwrap();
        let project_input = step("toolchain:latest", &work.join("project"));
        let write = check_step(&job, &project_input, &work.join("evil/compile"));
        assert!(write.unwrap_err().contains("write outside the job folder"));
    }
}

#[test]
fn an_artifact_must_be_a_regular_file_of_the_job() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("job");
    std::fs::create_dir_all(work.join("package")).unwrap();
    std::fs::write(work.join("package/App.zip"), "zip").unwrap();
    std::fs::write(root.path().join("elsewhere.zip"), "zip").unwrap();
    let artifact = |path: &Path| WireArtifact {
        path: path.to_path_buf(),
        name: "App.zip".into(),
        target: "windows".into(),
    };

    assert!(check_artifact(&work, artifact(&work.join("package/App.zip"))).is_ok());
    let outside = check_artifact(&work, artifact(&root.path().join("elsewhere.zip"))).unwrap_err();
    assert!(
        outside.message.contains("not a file of the job"),
        "{}",
        outside.message
    );
    assert!(check_artifact(&work, artifact(&work.join("package"))).is_err());
    #[cfg(unix)]
    {
        let link = work.join("package/link.zip");
        std::os::unix::fs::symlink(root.path().join("elsewhere.zip"), &link).unwrap();
        assert!(check_artifact(&work, artifact(&link)).is_err());
    }
}
