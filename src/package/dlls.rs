//! DLLs the app needs next to it: read the exe's import table, leave out what Windows
//! itself provides, and copy the rest (transitively) from the compile output or
//! `perry-precompiled/dlls/` into the bundle.
//!
//! Import names come from a file the project made, so each must be a bare file name (no
//! separators, `..`, drive letters, device names; `check_dll_name`) and is looked up only
//! as a regular file (never a link) directly inside the job's own output folders.

use super::escape::is_windows_device_name;
use super::PackageError;
use object::read::pe::{PeFile32, PeFile64};
use object::{FileKind, Object};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// DLLs every supported Windows (10/11, x64) ships: never bundled.
///
/// Listed by name (lower case, without `.dll`). Prefix rules: `api-ms-win-*` and
/// `ext-ms-*` are API-set contracts resolved by the loader. The Universal CRT
/// (`ucrtbase`) is part of Windows 10+. Not listed on purpose: the Visual C++ runtime
/// (`vcruntime140`, `msvcp140`, …) and mingw runtimes (`libgcc_s_seh-1`, `libstdc++-6`,
/// `libwinpthread-1`), which must travel with the app.
pub(crate) const SYSTEM_DLLS: &[&str] = &[
    "advapi32",
    "bcrypt",
    "bcryptprimitives",
    "cfgmgr32",
    "combase",
    "comctl32",
    "comdlg32",
    "crypt32",
    "d2d1",
    "d3d11",
    "d3d12",
    "d3d9",
    "d3dcompiler_47",
    "dbghelp",
    "dnsapi",
    "dwmapi",
    "dwrite",
    "dxgi",
    "gdi32",
    "gdiplus",
    "hid",
    "imm32",
    "iphlpapi",
    "kernel32",
    "kernelbase",
    "mpr",
    "msimg32",
    "msvcrt",
    "mswsock",
    "ncrypt",
    "netapi32",
    "normaliz",
    "ntdll",
    "ole32",
    "oleacc",
    "oleaut32",
    "opengl32",
    "powrprof",
    "propsys",
    "psapi",
    "rpcrt4",
    "secur32",
    "setupapi",
    "shcore",
    "shell32",
    "shlwapi",
    "ucrtbase",
    "user32",
    "userenv",
    "uxtheme",
    "version",
    "windowscodecs",
    "winhttp",
    "wininet",
    "winmm",
    "winspool",
    "wintrust",
    "ws2_32",
    "wtsapi32",
    "xinput1_4",
];

/// True for DLLs Windows provides (see [`SYSTEM_DLLS`]); case-insensitive, with or without
/// the `.dll`/`.drv` extension.
pub(crate) fn is_system_dll(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("api-ms-win-") || lower.starts_with("ext-ms-") {
        return true;
    }
    let stem = lower
        .strip_suffix(".dll")
        .or_else(|| lower.strip_suffix(".drv"))
        .unwrap_or(&lower);
    SYSTEM_DLLS.contains(&stem)
}

/// DLL names in the import table of a PE32 or PE32+ file, in table order, de-duplicated.
pub fn imported_dlls(exe: &Path) -> Result<Vec<String>, PackageError> {
    let bad = |reason: String| PackageError::BadPe {
        path: exe.to_path_buf(),
        reason,
    };
    let size = std::fs::metadata(exe).map(|m| m.len()).unwrap_or(0);
    if size > MAX_PE_BYTES {
        return Err(bad(format!(
            "{size} bytes is more than the {MAX_PE_BYTES} bytes read for its import table"
        )));
    }
    let data = std::fs::read(exe).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PackageError::Missing {
            what: "PE file",
            path: exe.to_path_buf(),
        },
        _ => bad(format!("cannot read: {e}")),
    })?;
    let imports = match FileKind::parse(&*data).map_err(|e| bad(format!("not a PE file: {e}")))? {
        FileKind::Pe64 => PeFile64::parse(&*data).and_then(|f| f.imports()),
        FileKind::Pe32 => PeFile32::parse(&*data).and_then(|f| f.imports()),
        other => return Err(bad(format!("not a PE file ({other:?})"))),
    }
    .map_err(|e| bad(format!("import table: {e}")))?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for import in imports {
        let name = String::from_utf8_lossy(import.library()).into_owned();
        if seen.insert(name.to_ascii_lowercase()) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Copies every non-system DLL that `exe` imports (and, transitively, that those DLLs
/// import) from the first of `search_dirs` that has it into `bundle_root`. A DLL already in
/// `bundle_root` counts as found. Returns the file names in the bundle, sorted.
/// A non-system DLL found nowhere is an error naming it and its importer.
pub fn collect_dlls(
    exe: &Path,
    search_dirs: &[PathBuf],
    bundle_root: &Path,
) -> Result<Vec<String>, PackageError> {
    let exe_name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut queue: VecDeque<(PathBuf, String)> = VecDeque::from([(exe.to_path_buf(), exe_name)]);
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut bundled = Vec::new();
    while let Some((pe, pe_name)) = queue.pop_front() {
        for dll in imported_dlls(&pe)? {
            check_dll_name(&dll).map_err(|reason| PackageError::BadPe {
                path: pe.clone(),
                reason: format!("imports {dll:?}, which {reason}"),
            })?;
            let key = dll.to_ascii_lowercase();
            if is_system_dll(&dll) || !done.insert(key) {
                continue;
            }
            let in_bundle = find_case_insensitive(bundle_root, &dll);
            let (path, file_name) = match in_bundle {
                Some(p) => {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    (p, name)
                }
                None => {
                    let src = search_dirs
                        .iter()
                        .find_map(|d| find_case_insensitive(d, &dll))
                        .ok_or_else(|| PackageError::MissingDll {
                            name: dll.clone(),
                            by: pe_name.clone(),
                            searched: search_dirs
                                .iter()
                                .map(|d| d.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                        })?;
                    let name = src.file_name().unwrap().to_string_lossy().into_owned();
                    let dest = bundle_root.join(&name);
                    std::fs::copy(&src, &dest).map_err(PackageError::io(format!(
                        "copying {} into the bundle",
                        src.display()
                    )))?;
                    (dest, name)
                }
            };
            bundled.push(file_name.clone());
            queue.push_back((path, file_name));
        }
    }
    bundled.sort();
    Ok(bundled)
}

/// Largest PE file whose import table is read (it is read whole).
const MAX_PE_BYTES: u64 = 1 << 30;

/// Longest DLL name accepted (Windows' own component limit).
const MAX_DLL_NAME: usize = 255;

/// `Ok` when `name` is a bare DLL file name; otherwise why not ("is not a bare file name").
pub(crate) fn check_dll_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_DLL_NAME {
        return Err("is empty or longer than 255 bytes");
    }
    if name.chars().any(|c| {
        c.is_control() || matches!(c, '/' | '\\' | ':' | '"' | '<' | '>' | '|' | '?' | '*')
    }) {
        return Err("is not a bare file name (separators, drive letters and control characters are refused)");
    }
    if name.starts_with('.') || name.ends_with('.') || name.ends_with(' ') {
        return Err("is not a bare file name (leading dots, trailing dots or spaces)");
    }
    if is_windows_device_name(name) {
        return Err("is a Windows device name");
    }
    Ok(())
}

/// `dir/<name>` matched case-insensitively (Windows semantics): a regular file directly in
/// `dir`, never a symlink (which could lead out of the job's folders). `name` has passed
/// [`check_dll_name`].
fn find_case_insensitive(dir: &Path, name: &str) -> Option<PathBuf> {
    let is_regular = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    let exact = dir.join(name);
    if is_regular(&exact) {
        return Some(exact);
    }
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name().to_string_lossy().eq_ignore_ascii_case(name) && is_regular(&e.path())
        })
        .map(|e| e.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_names_must_be_bare_file_names() {
        for ok in ["helper.dll", "libgcc_s_seh-1.dll", "x"] {
            assert!(check_dll_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x.dll",
            "a/b.dll",
            "..\\x.dll",
            "C:x.dll",
            "a\0b",
        ] {
            assert!(check_dll_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn system_dlls_are_recognised() {
        for n in [
            "KERNEL32.dll",
            "api-ms-win-crt-runtime-l1-1-0.dll",
            "ucrtbase.dll",
            "msvcrt.dll",
            "WINSPOOL.DRV",
        ] {
            assert!(is_system_dll(n), "{n}");
        }
        for n in [
            "vcruntime140.dll",
            "libwinpthread-1.dll",
            "perry_runtime.dll",
        ] {
            assert!(!is_system_dll(n), "{n}");
        }
    }

    #[test]
    fn only_bare_dll_names_pass() {
        for bad in [
            "../x.dll",
            "..\\x.dll",
            "C:x.dll",
            "sub/x.dll",
            "..",
            "",
            "nul.dll",
            "COM1.dll",
            "x.dll.",
            "a\u{1b}.dll",
        ] {
            assert!(check_dll_name(bad).is_err(), "{bad:?}");
        }
        for good in ["libhelper.dll", "perry_runtime.dll", "Qt6Core.dll"] {
            assert!(check_dll_name(good).is_ok(), "{good}");
        }
    }
}
