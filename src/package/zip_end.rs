//! The records that end a ZIP central directory, shared by the portable ZIP writer and the
//! MSIX writer (and the MSIX reader, which recomputes them for the package digest).

/// The zip64 end-of-central-directory record and its locator, for `count` entries and a
/// central directory of `cd_size` bytes at `cd_offset` (single disk).
pub(crate) fn zip64_end(
    made_by: u16,
    version_needed: u16,
    count: u64,
    cd_size: u64,
    cd_offset: u64,
) -> Vec<u8> {
    let mut end = Vec::with_capacity(56 + 20);
    end.extend_from_slice(b"PK\x06\x06");
    end.extend_from_slice(&44u64.to_le_bytes()); // size of the rest of this record
    end.extend_from_slice(&made_by.to_le_bytes());
    end.extend_from_slice(&version_needed.to_le_bytes());
    end.extend_from_slice(&[0u8; 8]); // disk numbers
    end.extend_from_slice(&count.to_le_bytes());
    end.extend_from_slice(&count.to_le_bytes());
    end.extend_from_slice(&cd_size.to_le_bytes());
    end.extend_from_slice(&cd_offset.to_le_bytes());
    end.extend_from_slice(b"PK\x06\x07");
    end.extend_from_slice(&0u32.to_le_bytes()); // disk of the zip64 end record
    end.extend_from_slice(&(cd_offset + cd_size).to_le_bytes());
    end.extend_from_slice(&1u32.to_le_bytes()); // disks in all
    end
}

/// The classic end-of-central-directory record (no comment); a field that does not fit is
/// written as all ones, which defers it to the zip64 record.
pub(crate) fn classic_end(count: u16, cd_size: u32, cd_offset: u32) -> [u8; 22] {
    let mut end = [0u8; 22];
    end[..4].copy_from_slice(b"PK\x05\x06");
    // 4..8: disk numbers, zero.
    end[8..10].copy_from_slice(&count.to_le_bytes());
    end[10..12].copy_from_slice(&count.to_le_bytes());
    end[12..16].copy_from_slice(&cd_size.to_le_bytes());
    end[16..20].copy_from_slice(&cd_offset.to_le_bytes());
    // 20..22: comment length, zero.
    end
}
