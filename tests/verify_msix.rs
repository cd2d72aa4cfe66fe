//! `verify` on a signed MSIX checks the package signature (`AppxSignature.p7x` over the
//! package digests read back from the file) and the block map as well as every PE file
//! inside: a signed build passes, and agrees with `osslsigncode verify`; one flipped byte in
//! a file of the package, in `AppxBlockMap.xml` or in the signature fails with a message
//! naming it.

use perry_test_support::verify_support;

use std::path::{Path, PathBuf};
use verify_support::example_project::example_dir;
use verify_support::*;

/// The byte range of the stored (compressed) data of `entry` in `package`.
fn entry_data(package: &Path, entry: &str) -> std::ops::Range<usize> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(package).unwrap()).unwrap();
    let file = zip.by_name(entry).unwrap();
    let start = file.data_start().unwrap() as usize;
    start..start + file.compressed_size() as usize
}

/// A copy of `package` (alone in a fresh folder, so no record is found beside it) with the
/// byte at `at` flipped.
fn tampered_copy(package: &Path, dir: &Path, at: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let copy = dir.join(package.file_name().unwrap());
    let mut bytes = std::fs::read(package).unwrap();
    bytes[at] ^= 0x5a;
    std::fs::write(&copy, bytes).unwrap();
    copy
}

#[test]
fn verify_checks_the_msix_package_signature() {
    if !tools_present() || !fixtures::require_tools(&["osslsigncode"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (pki, creds) = pfx_credentials(t);
    let creds_arg = ["--credentials", creds.to_str().unwrap()];
    let msix = build(
        &example_dir(),
        "msix",
        &t.join("work"),
        &t.join("out"),
        &creds_arg,
        &[],
    );
    let name = msix.file_name().unwrap().to_string_lossy().into_owned();

    let out = verify(&[&msix], &[]);
    assert_verify_passes(
        &out,
        &format!("{name}: package signature (AppxSignature.p7x): Authenticode signature by"),
    );
    assert!(
        report(&out).contains("Hello%20Perry.exe: Authenticode signature by"),
        "the PE files inside are still checked: {}",
        report(&out)
    );
    // An independent check of the same package: osslsigncode recomputes the digests itself.
    let (ok, text) = fixtures::osslsigncode_verify(&pki, &msix);
    assert!(ok, "osslsigncode rejects our signed MSIX:\n{text}");

    // One byte of a file inside the package (part names are percent-encoded).
    let exe = entry_data(&msix, "Hello%20Perry.exe");
    let copy = tampered_copy(&msix, &t.join("file"), (exe.start + exe.end) / 2);
    assert_verify_fails(
        &verify(&[&copy], &[]),
        "package signature (AppxSignature.p7x): the package changed after signing: the file records (AXPC",
    );
    assert!(
        report(&verify(&[&copy], &[])).contains("differ from what was signed; Hello%20Perry.exe"),
        "the block map check names the changed file"
    );
    let (ok, text) = fixtures::osslsigncode_verify(&pki, &copy);
    assert!(!ok, "osslsigncode accepted a changed file:\n{text}");

    // One byte of the block map.
    let map = entry_data(&msix, "AppxBlockMap.xml");
    let copy = tampered_copy(&msix, &t.join("blockmap"), (map.start + map.end) / 2);
    let out = verify(&[&copy], &[]);
    assert_verify_fails(&out, "package signature (AppxSignature.p7x)");
    assert!(
        report(&out).lines().any(|l| l.starts_with("FAIL")
            && l.contains("package signature")
            && l.contains("AppxBlockMap.xml")),
        "the package signature failure names the block map: {}",
        report(&out)
    );

    // One byte of the signature's own signature value (the last bytes of the PKCS#7).
    let sig = entry_data(&msix, "AppxSignature.p7x");
    let copy = tampered_copy(&msix, &t.join("signature"), sig.end - 10);
    assert_verify_fails(
        &verify(&[&copy], &[]),
        "package signature (AppxSignature.p7x): RSA signature does not verify",
    );
}
