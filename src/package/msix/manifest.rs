//! `AppxManifest.xml` (from `templates/AppxManifest.xml`) and `[Content_Types].xml`.

use crate::package::escape::xml;
use crate::package::icon::MSIX_LOGOS;
use crate::package::template::{render, APPX_MANIFEST};
use crate::package::{AppInfo, PackageError};
use std::collections::BTreeMap;

/// Publisher written when the package is not signed. Windows only installs such a package
/// after it is signed by a certificate whose subject is exactly this DN (or in developer
/// mode via `Add-AppxPackage -AllowUnsigned` on recent Windows 11).
pub const UNSIGNED_PUBLISHER: &str = "CN=Perry Unsigned";

/// MSIX Identity/@Name: 3–50 characters from `A-Z a-z 0-9 . -`; the bundle id's `_`
/// become `-`, anything else is refused.
pub(crate) fn identity_name(bundle_id: &str) -> Result<String, PackageError> {
    let name: String = bundle_id
        .chars()
        .map(|c| if c == '_' { '-' } else { c })
        .collect();
    let ok = (3..=50).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !ok {
        return Err(PackageError::BadValue {
            field: "bundle_id".into(),
            reason: format!("{bundle_id:?} cannot be an MSIX identity name (3-50 characters of A-Z a-z 0-9 . - _)"),
        });
    }
    Ok(name)
}

/// Checks the shape of a distinguished name as Windows renders it (`CN=…, O=…, C=…`).
fn check_publisher_dn(dn: &str) -> Result<(), PackageError> {
    let ok = !dn.is_empty()
        && dn.len() <= 8192
        && dn.contains('=')
        && !dn.chars().any(|c| c.is_control())
        && dn.split(", ").all(|rdn| {
            rdn.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
            })
        });
    if ok {
        Ok(())
    } else {
        Err(PackageError::BadValue {
            field: "publisher".into(),
            reason: format!("{dn:?} is not a distinguished name like \"CN=Name, O=Org, C=US\""),
        })
    }
}

/// Renders the package manifest. `publisher_dn` is the signing certificate's subject as
/// Windows renders it (reverse RDN order), or [`UNSIGNED_PUBLISHER`].
pub fn appx_manifest(
    app: &AppInfo,
    exe_name: &str,
    publisher_dn: &str,
) -> Result<String, PackageError> {
    check_publisher_dn(publisher_dn)?;
    let [a, b, c, d] = app.version4;
    // Truncated descriptions keep whole characters; MSIX caps Description at 2048.
    let description: String = app.description.chars().take(2048).collect();
    let logo = |i: usize| MSIX_LOGOS[i].0.replace('/', "\\");
    render(
        "AppxManifest.xml",
        APPX_MANIFEST,
        &[
            ("identity_name", &identity_name(&app.bundle_id)?),
            ("publisher_dn", &xml("publisher", publisher_dn)?),
            ("version4", &format!("{a}.{b}.{c}.{d}")),
            ("display_name", &xml("app_name", &app.app_name)?),
            (
                "publisher_display_name",
                &xml("company_name", &app.publisher)?,
            ),
            ("description", &xml("file_description", &description)?),
            ("exe_name", &xml("exe_name", exe_name)?),
            ("store_logo", &logo(0)),
            ("logo_44", &logo(1)),
            ("logo_150", &logo(2)),
            ("logo_wide", &logo(3)),
        ],
    )
}

/// Content type of a payload file by extension (lower case).
fn content_type_for(ext: &str) -> &'static str {
    match ext {
        "exe" | "dll" => "application/x-msdownload",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/vnd.microsoft.icon",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "xml" => "application/xml",
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "application/javascript",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// The `[Content_Types].xml` entry of the signature part, last before `</Types>` in a
/// package written to be signed.
pub(crate) const SIGNATURE_CONTENT_TYPE: &str =
    "<Override PartName=\"/AppxSignature.p7x\" ContentType=\"application/vnd.ms-appx.signature\"/>";

/// Renders `[Content_Types].xml` for the payload part names (percent-encoded, `/`-separated,
/// without the leading `/`): a Default per extension, an Override for extension-less
/// parts, the manifest and the block map, and the signature when one will be added.
pub(crate) fn content_types(payload_part_names: &[String], will_sign: bool) -> String {
    let mut defaults = BTreeMap::new();
    let mut overrides = Vec::new();
    for part in payload_part_names {
        let leaf = part.rsplit('/').next().unwrap_or(part);
        match leaf.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => {
                let ext = ext.to_ascii_lowercase();
                let ct = content_type_for(&ext);
                defaults.insert(ext, ct);
            }
            _ => overrides.push((format!("/{part}"), "application/octet-stream")),
        }
    }
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">");
    for (ext, ct) in &defaults {
        // Extensions come from validated file names (no quotes, no markup characters
        // besides & which is escaped here).
        s.push_str(&format!(
            "<Default Extension=\"{}\" ContentType=\"{ct}\"/>",
            ext.replace('&', "&amp;")
        ));
    }
    for (part, ct) in &overrides {
        s.push_str(&format!(
            "<Override PartName=\"{}\" ContentType=\"{ct}\"/>",
            part.replace('&', "&amp;")
        ));
    }
    s.push_str("<Override PartName=\"/AppxManifest.xml\" ContentType=\"application/vnd.ms-appx.manifest+xml\"/>");
    s.push_str("<Override PartName=\"/AppxBlockMap.xml\" ContentType=\"application/vnd.ms-appx.blockmap+xml\"/>");
    if will_sign {
        s.push_str(SIGNATURE_CONTENT_TYPE);
    }
    s.push_str("</Types>");
    s
}

/// OPC part name of a bundle-relative path: each segment percent-encoded except for
/// RFC 3986 unreserved and sub-delim characters and `@`.
pub(crate) fn part_name(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@/".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_names_map_underscores_and_refuse_the_rest() {
        assert_eq!(
            identity_name("com.example.my_app").unwrap(),
            "com.example.my-app"
        );
        assert!(identity_name("ab").is_err());
        assert!(identity_name(&"a".repeat(51)).is_err());
    }

    #[test]
    fn part_names_are_percent_encoded() {
        assert_eq!(part_name("Demo App.exe"), "Demo%20App.exe");
        assert_eq!(
            part_name("assets/file $1 (copy).txt"),
            "assets/file%20$1%20(copy).txt"
        );
        assert_eq!(part_name("ä%"), "%C3%A4%25");
    }
}
