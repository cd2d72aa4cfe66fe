//! MSIX written by our Rust writer, checked by an independent verifier (zip crate +
//! quick-xml + sha2 + flate2: structure, LfhSize, every 64 KiB block hash, per-block
//! deflate, content types), and signed/verified by osslsigncode, both when osslsigncode
//! adds the signature and when we add osslsigncode's PKCS#7 through `finish_signed`.

use perry_test_support::package_support;

use package_support::msix_verify::verify_msix;
use package_support::*;
use perry_ship_windows::package::msix::{write_msix, BLOCK_SIZE, UNSIGNED_PUBLISHER};
use std::io::Read;
use std::path::Path;
use std::process::Command;

const PUBLISHER: &str = "CN=Demo Publisher, O=Example Co, C=US";

fn make_signing_cert(dir: &Path) -> std::path::PathBuf {
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "cs.key",
        "-out",
        "cs.crt",
        "-days",
        "2",
        "-subj",
        "/C=US/O=Example Co/CN=Demo Publisher",
        "-addext",
        "extendedKeyUsage=codeSigning",
    ]));
    run(Command::new("openssl").current_dir(dir).args([
        "pkcs12",
        "-export",
        "-inkey",
        "cs.key",
        "-in",
        "cs.crt",
        "-out",
        "cs.pfx",
        "-passout",
        "pass:test",
    ]));
    // Windows renders the subject in reverse RDN order: that is what Identity/@Publisher holds.
    let subject = String::from_utf8(
        run(Command::new("openssl").current_dir(dir).args([
            "x509", "-in", "cs.crt", "-noout", "-subject", "-nameopt", "RFC2253",
        ]))
        .stdout,
    )
    .unwrap();
    assert_eq!(
        subject.trim().trim_start_matches("subject="),
        "CN=Demo Publisher,O=Example Co,C=US"
    );
    dir.join("cs.pfx")
}

fn ossl_sign(dir: &Path, pfx: &Path, input: &Path, output: &Path) {
    run(Command::new("osslsigncode")
        .current_dir(dir)
        .args(["sign", "-pkcs12"])
        .arg(pfx)
        .args(["-pass", "test", "-h", "sha256", "-in"])
        .arg(input)
        .arg("-out")
        .arg(output));
}

fn ossl_verify(dir: &Path, file: &Path) -> String {
    let out = run(Command::new("osslsigncode")
        .current_dir(dir)
        .args(["verify", "-CAfile", "cs.crt", "-in"])
        .arg(file));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn unsigned_msix_passes_the_independent_verifier() {
    if !require_tool("x86_64-w64-mingw32-gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path());
    // A multi-block asset (3.5 blocks of incompressible bytes) and one of compressible text.
    let big: Vec<u8> = (0..(BLOCK_SIZE * 7 / 2))
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    std::fs::write(bundle.root.join("assets/data/big.bin"), &big).unwrap();
    std::fs::write(
        bundle.root.join("assets/data/text.txt"),
        "hello msix\n".repeat(20_000),
    )
    .unwrap();
    std::fs::write(bundle.root.join("assets/data/NOEXT"), b"no extension").unwrap();
    let png = tmp.path().join("icon.png");
    let out = tmp.path().join("Demo App-1.2.3.msix");
    let pending = write_msix(&bundle, &app_info(), None, &png, &out, false).unwrap();
    assert!(
        !out.exists(),
        "only the finished package appears under its name"
    );
    let path = pending.finish_unsigned().unwrap();
    assert_eq!(path, out);
    let checked = verify_msix(&out);
    for expected in [
        "Demo%20App.exe",
        "assets/file%20$1%20(copy).txt",
        "assets/data/big.bin",
        "Assets/Square44x44Logo.png",
    ] {
        assert!(
            checked.names.iter().any(|n| n == expected),
            "{expected} in {:?}",
            checked.names
        );
    }
    assert!(!checked.content_types.contains("AppxSignature.p7x"));

    let m = parse_xml(&checked.manifest);
    let identity = xml_find(&m, "Package/Identity");
    assert_eq!(identity.attrs["Name"], "com.example.demo-app");
    assert_eq!(identity.attrs["Version"], "1.2.3.0");
    assert_eq!(identity.attrs["Publisher"], UNSIGNED_PUBLISHER);
    assert_eq!(
        xml_find(&m, "Package/Applications/Application").attrs["EntryPoint"],
        "Windows.FullTrustApplication"
    );
    assert_eq!(
        xml_find(&m, "Package/Applications/Application").attrs["Executable"],
        "Demo App.exe"
    );
    assert_eq!(
        xml_find(&m, "Package/Applications/Application/Extensions/Extension").attrs["Category"],
        "windows.fullTrustProcess"
    );
    assert_eq!(
        xml_find(&m, "Package/Capabilities/Capability").attrs["Name"],
        "runFullTrust"
    );
    // Every logo the manifest references is in the package with the right size.
    let visual = xml_find(&m, "Package/Applications/Application/VisualElements");
    let refs = [
        (xml_find(&m, "Package/Properties/Logo").text.clone(), 50, 50),
        (visual.attrs["Square150x150Logo"].clone(), 150, 150),
        (visual.attrs["Square44x44Logo"].clone(), 44, 44),
        (
            xml_find(
                &m,
                "Package/Applications/Application/VisualElements/DefaultTile",
            )
            .attrs["Wide310x150Logo"]
                .clone(),
            310,
            150,
        ),
    ];
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    for (logo, w, h) in refs {
        let mut bytes = Vec::new();
        zip.by_name(&logo.replace('\\', "/"))
            .unwrap_or_else(|_| panic!("{logo} missing"))
            .read_to_end(&mut bytes)
            .unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (w, h), "{logo}");
    }
    // Deterministic: the same inputs give the same bytes.
    let again = tmp.path().join("again.msix");
    write_msix(&bundle, &app_info(), None, &png, &again, false)
        .unwrap()
        .finish_unsigned()
        .unwrap();
    assert_eq!(sha256_hex(&out), sha256_hex(&again));
}

#[test]
fn osslsigncode_signs_and_verifies_our_msix_and_our_finish_signed_output() {
    if !require_tool("x86_64-w64-mingw32-gcc")
        || !require_tool("osslsigncode")
        || !require_tool("openssl")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = make_bundle(tmp.path());
    let big: Vec<u8> = (0..(BLOCK_SIZE * 2 + 5)).map(|i| (i % 251) as u8).collect();
    std::fs::write(bundle.root.join("assets/data/big.bin"), &big).unwrap();
    let pfx = make_signing_cert(tmp.path());
    let png = tmp.path().join("icon.png");
    let app = app_info();

    // 1. Package without the signature content type: osslsigncode adds it while signing.
    let plain = tmp.path().join("plain.msix");
    write_msix(&bundle, &app, Some(PUBLISHER), &png, &plain, false)
        .unwrap()
        .finish_unsigned()
        .unwrap();
    let plain_signed = tmp.path().join("plain-signed.msix");
    ossl_sign(tmp.path(), &pfx, &plain, &plain_signed);
    let report = ossl_verify(tmp.path(), &plain_signed);
    assert!(report.contains("Signature verification: ok"), "{report}");

    // 2. Package prepared for signing: osslsigncode signs it without changing a digest...
    let prepared = tmp.path().join("prepared.msix");
    let pending = write_msix(&bundle, &app, Some(PUBLISHER), &png, &prepared, true).unwrap();
    let digests = pending.digests().clone();
    pending.finish_unsigned().unwrap();
    let checked = verify_msix(&prepared);
    assert!(checked.content_types.contains("<Override PartName=\"/AppxSignature.p7x\" ContentType=\"application/vnd.ms-appx.signature\"/>"));
    assert_eq!(
        xml_find(&parse_xml(&checked.manifest), "Package/Identity").attrs["Publisher"],
        PUBLISHER
    );
    let ossl_signed = tmp.path().join("prepared-signed.msix");
    ossl_sign(tmp.path(), &pfx, &prepared, &ossl_signed);
    let report = ossl_verify(tmp.path(), &ossl_signed);
    assert!(report.contains("Signature verification: ok"), "{report}");
    // ...so its signature covers exactly our digest blob.
    let mut p7x = Vec::new();
    zip::ZipArchive::new(std::fs::File::open(&ossl_signed).unwrap())
        .unwrap()
        .by_name("AppxSignature.p7x")
        .unwrap()
        .read_to_end(&mut p7x)
        .unwrap();
    assert_eq!(&p7x[..4], b"PKCX");
    let blob = digests.to_blob();
    assert_eq!(blob.len(), 4 + 4 * 36);
    assert!(
        p7x.windows(blob.len()).any(|w| w == blob.as_slice()),
        "signature carries APPX‖AXPC‖AXCD‖AXCT‖AXBM of our package"
    );

    // 3. The same PKCS#7 attached by our own writer verifies too.
    let ours = tmp.path().join("ours-signed.msix");
    let pending = write_msix(&bundle, &app, Some(PUBLISHER), &png, &ours, true).unwrap();
    assert_eq!(pending.digests(), &digests, "digests are reproducible");
    pending.finish_signed(&p7x[4..]).unwrap();
    let report = ossl_verify(tmp.path(), &ours);
    assert!(report.contains("Signature verification: ok"), "{report}");
    let checked = verify_msix(&ours);
    assert_eq!(
        checked.names.last().map(String::as_str),
        Some("AppxSignature.p7x")
    );
}

#[test]
fn msix_stores_media_deflates_text_and_its_block_map_matches() {
    use package_support::mixed_payload::write_mixed_bundle;
    let tmp = tempfile::tempdir().unwrap();
    // 3 MiB each: every file spans many 64 KiB blocks, packed on several threads.
    let (bundle, files) = write_mixed_bundle(&tmp.path().join("b"), 3 << 20, 3 << 20);
    let png = tmp.path().join("logo.png");
    write_test_png(&png, 256, 256);
    let out = tmp.path().join("mixed.msix");
    write_msix(&bundle, &app_info(), None, &png, &out, false)
        .unwrap()
        .finish_unsigned()
        .unwrap();
    // Every block hash, every deflated block's Size and LfhSize/Size per file.
    let checked = verify_msix(&out);
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    for rel in files.media.iter().chain(&files.text) {
        assert!(checked.names.contains(rel), "{rel}");
        let mut entry = zip.by_name(rel).unwrap();
        let stored = files.media.contains(rel);
        assert_eq!(
            entry.compression() == zip::CompressionMethod::Stored,
            stored,
            "{rel}: media stored, text deflated"
        );
        if !stored {
            assert!(
                entry.compressed_size() * 2 < entry.size(),
                "{rel} compresses"
            );
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(
            package_support::sha256_hex(&bundle.root.join(rel)),
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)),
            "{rel} extracts byte-exact"
        );
    }
}
