//! `perry-ship-windows verify ARTIFACT [--record FILE] [--project TARBALL --manifest FILE]`:
//! checks the Authenticode signature of every PE file in the artifact (and an MSIX's
//! package signature), its build record (DSSE signature, subject digest, signer) and,
//! given the project and manifest, rebuilds it unsigned and compares, saying what it
//! compared. Prints one line per check; exit status 0 when all pass.

use super::build::{build_for_verify, BuildArgs};
use super::project::read_json_file;
use crate::job::manifest::Manifest;
use crate::package::source_date::source_date_secs;
use crate::provenance::check::{self, ArtifactKind, PeSignature};
use crate::provenance::{compare, inputs, read_record, record_path, statement};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The Setup.exe, portable .zip or .msix to check.
    pub(crate) artifact: PathBuf,
    /// The build record (default: `<artifact>.intoto.jsonl` when it exists).
    #[arg(long)]
    pub(crate) record: Option<PathBuf>,
    /// Project tarball (or folder) to rebuild from; needs --manifest.
    #[arg(long, requires = "manifest")]
    pub(crate) project: Option<PathBuf>,
    /// Manifest JSON (hub format) of the build; needs --project.
    #[arg(long, requires = "project")]
    pub(crate) manifest: Option<PathBuf>,
    /// Rebuild in Docker containers (overrides PERRY_DOCKER_ENABLED).
    #[arg(long, conflicts_with = "no_docker")]
    pub(crate) docker: bool,
    /// Rebuild with host processes (overrides PERRY_DOCKER_ENABLED).
    #[arg(long)]
    pub(crate) no_docker: bool,
}

/// The lines of the report and whether anything failed.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn ok(&mut self, line: impl AsRef<str>) {
        println!("ok    {}", line.as_ref());
    }
    fn note(&mut self, line: impl AsRef<str>) {
        println!("note  {}", line.as_ref());
    }
    fn fail(&mut self, line: impl AsRef<str>) {
        self.failed = true;
        println!("FAIL  {}", line.as_ref());
    }
}

/// Runs `verify`: prints one line per check; exit status 0 when all pass.
pub async fn verify(args: VerifyArgs) -> ExitCode {
    let mut report = Report::default();
    run_checks(&args, &mut report).await;
    if report.failed {
        println!("verification FAILED");
        ExitCode::FAILURE
    } else {
        println!("verification passed");
        ExitCode::SUCCESS
    }
}

async fn run_checks(args: &VerifyArgs, report: &mut Report) {
    let artifact = &args.artifact;
    let kind = match ArtifactKind::of(artifact) {
        Ok(k) if artifact.is_file() => k,
        Ok(_) => return report.fail(format!("{} is not a file", artifact.display())),
        Err(e) => return report.fail(e),
    };
    let signers = check_authenticode(artifact, report);
    let record = args
        .record
        .clone()
        .or_else(|| Some(record_path(artifact)).filter(|p| p.is_file()));
    let statement = match &record {
        Some(path) => check_record(path, artifact, &signers, report),
        None => {
            report.note("no build record given (--record) or found beside the artifact");
            None
        }
    };
    if let (Some(project), Some(manifest)) = (&args.project, &args.manifest) {
        check_rebuild(args, project, manifest, kind, statement.as_ref(), report).await;
    }
}

/// Reports every PE file's signature; returns the thumbprints of the valid signers.
fn check_authenticode(artifact: &Path, report: &mut Report) -> Vec<String> {
    let reports = match check::authenticode_reports(artifact) {
        Ok(r) => r,
        Err(e) => {
            report.fail(format!("reading {}: {e}", artifact.display()));
            return Vec::new();
        }
    };
    let mut signers = Vec::new();
    for r in &reports {
        match &r.signature {
            PeSignature::Valid {
                thumbprint,
                timestamped,
            } => {
                let ts = if *timestamped {
                    "timestamped"
                } else {
                    "NOT timestamped"
                };
                report.ok(format!(
                    "{}: Authenticode signature by {thumbprint}, {ts}",
                    r.name
                ));
                signers.push(thumbprint.clone());
            }
            PeSignature::Unsigned => report.note(format!("{}: unsigned", r.name)),
            PeSignature::Invalid(_) => {}
        }
    }
    for problem in check::authenticode_problems(&reports) {
        report.fail(problem);
    }
    signers.sort();
    signers.dedup();
    signers
}

fn check_record(
    path: &Path,
    artifact: &Path,
    pe_signers: &[String],
    report: &mut Report,
) -> Option<serde_json::Value> {
    let envelope = match read_record(path) {
        Ok(e) => e,
        Err(e) => {
            report.fail(format!("{e:#}"));
            return None;
        }
    };
    let checked = match check::check_record(&envelope, artifact) {
        Ok(c) => c,
        Err(e) => {
            report.fail(format!("build record {}: {e}", path.display()));
            return None;
        }
    };
    report.ok(format!(
        "build record {} is for this artifact",
        path.display()
    ));
    let recorded = checked.statement["predicate"]["buildDefinition"]["internalParameters"]
        ["signingCertificateThumbprint"]
        .as_str()
        .map(str::to_string);
    if checked.signers.is_empty() {
        report.note("the build record is unsigned");
    } else {
        report.ok(format!(
            "build record signed by {}",
            checked.signers.join(", ")
        ));
    }
    if let Some(t) = &recorded {
        if !checked.signers.iter().all(|s| s.eq_ignore_ascii_case(t)) {
            report.fail(format!(
                "the record was signed by another certificate than {t}"
            ));
        }
        if pe_signers.iter().any(|s| !s.eq_ignore_ascii_case(t)) {
            report.fail(format!(
                "the artifact is signed by another certificate than {t}"
            ));
        }
    } else if !pe_signers.is_empty() {
        report.fail("the artifact is signed but its record says it is an unsigned build");
    }
    Some(checked.statement)
}

async fn check_rebuild(
    args: &VerifyArgs,
    project: &Path,
    manifest_path: &Path,
    kind: ArtifactKind,
    statement: Option<&serde_json::Value>,
    report: &mut Report,
) {
    if let Some(statement) = statement {
        if !recorded_inputs_match(project, manifest_path, kind, statement, report) {
            return;
        }
    }
    let mut config = match crate::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => return report.fail(format!("invalid configuration: {e}")),
    };
    config.docker.enabled = (config.docker.enabled || args.docker) && !args.no_docker;
    let out = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return report.fail(format!("creating a scratch folder: {e}")),
    };
    let build = BuildArgs {
        project: project.to_path_buf(),
        manifest: Some(manifest_path.to_path_buf()),
        credentials: None,
        distribute: Some(kind.distribute().into()),
        out: out.path().to_path_buf(),
        docker: false,
        no_docker: false,
        verbose: false,
    };
    let rebuilt = match build_for_verify(&build, config).await {
        Ok(p) => p,
        Err(e) => return report.fail(format!("rebuilding: {e}")),
    };
    match compare::compare_with_rebuild(&args.artifact, &rebuilt) {
        Ok(compared) => report.ok(format!(
            "an unsigned rebuild from the project and manifest matches the artifact ({compared})"
        )),
        Err(e) => report.fail(format!("rebuild: {e}")),
    }
}

/// Compares the project, manifest and SOURCE_DATE_EPOCH with what the record names.
fn recorded_inputs_match(
    project: &Path,
    manifest_path: &Path,
    kind: ArtifactKind,
    statement: &serde_json::Value,
    report: &mut Report,
) -> bool {
    let mut ok = true;
    let project_digest = if project.is_dir() {
        inputs::tree_sha256(project).map(|d| (inputs::PROJECT_TREE, d))
    } else {
        inputs::sha256_file(project).map(|d| (inputs::PROJECT_ARCHIVE, d))
    };
    match project_digest {
        Ok((name, digest)) => match statement::dependency_sha256(statement, name) {
            Some(recorded) if recorded.eq_ignore_ascii_case(&digest) => {
                report.ok(format!("the project is the record's {name}"))
            }
            _ => {
                ok = false;
                report.fail(format!("the project is not the record's {name}"));
            }
        },
        Err(e) => {
            ok = false;
            report.fail(format!("hashing {}: {e}", project.display()));
        }
    }
    let manifest_digest = read_json_file(manifest_path)
        .map_err(|e| format!("{e:#}"))
        .and_then(|mut json| {
            json["windows_distribute"] = serde_json::json!(kind.distribute());
            Manifest::from_json(&json).map_err(|e| e.to_string())
        })
        .map(|m| inputs::manifest_sha256(&m));
    match manifest_digest {
        Ok(d) if statement::dependency_sha256(statement, "manifest.json") == Some(d.as_str()) => {
            report.ok("the manifest is the record's")
        }
        Ok(_) => {
            ok = false;
            report.fail("the manifest is not the record's");
        }
        Err(e) => {
            ok = false;
            report.fail(format!("manifest {}: {e}", manifest_path.display()));
        }
    }
    let recorded_date =
        statement["predicate"]["buildDefinition"]["externalParameters"]["sourceDateEpoch"].as_u64();
    if let Some(date) = recorded_date.filter(|d| *d != source_date_secs()) {
        ok = false;
        report.fail(format!(
            "the record was built with SOURCE_DATE_EPOCH={date}; run verify with the same"
        ));
    }
    ok
}
