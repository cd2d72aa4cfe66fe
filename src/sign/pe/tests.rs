//! PE layout, digest, checksum and certificate-table round trips on small synthetic images.

use super::*;

/// A tiny PE32+ header followed by `extra` bytes (not loadable; enough for layout/digest).
fn fake_pe(extra: usize) -> Vec<u8> {
    let mut d = vec![0u8; 0x200 + extra];
    d[..2].copy_from_slice(b"MZ");
    d[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    d[0x80..0x84].copy_from_slice(b"PE\0\0");
    d[0x98..0x9a].copy_from_slice(&0x20bu16.to_le_bytes());
    d[0x98 + 108..0x98 + 112].copy_from_slice(&16u32.to_le_bytes());
    for (i, b) in d.iter_mut().enumerate().skip(0x200) {
        *b = (i * 7) as u8;
    }
    d
}

#[test]
fn digest_skips_checksum_and_security_entry_and_pads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.exe");
    let data = fake_pe(13);
    std::fs::write(&path, &data).unwrap();
    let mut f = File::open(&path).unwrap();
    let layout = read_layout(&mut f).unwrap();
    assert_eq!(layout.checksum_offset, 0x80 + 24 + 64);
    assert_eq!(layout.security_dir_offset, 0x80 + 24 + 112 + 32);
    assert_eq!(layout.padding(), 3);
    let mut expected = Sha256::new();
    let c = layout.checksum_offset as usize;
    let s = layout.security_dir_offset as usize;
    expected.update(&data[..c]);
    expected.update(&data[c + 4..s]);
    expected.update(&data[s + 8..]);
    expected.update([0u8; 3]);
    let expected: [u8; 32] = expected.finalize().into();
    assert_eq!(authenticode_digest(&mut f, &layout).unwrap(), expected);
}

#[test]
fn embed_then_read_back_and_resign_replaces_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.exe");
    std::fs::write(&path, fake_pe(5)).unwrap();
    let mut f = File::open(&path).unwrap();
    let layout = read_layout(&mut f).unwrap();
    let scan = scan_content(&mut f, &layout).unwrap();
    embed_signature(&path, &layout, &scan, &[0x30, 0x03, 1, 2, 3]).unwrap();
    let mut f = File::open(&path).unwrap();
    let signed = read_layout(&mut f).unwrap();
    assert_eq!(signed.cert_table, Some((0x208, 16)));
    assert_eq!(
        read_signature(&mut f, &signed).unwrap(),
        vec![0x30, 0x03, 1, 2, 3, 0, 0, 0]
    );
    assert_eq!(authenticode_digest(&mut f, &signed).unwrap(), scan.digest);
    let full_checksum = pe_checksum(&mut f, signed.checksum_offset).unwrap();
    assert_eq!(stored_checksum(&mut f, &signed).unwrap(), full_checksum);
    // signing again replaces the table instead of stacking a second one
    let rescan = scan_content(&mut f, &signed).unwrap();
    assert_eq!(rescan.digest, scan.digest);
    embed_signature(&path, &signed, &rescan, &[0x30, 0x00]).unwrap();
    let mut f = File::open(&path).unwrap();
    let again = read_layout(&mut f).unwrap();
    assert_eq!(again.cert_table, Some((0x208, 16)));
}

#[test]
fn word_sum_is_independent_of_how_the_bytes_are_split() {
    let data: Vec<u8> = (0..1001u32).map(|i| (i * 31 + 7) as u8).collect();
    let mut whole = WordSum::default();
    whole.add(0, &data);
    let mut pieces = WordSum::default();
    for (start, end) in [(0, 3), (3, 4), (4, 500), (500, 777), (777, 1001)] {
        pieces.add(start as u64, &data[start..end]);
    }
    assert_eq!(whole.finish(1001), pieces.finish(1001));
}

#[test]
fn hostile_headers_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x");
    for data in [
        b"MZ".to_vec(),
        vec![0u8; 100],
        {
            let mut d = fake_pe(0);
            d[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
            d
        },
        {
            let mut d = fake_pe(0);
            d[0x98 + 112 + 32..0x98 + 112 + 36].copy_from_slice(&0x100u32.to_le_bytes());
            d[0x98 + 112 + 36..0x98 + 112 + 40].copy_from_slice(&0x10u32.to_le_bytes());
            d
        },
    ] {
        std::fs::write(&path, &data).unwrap();
        assert!(read_layout(&mut File::open(&path).unwrap()).is_err());
    }
}
