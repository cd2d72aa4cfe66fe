//! An MSIX verifier independent of the writer: zip crate for entries, quick-xml for the
//! block map and content types, sha2/flate2 to re-hash and re-inflate every 64 KiB block.

use super::{parse_xml, xml_find};
use base64::Engine;
use perry_ship_windows::package::msix::BLOCK_SIZE;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

type Attrs = BTreeMap<String, String>;

pub struct Checked {
    pub names: Vec<String>,
    pub manifest: String,
    pub content_types: String,
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
pub fn verify_msix(path: &Path) -> Checked {
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
    let mut files: Vec<(Attrs, Vec<Attrs>)> = Vec::new();
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
