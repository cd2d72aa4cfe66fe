//! Reproducible packages and build records, through the binary as a user runs it (host
//! processes: the stand-in compiler, makensis, mingw):
//! two unsigned builds in different work folders at different times give the same bytes
//! for all three formats, another SOURCE_DATE_EPOCH changes them; the PE files of a signed
//! build with their signatures left out equal the unsigned build's; `verify` passes on a
//! good artifact and fails on a tampered byte, a wrong record and a different project.

use perry_test_support::verify_support;

use base64::Engine as _;
use perry_ship_windows::provenance::{self, check, compare};
use std::path::Path;
use std::process::Command;
use verify_support::example_project::*;
use verify_support::*;

#[test]
fn unsigned_builds_are_byte_identical_and_follow_source_date_epoch() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (mode, name) in MODES {
        let first = build(
            &example_dir(),
            mode,
            &t.join("work-a"),
            &t.join("a"),
            &[],
            &[],
        );
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let second = build(
            &example_dir(),
            mode,
            &t.join("elsewhere/work-b"),
            &t.join("b"),
            &[],
            &[],
        );
        let other = build(
            &example_dir(),
            mode,
            &t.join("work-c"),
            &t.join("c"),
            &[],
            &[("SOURCE_DATE_EPOCH", "1700000000")],
        );
        assert!(first.ends_with(name), "{first:?}");
        let bytes = |p: &Path| std::fs::read(p).unwrap();
        assert_eq!(bytes(&first), bytes(&second), "{mode}: two builds differ");
        assert_ne!(
            bytes(&first),
            bytes(&other),
            "{mode}: SOURCE_DATE_EPOCH changed nothing"
        );
        let (ra, rb) = (
            provenance::record_path(&first),
            provenance::record_path(&second),
        );
        assert_eq!(bytes(&ra), bytes(&rb), "{mode}: the records differ");
        let envelope = provenance::read_record(&ra).unwrap();
        assert!(
            envelope.signatures.is_empty(),
            "an unsigned build has an unsigned record"
        );
        let checked = check::check_record(&envelope, &first).unwrap();
        assert_eq!(
            checked.statement["predicate"]["buildDefinition"]["externalParameters"]["buildKind"],
            "full"
        );
    }
}

/// Extracts an NSIS installer with 7z; `None` when 7z is missing (skip).
fn unpack_installer(setup: &Path, to: &Path) -> Option<Vec<(String, Vec<u8>)>> {
    if !fixtures::require_tools(&["7z"]) {
        return None;
    }
    fixtures::run(
        Command::new("7z")
            .arg("x")
            .arg("-y")
            .arg(format!("-o{}", to.display()))
            .arg(setup),
    );
    let mut files: Vec<(String, Vec<u8>)> = fixtures::files_under(to)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(to).unwrap().display().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    Some(files)
}

#[test]
fn signed_builds_differ_from_unsigned_ones_only_by_their_signatures() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, creds) = pfx_credentials(t);
    let creds_arg = ["--credentials", creds.to_str().unwrap()];
    for (mode, _) in MODES {
        let unsigned = build(
            &example_dir(),
            mode,
            &t.join("work"),
            &t.join(format!("u-{mode}")),
            &[],
            &[],
        );
        let signed = build(
            &example_dir(),
            mode,
            &t.join("work"),
            &t.join(format!("s-{mode}")),
            &creds_arg,
            &[],
        );
        assert_ne!(
            std::fs::read(&signed).unwrap(),
            std::fs::read(&unsigned).unwrap()
        );
        if mode == "installer" {
            let (Some(s), Some(u)) = (
                unpack_installer(&signed, &t.join("s-unpacked")),
                unpack_installer(&unsigned, &t.join("u-unpacked")),
            ) else {
                return;
            };
            let names =
                |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            assert_eq!(names(&s), names(&u));
            let mut signed_pes = 0;
            for ((name, sb), (_, ub)) in s.iter().zip(u.iter()) {
                if check::is_pe(ub) && sb != ub {
                    signed_pes += 1;
                    assert_eq!(
                        compare::pe_content_digest(sb).unwrap(),
                        compare::pe_content_digest(ub).unwrap(),
                        "{name}"
                    );
                } else {
                    assert_eq!(sb, ub, "{name} differs");
                }
            }
            assert!(
                signed_pes >= 2,
                "the exe and its DLL are signed inside the installer"
            );
        } else {
            compare::compare_with_rebuild(&signed, &unsigned)
                .unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
        // The signed artifact verifies, with its signed record; a flipped byte does not.
        let out = verify(&[&signed], &[]);
        assert!(out.status.success(), "{mode}: {}", report(&out));
        let text = report(&out);
        assert!(text.contains("build record signed by"), "{text}");
        assert!(text.contains("Authenticode signature by"), "{text}");
        if mode == "installer" {
            assert!(
                text.contains("installer payload:")
                    && text.contains(".dll: Authenticode signature by"),
                "the payload's PE files are checked: {text}"
            );
        }
        let tampered = t.join(format!("tampered-{mode}"));
        std::fs::create_dir_all(&tampered).unwrap();
        let copy = tampered.join(signed.file_name().unwrap());
        std::fs::copy(&signed, &copy).unwrap();
        std::fs::copy(
            provenance::record_path(&signed),
            provenance::record_path(&copy),
        )
        .unwrap();
        // A record whose signature was altered fails, even for the untouched artifact.
        let mut envelope = provenance::read_record(&provenance::record_path(&signed)).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut sig = b64.decode(&envelope.signatures[0].sig).unwrap();
        sig[10] ^= 1;
        envelope.signatures[0].sig = b64.encode(sig);
        let forged = t.join(format!("forged-{mode}.intoto.jsonl"));
        std::fs::write(&forged, serde_json::to_string(&envelope).unwrap()).unwrap();
        let out = verify(&[&signed, Path::new("--record"), &forged], &[]);
        assert_eq!(out.status.code(), Some(1), "{mode}: {}", report(&out));
        assert!(
            report(&out).contains("record signature"),
            "{}",
            report(&out)
        );
        fixtures::flip_byte(&copy);
        let out = verify(&[&copy], &[]);
        assert_eq!(out.status.code(), Some(1), "{mode}: {}", report(&out));
        assert!(report(&out).contains("FAIL"), "{}", report(&out));
    }
}

#[test]
fn verify_rebuilds_from_the_project_and_catches_a_wrong_record_or_project() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tarball = t.join("project.tar.gz");
    std::fs::write(&tarball, tarball_of(&example_dir())).unwrap();
    let manifest = t.join("manifest.json");
    std::fs::write(&manifest, example_manifest("portable").to_string()).unwrap();
    let args = ["--manifest", manifest.to_str().unwrap()];
    let zip = build(
        &tarball,
        "portable",
        &t.join("work"),
        &t.join("out"),
        &args,
        &[],
    );
    let record = provenance::record_path(&zip);
    let work = t.join("verify-work");
    let env = [("PERRY_WORK_DIR", work.to_str().unwrap())];

    let out = verify_rebuild(&zip, &tarball, &manifest, &env);
    let text = report(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("the project is the record's project.tar.gz"),
        "{text}"
    );
    assert!(
        text.contains("unsigned rebuild from the project and manifest matches"),
        "{text}"
    );

    // Another SOURCE_DATE_EPOCH than the record's is refused before rebuilding.
    let out = verify_rebuild(
        &zip,
        &tarball,
        &manifest,
        &[env[0], ("SOURCE_DATE_EPOCH", "1700000000")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", report(&out));

    // A different project: its digest is not the record's, and its rebuild differs.
    let other_dir = example_with_marker(&t.join("other"), "another project");
    std::fs::write(
        other_dir.join("assets/extra.txt"),
        "a file the example lacks",
    )
    .unwrap();
    let other = t.join("other.tar.gz");
    std::fs::write(&other, tarball_of(&other_dir)).unwrap();
    let out = verify_rebuild(&zip, &other, &manifest, &env);
    assert_verify_fails(&out, "the project is not the record's");
    // Without a record the rebuild itself shows the difference.
    let bare = t.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let bare_zip = bare.join(zip.file_name().unwrap());
    std::fs::copy(&zip, &bare_zip).unwrap();
    let out = verify_rebuild(&bare_zip, &other, &manifest, &env);
    assert_verify_fails(&out, "rebuild:");

    // A wrong record: another artifact's.
    let setup = build(
        &tarball,
        "installer",
        &t.join("work"),
        &t.join("out2"),
        &args,
        &[],
    );
    let out = verify(
        &[
            &zip,
            Path::new("--record"),
            &provenance::record_path(&setup),
        ],
        &env,
    );
    assert_verify_fails(&out, "the record is for sha256");
    // A record whose statement was edited no longer matches its own subject or signature.
    let line = std::fs::read_to_string(&record).unwrap();
    let edited = line.replace("\"payload\":\"", "\"payload\":\"eyJ");
    let edited_path = t.join("edited.intoto.jsonl");
    std::fs::write(&edited_path, edited).unwrap();
    let out = verify(&[&zip, Path::new("--record"), &edited_path], &env);
    assert_eq!(out.status.code(), Some(1), "{}", report(&out));

    // A tampered artifact fails against its record.
    fixtures::flip_byte(&zip);
    let out = verify(&[&zip], &env);
    assert_verify_fails(&out, "the record is for sha256");
}
