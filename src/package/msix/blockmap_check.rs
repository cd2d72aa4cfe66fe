//! Checks that an existing package's `AppxBlockMap.xml` describes its files, as Windows
//! does on install (osslsigncode does not): every part except the block map, the content
//! types, the signature and the code-integrity catalog is listed once; each listed part
//! exists, its local header has the listed `LfhSize`, its uncompressed size is `Size`, and
//! each 64 KiB block hashes to its `Block Hash`. Streams each part, one block at a time.

use super::manifest::part_name;
use super::read::{open_package, part_reader};
use super::BLOCK_SIZE;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Parts a block map does not describe.
const UNLISTED_PARTS: [&str; 4] = [
    "AppxBlockMap.xml",
    "[Content_Types].xml",
    "AppxSignature.p7x",
    "AppxMetadata/CodeIntegrity.cat",
];
/// A block map larger than this is refused (ours hold ~60 bytes per 64 KiB of payload).
const MAX_BLOCK_MAP: u64 = 64 << 20;

/// One `<File>` of a block map.
#[derive(Debug)]
struct ListedFile {
    size: u64,
    lfh_size: u64,
    hashes: Vec<Vec<u8>>,
}

/// The part name of a block map `Name` (XML-escaped, `\`-separated), by the writer's rule.
pub(crate) fn part_of_block_map_name(escaped: &str) -> String {
    let mut name = escaped.to_string();
    for (entity, c) in [
        ("&quot;", "\""),
        ("&apos;", "'"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&#x9;", "\t"),
        ("&#xA;", "\n"),
        ("&#xD;", "\r"),
        ("&amp;", "&"),
    ] {
        name = name.replace(entity, c);
    }
    part_name(&name.replace('\\', "/"))
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    tag[start..].split('"').next()
}

/// The files of a block map by part name, in any order.
fn parse(xml: &str) -> Result<BTreeMap<String, ListedFile>, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut files = BTreeMap::new();
    for chunk in xml.split("<File ").skip(1) {
        let tag_end = chunk.find('>').ok_or("a <File> tag is not closed")?;
        let tag = format!(" {}", &chunk[..tag_end]);
        let number = |n: &str| -> Result<u64, String> {
            attr(&tag, n)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("a <File> has no number {n}"))
        };
        let name = attr(&tag, "Name").ok_or("a <File> has no Name")?;
        let body = if tag.ends_with('/') {
            ""
        } else {
            chunk[tag_end..].split("</File>").next().unwrap_or_default()
        };
        let hashes = body
            .split("<Block ")
            .skip(1)
            .map(|block| {
                attr(&format!(" {block}"), "Hash")
                    .and_then(|h| b64.decode(h).ok())
                    .ok_or_else(|| format!("{name}: a <Block> has no base64 Hash"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let listed = ListedFile {
            size: number("Size")?,
            lfh_size: number("LfhSize")?,
            hashes,
        };
        if files.insert(part_of_block_map_name(name), listed).is_some() {
            return Err(format!("{name} is listed twice"));
        }
    }
    Ok(files)
}

/// `Ok(())` when the block map describes every part of `package`, else the first mismatch
/// (e.g. `Hello%20Perry.exe: block 2 does not match AppxBlockMap.xml`).
pub(crate) fn check_block_map(package: &Path) -> Result<(), String> {
    let mut pkg = open_package(package)?;
    let map_entry = pkg
        .entries
        .iter()
        .find(|e| e.name == "AppxBlockMap.xml")
        .ok_or("the package has no AppxBlockMap.xml")?
        .clone();
    let mut xml = String::new();
    part_reader(&mut pkg.file, &map_entry)?
        .1
        .take(MAX_BLOCK_MAP)
        .read_to_string(&mut xml)
        .map_err(|e| format!("AppxBlockMap.xml cannot be read: {e}"))?;
    let mut listed = parse(&xml).map_err(|e| format!("AppxBlockMap.xml: {e}"))?;
    for entry in pkg.entries.clone() {
        if UNLISTED_PARTS
            .iter()
            .any(|p| entry.name.eq_ignore_ascii_case(p))
        {
            continue;
        }
        let file = listed
            .remove(&entry.name)
            .ok_or_else(|| format!("{} is not in AppxBlockMap.xml", entry.name))?;
        let (lfh_size, mut content) = part_reader(&mut pkg.file, &entry)?;
        if lfh_size != file.lfh_size {
            return Err(format!(
                "{}: LfhSize differs from AppxBlockMap.xml",
                entry.name
            ));
        }
        let mut block = vec![0u8; BLOCK_SIZE];
        let (mut size, mut index) = (0u64, 0usize);
        loop {
            let n = read_full(&mut content, &mut block)
                .map_err(|e| format!("{} cannot be read: {e}", entry.name))?;
            if n == 0 {
                break;
            }
            let hash = Sha256::digest(&block[..n]);
            if file.hashes.get(index).map(Vec::as_slice) != Some(hash.as_slice()) {
                return Err(format!(
                    "{}: block {index} does not match AppxBlockMap.xml",
                    entry.name
                ));
            }
            size += n as u64;
            index += 1;
        }
        if size != file.size || index != file.hashes.len() {
            return Err(format!(
                "{}: its size differs from AppxBlockMap.xml",
                entry.name
            ));
        }
    }
    match listed.keys().next() {
        Some(missing) => Err(format!(
            "AppxBlockMap.xml lists {missing}, which the package lacks"
        )),
        None => Ok(()),
    }
}

/// Reads until `buf` is full or the content ends.
fn read_full(content: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match content.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::msix::test_package::pending;

    /// The stored data range of `part` in `package`.
    fn data_of(package: &Path, part: &str) -> std::ops::Range<usize> {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(package).unwrap()).unwrap();
        let entry = zip.by_name(part).unwrap();
        let start = entry.data_start().unwrap() as usize;
        start..start + entry.compressed_size() as usize
    }

    #[test]
    fn the_writers_block_map_describes_its_package_and_a_changed_block_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = pending(dir.path(), false).finish_unsigned().unwrap();
        check_block_map(&path).unwrap();

        let big = data_of(&path, "assets/big.txt");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[big.start + 40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = check_block_map(&path).unwrap_err();
        assert!(err.starts_with("assets/big.txt"), "{err}");
    }

    #[test]
    fn block_map_names_map_to_part_names_by_the_writers_rule() {
        assert_eq!(
            part_of_block_map_name("assets\\a &amp; b&apos;s.txt"),
            "assets/a%20&%20b's.txt"
        );
        let xml = "<BlockMap><File Name=\"a.txt\" Size=\"1\" LfhSize=\"35\"><Block Hash=\"AAAA\"/></File><File Name=\"e\" Size=\"0\" LfhSize=\"31\"/></BlockMap>";
        let files = parse(xml).unwrap();
        assert_eq!(files["a.txt"].hashes, [vec![0u8, 0, 0]]);
        assert_eq!((files["a.txt"].size, files["a.txt"].lfh_size), (1, 35));
        assert!(files["e"].hashes.is_empty());
        let twice = xml.replace("\"e\"", "\"a.txt\"");
        assert!(parse(&twice).unwrap_err().contains("twice"));
    }
}
