//! PE resources written into the app exe on any host OS (editpe): the icon group, a
//! VERSIONINFO block and the application manifest from `templates/app.manifest`.
//! Everything written is read back and compared before the exe is replaced; the icon
//! group must list exactly the sizes of the ICO that was written (ours has the seven of
//! [`super::icon::ICO_SIZES`], a hand-off bundle's `app.ico` may have any valid set).

use super::escape::xml;
use super::template::{render, APP_MANIFEST};
use super::{AppInfo, PackageError};
use editpe::types::{VersionU16, VersionU32};
use editpe::{Image, ResourceEntry, ResourceEntryName, VersionInfo, VersionStringTable};
use std::collections::BTreeMap;
use std::path::Path;

/// US English, Unicode: the string table every VERSIONINFO reader looks up first.
const STRING_TABLE_KEY: &str = "040904B0";
const RT_GROUP_ICON: u32 = 14;

/// What an exe carries, as read back from its resource section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceReport {
    /// VERSIONINFO strings of the first string table.
    pub version_strings: BTreeMap<String, String>,
    /// VERSIONINFO's fixed `FileVersion`.
    pub file_version: Option<[u16; 4]>,
    /// VERSIONINFO's fixed `ProductVersion`.
    pub product_version: Option<[u16; 4]>,
    /// The RT_MANIFEST text.
    pub manifest: Option<String>,
    /// Pixel sizes listed in the main icon group.
    pub icon_sizes: Vec<u32>,
}

/// Renders `templates/app.manifest` for `app` with every value XML-escaped.
pub fn app_manifest(app: &AppInfo) -> Result<String, PackageError> {
    let dpi_awareness = if app.dpi_aware.trim().eq_ignore_ascii_case("false") {
        "unaware"
    } else {
        "PerMonitorV2"
    };
    render(
        "app.manifest",
        APP_MANIFEST,
        &[
            ("bundle_id", &xml("bundle_id", &app.bundle_id)?),
            ("version4", &app.version_string4()),
            ("description", &xml("description", &app.description)?),
            ("uac_level", app.uac_level.as_str()),
            ("dpi_aware", &xml("dpi_aware", &app.dpi_aware)?),
            ("dpi_awareness", dpi_awareness),
        ],
    )
}

/// The VERSIONINFO strings written for `app` into `exe_file_name`.
pub(crate) fn version_strings(
    app: &AppInfo,
    exe_file_name: &str,
) -> Result<BTreeMap<String, String>, PackageError> {
    let internal = exe_file_name.strip_suffix(".exe").unwrap_or(exe_file_name);
    let v = app.version_string4();
    let pairs = [
        ("CompanyName", app.publisher.as_str()),
        ("FileDescription", app.description.as_str()),
        ("FileVersion", v.as_str()),
        ("InternalName", internal),
        ("LegalCopyright", app.copyright.as_str()),
        ("OriginalFilename", exe_file_name),
        ("ProductName", app.app_name.as_str()),
        ("ProductVersion", v.as_str()),
    ];
    let mut out = BTreeMap::new();
    for (k, val) in pairs {
        // VERSIONINFO strings are counted UTF-16 with a NUL terminator: any Unicode text
        // (line breaks and tabs included) is data, but an embedded NUL or other control
        // character would truncate or garble it.
        if let Some(c) = val
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(PackageError::BadValue {
                field: k.to_string(),
                reason: format!(
                    "control character U+{:04X} is not allowed in version info",
                    c as u32
                ),
            });
        }
        out.insert(k.to_string(), val.to_string());
    }
    Ok(out)
}

fn packed(v: [u16; 4]) -> VersionU32 {
    VersionU32 {
        major: ((v[0] as u32) << 16) | v[1] as u32,
        minor: ((v[2] as u32) << 16) | v[3] as u32,
    }
}

fn unpacked(v: VersionU32) -> [u16; 4] {
    [
        (v.major >> 16) as u16,
        v.major as u16,
        (v.minor >> 16) as u16,
        v.minor as u16,
    ]
}

/// Embeds icon, VERSIONINFO and manifest into `exe` (replaced atomically), then reads the
/// result back and fails unless it holds exactly what was written.
pub fn embed_resources(exe: &Path, ico: &Path, app: &AppInfo) -> Result<(), PackageError> {
    contain_panics(exe, || embed_unguarded(exe, ico, app))
}

/// Runs editpe work, turning a panic of the library (it indexes and adds unchecked on some
/// malformed files) into a `BadPe` error for this exe instead of a crash.
fn contain_panics<T>(
    exe: &Path,
    work: impl FnOnce() -> Result<T, PackageError>,
) -> Result<T, PackageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(PackageError::BadPe {
            path: exe.to_path_buf(),
            reason: "the PE file is malformed (the resource editor gave up on it)".into(),
        })
    })
}

fn embed_unguarded(exe: &Path, ico: &Path, app: &AppInfo) -> Result<(), PackageError> {
    let bad_pe = |reason: String| PackageError::BadPe {
        path: exe.to_path_buf(),
        reason,
    };
    if !exe.is_file() {
        return Err(PackageError::Missing {
            what: "exe",
            path: exe.to_path_buf(),
        });
    }
    let exe_name = exe
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| bad_pe("file name is not UTF-8".into()))?;
    let manifest = app_manifest(app)?;
    let strings = version_strings(app, exe_name)?;
    let ico_bytes =
        std::fs::read(ico).map_err(PackageError::io(format!("reading {}", ico.display())))?;
    let ico_sizes = ico_entry_sizes(ico, &ico_bytes)?;

    let mut image = parse_checked(exe)?;
    let mut res = image.resource_directory().cloned().unwrap_or_default();
    res.remove_main_icon()
        .map_err(|e| bad_pe(format!("removing old icon: {e}")))?;
    res.set_main_icon(ico_bytes.as_slice())
        .map_err(|e| bad_pe(format!("setting icon: {e}")))?;
    res.set_manifest(&manifest)
        .map_err(|e| bad_pe(format!("setting manifest: {e}")))?;
    let mut vi = VersionInfo::default();
    vi.info.file_version = packed(app.version4);
    vi.info.product_version = packed(app.version4);
    vi.info.file_type = 1; // VFT_APP
    vi.info.file_os = 0x0004_0004; // VOS_NT_WINDOWS32
    let mut table = VersionStringTable {
        key: STRING_TABLE_KEY.into(),
        strings: Default::default(),
    };
    for (k, v) in &strings {
        table.strings.insert(k.clone(), v.clone());
    }
    vi.strings.push(table);
    vi.vars.push(VersionU16 {
        major: 0x0409,
        minor: 0x04B0,
    });
    res.set_version_info(&vi)
        .map_err(|e| bad_pe(format!("setting version info: {e}")))?;
    image
        .set_resource_directory(res)
        .map_err(|e| bad_pe(format!("rebuilding resources: {e}")))?;

    let tmp = exe.with_file_name(format!(".{exe_name}.res-tmp"));
    image
        .write_file(&tmp)
        .map_err(|e| bad_pe(format!("writing: {e}")))?;
    let check = (|| {
        let back = read_unguarded(&tmp)?;
        let mismatch = |reason: String| PackageError::ResourceMismatch {
            path: exe.to_path_buf(),
            reason,
        };
        if back.version_strings != strings {
            return Err(mismatch(format!(
                "version strings {:?}",
                back.version_strings
            )));
        }
        if back.file_version != Some(app.version4) || back.product_version != Some(app.version4) {
            return Err(mismatch(format!(
                "version {:?}/{:?}",
                back.file_version, back.product_version
            )));
        }
        if back.manifest.as_deref() != Some(manifest.as_str()) {
            return Err(mismatch("manifest text differs".into()));
        }
        let mut sizes = back.icon_sizes.clone();
        sizes.sort_unstable();
        if sizes != ico_sizes {
            return Err(mismatch(format!(
                "icon sizes {sizes:?} (the ICO has {ico_sizes:?})"
            )));
        }
        Ok(())
    })();
    if let Err(e) = check {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, exe).map_err(PackageError::io(format!("replacing {}", exe.display())))
}

/// The sorted pixel sizes of a valid ICO file's entries (one or more, square or not:
/// the width is what the icon group lists).
pub(crate) fn ico_entry_sizes(path: &Path, bytes: &[u8]) -> Result<Vec<u32>, PackageError> {
    let bad = |reason: String| PackageError::BadIcon {
        path: path.to_path_buf(),
        reason,
    };
    super::icon::check_ico_layout(bytes).map_err(|e| bad(format!("not a valid ICO file: {e}")))?;
    let dir = ico::IconDir::read(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a valid ICO file: {e}")))?;
    if dir.resource_type() != ico::ResourceType::Icon {
        return Err(bad("a cursor file, not an icon".into()));
    }
    let mut sizes: Vec<u32> = dir.entries().iter().map(|e| e.width()).collect();
    if sizes.is_empty() {
        return Err(bad("the ICO holds no image".into()));
    }
    sizes.sort_unstable();
    Ok(sizes)
}

/// Reads and parses `exe` with editpe, after [`super::rsrc_guard`] found its resource tree
/// finite and small (editpe trusts it).
fn parse_checked(exe: &Path) -> Result<Image<'static>, PackageError> {
    let bad_pe = |reason: String| PackageError::BadPe {
        path: exe.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(exe).map_err(|e| bad_pe(format!("cannot read: {e}")))?;
    super::rsrc_guard::check_resource_tree(&bytes).map_err(bad_pe)?;
    Image::parse(bytes).map_err(|e| bad_pe(format!("cannot parse: {e}")))
}

/// Reads the resources an exe carries (for verification and tests).
pub fn read_resources(exe: &Path) -> Result<ResourceReport, PackageError> {
    contain_panics(exe, || read_unguarded(exe))
}

fn read_unguarded(exe: &Path) -> Result<ResourceReport, PackageError> {
    let bad_pe = |reason: String| PackageError::BadPe {
        path: exe.to_path_buf(),
        reason,
    };
    let image = parse_checked(exe)?;
    let mut report = ResourceReport::default();
    let Some(res) = image.resource_directory() else {
        return Ok(report);
    };
    if let Some(vi) = res
        .get_version_info()
        .map_err(|e| bad_pe(format!("version info: {e}")))?
    {
        report.file_version = Some(unpacked(vi.info.file_version));
        report.product_version = Some(unpacked(vi.info.product_version));
        if let Some(t) = vi.strings.first() {
            report.version_strings = t
                .strings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
    }
    report.manifest = res
        .get_manifest()
        .map_err(|e| bad_pe(format!("manifest: {e}")))?;
    report.icon_sizes = main_icon_group_sizes(res);
    Ok(report)
}

/// Sizes from the first RT_GROUP_ICON directory (GRPICONDIR: 6-byte header, then 14-byte
/// entries whose first byte is the width, 0 meaning 256).
fn main_icon_group_sizes(res: &editpe::ResourceDirectory) -> Vec<u32> {
    let Some(ResourceEntry::Table(groups)) = res.root().get(ResourceEntryName::ID(RT_GROUP_ICON))
    else {
        return vec![];
    };
    let main = groups
        .get(ResourceEntryName::from_string("MAINICON"))
        .or_else(|| groups.entries().first().and_then(|name| groups.get(*name)));
    let Some(ResourceEntry::Table(langs)) = main else {
        return vec![];
    };
    let Some(ResourceEntry::Data(data)) = langs.entries().first().and_then(|name| langs.get(*name))
    else {
        return vec![];
    };
    let bytes = data.data();
    if bytes.len() < 6 {
        return vec![];
    }
    let count = u16::from_le_bytes([bytes[4], bytes[5]]) as usize;
    (0..count)
        .filter_map(|i| bytes.get(6 + i * 14))
        .map(|&w| if w == 0 { 256 } else { w as u32 })
        .collect()
}
