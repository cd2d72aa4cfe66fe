//! MSIX written by our Rust writer, checked by an independent verifier (zip crate +
//! quick-xml + sha2 + flate2: structure, LfhSize, every 64 KiB block hash, per-block
//! deflate, content types), and signed/verified by osslsigncode, both when osslsigncode
//! adds the signature and when we add osslsigncode's PKCS#7 through `finish_signed`.

mod package_support;

use base64::Engine;
use package_support::*;
use perry_ship_windows::package::msix::{write_msix, BLOCK_SIZE, UNSIGNED_PUBLISHER};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

const PUBLISHER: &str = "CN=Demo Publisher, O=Example Co, C=US";

struct Checked {
    names: Vec<String>,
    manifest: String,
    content_types: String,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Independent checks of an MSIX; panics with the first problem found.
fn verify_msix(path: &Path) -> Checked {
    let raw = std::fs::read(path).unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).expect("zip reads");
    let mut names = Vec::new();
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut layout: BTreeMap<String, (u64, u64, u64, zip::CompressionMethod)> = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let hs = f.header_start();
        let h = &raw[hs as usize..];
        assert_eq!(&h[..4], b"PK\x03\x04");
        let n = u16::from_le_bytes([h[26], h[27]]) as u64;
        let m = u16::from_le_bytes([h[28], h[29]]) as u64;
        let flags = u16::from_le_bytes([h[6], h[7]]);
        let (cs, method) = (f.compressed_size(), f.compression());
        if name != "AppxSignature.p7x" {
            assert_eq!(u16::from_le_bytes([h[4], h[5]]), 45, "{name}: version 45");
            assert_eq!(flags & 8, 8, "{name}: data descriptor flag");
            let dd = (hs + 30 + n + m + cs) as usize;
            assert_eq!(
                &raw[dd..dd + 4],
                b"PK\x07\x08",
                "{name}: zip64 data descriptor follows the data"
            );
            assert_eq!(
                u64::from_le_bytes(raw[dd + 8..dd + 16].try_into().unwrap()),
                cs,
                "{name}: descriptor size"
            );
        }
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .expect("entry inflates with a valid CRC");
        layout.insert(name.clone(), (hs, 30 + n + m, cs, method));
        data.insert(name.clone(), buf);
        names.push(name);
    }
    let payload_end = names
        .iter()
        .position(|n| n == "AppxManifest.xml")
        .expect("manifest");
    assert_eq!(
        &names[payload_end..payload_end + 3],
        [
            "AppxManifest.xml",
            "AppxBlockMap.xml",
            "[Content_Types].xml"
        ]
    );

    // Block map: every payload file and the manifest, nothing else; every block re-hashed.
    let block_map = String::from_utf8(data["AppxBlockMap.xml"].clone()).unwrap();
    let elems = parse_xml(&block_map);
    assert_eq!(
        xml_find(&elems, "BlockMap").attrs["HashMethod"],
        "http://www.w3.org/2001/04/xmlenc#sha256"
    );
    let mut files: Vec<(BTreeMap<String, String>, Vec<BTreeMap<String, String>>)> = Vec::new();
    for e in &elems {
        match e.path.as_str() {
            "BlockMap/File" => files.push((e.attrs.clone(), vec![])),
            "BlockMap/File/Block" => files.last_mut().unwrap().1.push(e.attrs.clone()),
            _ => {}
        }
    }
    let expected_files: Vec<String> = names[..=payload_end].to_vec();
    assert_eq!(
        files.len(),
        expected_files.len(),
        "one <File> per payload entry + manifest"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    for ((attrs, blocks), zip_name) in files.iter().zip(&expected_files) {
        let win_name = attrs["Name"].clone();
        assert_eq!(
            win_name.replace('\\', "/"),
            percent_decode(zip_name),
            "block map order/name"
        );
        let content = &data[zip_name];
        let (hs, lfh, cs, method) = layout[zip_name];
        assert_eq!(
            attrs["Size"].parse::<u64>().unwrap(),
            content.len() as u64,
            "{zip_name} Size"
        );
        assert_eq!(
            attrs["LfhSize"].parse::<u64>().unwrap(),
            lfh,
            "{zip_name} LfhSize"
        );
        assert_eq!(
            blocks.len(),
            content.len().div_ceil(BLOCK_SIZE),
            "{zip_name} block count"
        );
        let mut pos = (hs + lfh) as usize;
        for (i, (block, chunk)) in blocks.iter().zip(content.chunks(BLOCK_SIZE)).enumerate() {
            assert_eq!(
                block["Hash"],
                b64.encode(Sha256::digest(chunk)),
                "{zip_name} block {i} hash"
            );
            if method == zip::CompressionMethod::Deflated {
                let size: usize = block["Size"].parse().unwrap();
                // Each block was ended with a full flush: it inflates on its own.
                let mut d = flate2::Decompress::new(false);
                let mut out = Vec::with_capacity(BLOCK_SIZE + 16);
                d.decompress_vec(
                    &raw[pos..pos + size],
                    &mut out,
                    flate2::FlushDecompress::Sync,
                )
                .unwrap();
                assert_eq!(out, chunk, "{zip_name} block {i} inflates independently");
                pos += size;
            } else {
                assert!(!block.contains_key("Size"), "stored blocks carry no Size");
            }
        }
        if method == zip::CompressionMethod::Deflated {
            assert_eq!(
                pos as u64,
                hs + lfh + cs,
                "{zip_name}: block sizes add up to the entry"
            );
        }
    }

    // Content types cover every part.
    let content_types = String::from_utf8(data["[Content_Types].xml"].clone()).unwrap();
    let ct = parse_xml(&content_types);
    let defaults: Vec<String> = ct
        .iter()
        .filter(|e| e.path == "Types/Default")
        .map(|e| e.attrs["Extension"].to_lowercase())
        .collect();
    let overrides: Vec<String> = ct
        .iter()
        .filter(|e| e.path == "Types/Override")
        .map(|e| e.attrs["PartName"].clone())
        .collect();
    for name in names.iter().filter(|n| *n != "[Content_Types].xml") {
        let covered = overrides.contains(&format!("/{name}"))
            || name
                .rsplit('/')
                .next()
                .unwrap()
                .rsplit_once('.')
                .is_some_and(|(_, ext)| defaults.contains(&ext.to_lowercase()));
        assert!(covered, "{name} has no content type");
    }
    let manifest = String::from_utf8(data["AppxManifest.xml"].clone()).unwrap();
    Checked {
        names,
        manifest,
        content_types,
    }
}

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
