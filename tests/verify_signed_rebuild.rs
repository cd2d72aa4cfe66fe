//! `verify --project --manifest` on signed artifacts (host processes): the unsigned rebuild
//! matches a signed portable ZIP, MSIX and installer file by file, each PE file with its
//! signature stripped, and the report says what was compared; a different project fails,
//! by its record and, without a record, by the rebuild itself.

use perry_test_support::verify_support;

use verify_support::example_project::*;
use verify_support::*;

/// What the report must say was compared, per format.
fn compared(mode: &str) -> &'static [&'static str] {
    match mode {
        "portable" => &["(ZIP entries: "],
        "msix" => &[
            "(MSIX entries: ",
            "AppxManifest.xml apart from Identity Publisher",
            "[Content_Types].xml apart from signing",
            "AppxBlockMap.xml apart from signing",
            "AppxSignature.p7x checked as the package signature",
        ],
        _ => &[
            "(installer payload (7z): ",
            "the installer's program byte for byte",
        ],
    }
}

#[test]
fn signed_artifacts_verify_against_their_project_and_not_another() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, creds) = pfx_credentials(t);
    let tarball = t.join("project.tar.gz");
    std::fs::write(&tarball, tarball_of(&example_dir())).unwrap();
    let manifest = t.join("manifest.json");
    std::fs::write(&manifest, example_manifest("portable").to_string()).unwrap();
    let other_dir = example_with_marker(&t.join("other"), "another project");
    std::fs::write(
        other_dir.join("assets/extra.txt"),
        "a file the example lacks",
    )
    .unwrap();
    let other = t.join("other.tar.gz");
    std::fs::write(&other, tarball_of(&other_dir)).unwrap();
    let args = [
        "--manifest",
        manifest.to_str().unwrap(),
        "--credentials",
        creds.to_str().unwrap(),
    ];
    let work = t.join("verify-work");
    let env = [("PERRY_WORK_DIR", work.to_str().unwrap())];
    for (mode, _) in MODES {
        let signed = build(&tarball, mode, &t.join("work"), &t.join(mode), &args, &[]);

        let out = verify_rebuild(&signed, &tarball, &manifest, &env);
        assert_verify_passes(
            &out,
            "an unsigned rebuild from the project and manifest matches the artifact",
        );
        let text = report(&out);
        for what in compared(mode) {
            assert!(text.contains(what), "{mode}: {what}: {text}");
        }
        assert!(
            text.contains("PE files with their signatures stripped")
                && !text.contains(" 0 PE files with"),
            "{mode}: the signed PE files were compared without their signatures: {text}"
        );

        // Another project: refused by the record, and by the rebuild without one.
        let out = verify_rebuild(&signed, &other, &manifest, &env);
        assert_verify_fails(&out, "the project is not the record's");
        let bare = t.join(format!("bare-{mode}"));
        std::fs::create_dir_all(&bare).unwrap();
        let bare_copy = bare.join(signed.file_name().unwrap());
        std::fs::copy(&signed, &bare_copy).unwrap();
        let out = verify_rebuild(&bare_copy, &other, &manifest, &env);
        assert_verify_fails(&out, "FAIL  rebuild: ");
        assert!(
            !report(&out).contains("matches the artifact"),
            "{mode}: {}",
            report(&out)
        );
    }
}
