//! A bounded look at an exe's headers, section table and resource tree before editpe parses
//! it. editpe slices the file by the section table without checking it (a section whose raw
//! data lies past the end of the file makes it panic), pads to the file alignment (a huge
//! one costs that much memory), and it follows the
//! tree recursively and trusts it: tables nested 100 000 deep overflow the stack, and tables
//! that point at each other (a loop, or a DAG that fans out) make it run or allocate without
//! end. Windows itself only uses three levels (type, name, language), each table once.

use object::read::pe::{
    ImageNtHeaders, ImageOptionalHeader, PeFile, PeFile32, PeFile64, ResourceDirectoryEntryData,
};
use object::{FileKind, LittleEndian as LE};
use std::collections::BTreeSet;

/// Most levels of resource tables accepted (Windows uses 3).
pub(crate) const MAX_DEPTH: usize = 4;
/// Most resource entries accepted in one exe.
pub(crate) const MAX_ENTRIES: usize = 65_536;

/// `Ok` when every section's raw data lies inside the file and the resource tree (if any)
/// is a finite tree within [`MAX_DEPTH`] and [`MAX_ENTRIES`]; otherwise a sentence saying
/// what is wrong.
pub(crate) fn check_resource_tree(bytes: &[u8]) -> Result<(), String> {
    match FileKind::parse(bytes).map_err(|e| format!("not a PE file: {e}"))? {
        FileKind::Pe64 => walk(&PeFile64::parse(bytes).map_err(|e| e.to_string())?, bytes),
        FileKind::Pe32 => walk(&PeFile32::parse(bytes).map_err(|e| e.to_string())?, bytes),
        other => Err(format!("not a PE file ({other:?})")),
    }
}

fn walk<H: ImageNtHeaders>(pe: &PeFile<'_, H>, bytes: &[u8]) -> Result<(), String> {
    // editpe pads the rebuilt resource section to this; the PE format allows 512..=64 KiB.
    let file_alignment = pe.nt_headers().optional_header().file_alignment();
    if !(512..=65_536).contains(&file_alignment) || !file_alignment.is_power_of_two() {
        return Err(format!(
            "file alignment {file_alignment} is not a power of two from 512 to 65536"
        ));
    }
    for section in pe.section_table().iter() {
        let start = u64::from(section.pointer_to_raw_data.get(LE));
        let end = start + u64::from(section.size_of_raw_data.get(LE));
        if end > bytes.len() as u64 {
            return Err(format!(
                "section {:?} lies past the end of the file",
                String::from_utf8_lossy(section.raw_name())
            ));
        }
    }
    let directory = pe
        .data_directories()
        .resource_directory(bytes, &pe.section_table())
        .map_err(|e| format!("resource directory: {e}"))?;
    let Some(directory) = directory else {
        return Ok(());
    };
    let root = directory
        .root()
        .map_err(|e| format!("resource directory: {e}"))?;
    let mut seen_tables = BTreeSet::from([0u32]);
    let mut entries = 0usize;
    let mut stack = vec![(root, 1usize)];
    while let Some((table, depth)) = stack.pop() {
        for entry in table.entries {
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} resource entries"));
            }
            if !entry.is_table() {
                continue;
            }
            if depth >= MAX_DEPTH {
                return Err(format!(
                    "resource tables nested deeper than {MAX_DEPTH} levels"
                ));
            }
            if !seen_tables.insert(entry.data_offset()) {
                return Err("resource tables are shared or form a loop".into());
            }
            match entry.data(directory) {
                Ok(ResourceDirectoryEntryData::Table(sub)) => stack.push((sub, depth + 1)),
                Ok(_) => {}
                Err(e) => return Err(format!("resource table: {e}")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::mutate::put_u32;
    use crate::fuzz::pe::{minimal_pe, pe_with_resources, section_range};

    /// Our own exe with resources, and the file offset of its resource section.
    fn exe_with_resources() -> (Vec<u8>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let exe = pe_with_resources(dir.path());
        let (rsrc, _) = section_range(&exe, b".rsrc")
            .or_else(|| section_range(&exe, b".pedata"))
            .expect("a resource section");
        (exe, rsrc)
    }

    #[test]
    fn a_normal_tree_passes() {
        let (exe, _) = exe_with_resources();
        check_resource_tree(&exe).unwrap();
        check_resource_tree(&minimal_pe(&["KERNEL32.dll"])).unwrap();
    }

    #[test]
    fn a_table_pointing_back_at_the_root_is_refused() {
        let (mut exe, rsrc) = exe_with_resources();
        // The root's first entry (after the 16-byte table header): its offset field.
        put_u32(&mut exe, rsrc + 16 + 4, 0x8000_0000);
        let err = check_resource_tree(&exe).unwrap_err();
        assert!(err.contains("loop"), "{err}");
    }

    #[test]
    fn bad_alignment_and_sections_past_the_end_are_refused() {
        let mut exe = minimal_pe(&["KERNEL32.dll"]);
        put_u32(&mut exe, 0x58 + 36, 0x1000_0000);
        assert!(check_resource_tree(&exe).unwrap_err().contains("alignment"));
        let mut exe = minimal_pe(&["KERNEL32.dll"]);
        put_u32(&mut exe, 0x148 + 40 + 16, 0x10_0000);
        assert!(check_resource_tree(&exe)
            .unwrap_err()
            .contains("past the end"));
    }
}
