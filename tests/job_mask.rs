//! Secret masking: raw values, encodings, multi-line values, chunked output.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use perry_ship_windows::job::credentials::Secret;
use perry_ship_windows::job::mask::{Masker, MaskingStream, REDACTED};

fn masker(values: &[&str]) -> Masker {
    let secrets: Vec<Secret> = values.iter().map(|v| Secret::new(*v)).collect();
    Masker::new(&secrets)
}

#[test]
fn raw_value_is_replaced_everywhere() {
    let m = masker(&["s3cr3t-pa55"]);
    assert_eq!(
        m.mask("pw=s3cr3t-pa55 and again s3cr3t-pa55."),
        "pw=[redacted] and again [redacted]."
    );
    assert_eq!(m.mask("nothing here"), "nothing here");
    assert!(!m.is_empty());
}

#[test]
fn short_values_are_ignored() {
    let m = masker(&["abc", "", "x"]);
    assert!(m.is_empty());
    assert_eq!(m.mask("abc x"), "abc x");
}

#[test]
fn base64_forms_are_replaced() {
    let secret = "pa$$word with spaces?>";
    let m = masker(&[secret]);
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        let encoded = engine.encode(secret);
        let out = m.mask(&format!("Authorization: Basic {encoded}"));
        assert!(!out.contains(&encoded), "{out}");
        assert!(out.contains(REDACTED));
    }
    // Inside a larger base64 blob, at every byte offset.
    for prefix in ["", "u", "us", "use", "user:"] {
        let blob = STANDARD.encode(format!("{prefix}{secret}|tail"));
        let out = m.mask(&blob);
        assert!(out.contains(REDACTED), "offset {}: {out}", prefix.len());
        let remaining: String = out.replace(REDACTED, "");
        assert!(remaining.len() <= 20, "too much of the blob left: {out}");
    }
}

#[test]
fn url_and_json_forms_are_replaced() {
    let secret = "a b&c=d/\"quoted\"\\";
    let m = masker(&[secret]);
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    assert_eq!(m.mask(&format!("?pw={form}")), "?pw=[redacted]");
    assert_eq!(
        m.mask(&format!("?pw={}", form.replace('+', "%20"))),
        "?pw=[redacted]"
    );
    let json = serde_json::to_string(&serde_json::json!({ "password": secret })).unwrap();
    assert_eq!(m.mask(&json), r#"{"password":"[redacted]"}"#);
}

#[test]
fn each_line_of_a_multiline_value_is_replaced() {
    let pem = "-----BEGIN PRIVATE KEY-----\r\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\r\nBKcwggSjAgEAAoIBAQC7\r\nab\r\n-----END PRIVATE KEY-----";
    let m = masker(&[pem]);
    let out = m.mask("error near line: BKcwggSjAgEAAoIBAQC7 (MIIEvQIBADANBgkqhkiG9w0BAQEFAASC)");
    assert_eq!(out, "error near line: [redacted] ([redacted])");
    // Lines shorter than four characters are left alone.
    assert_eq!(m.mask("ab"), "ab");
}

#[test]
fn longest_match_wins_and_overlaps_merge() {
    let m = masker(&["secret", "secret-extended-value"]);
    assert_eq!(
        m.mask("x secret-extended-value y secret z"),
        "x [redacted] y [redacted] z"
    );
    let m = masker(&["aaaa1111", "1111bbbb"]);
    assert_eq!(m.mask("aaaa1111bbbb"), "[redacted]");
}

#[test]
fn non_ascii_text_and_secrets_are_handled() {
    let m = masker(&["pässwörd-ü"]);
    assert_eq!(m.mask("ö pässwörd-ü ö"), "ö [redacted] ö");
    assert_eq!(m.mask("日本語"), "日本語");
}

#[test]
fn a_secret_split_across_chunks_is_caught() {
    let secret = "split-secret-value";
    let m = masker(&[secret]);
    let text = format!("begin {secret} middle ü {secret} end");
    for split in 1..text.len() {
        if !text.is_char_boundary(split) {
            continue;
        }
        let mut stream = MaskingStream::new(&m);
        let mut out = stream.push(&text[..split]);
        out += &stream.push(&text[split..]);
        out += &stream.finish();
        assert_eq!(
            out, "begin [redacted] middle ü [redacted] end",
            "split at {split}"
        );
    }
    // Byte-by-byte feeding also works and releases text early.
    let mut stream = MaskingStream::new(&m);
    let mut out = String::new();
    for c in text.chars() {
        out += &stream.push(&c.to_string());
    }
    assert!(out.starts_with("begin [redacted] middle"), "{out}");
    out += &stream.finish();
    assert_eq!(out, "begin [redacted] middle ü [redacted] end");
}

#[test]
fn debug_does_not_print_patterns() {
    let m = masker(&["very-secret-thing"]);
    assert!(!format!("{m:?}").contains("very-secret"));
}

#[test]
fn decoded_base64_secrets_and_their_json_strings_are_replaced() {
    let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
    let account = serde_json::json!({
        "type": "service_account",
        "project_id": "perry-demo",
        "universe_domain": "googleapis.com",
        "client_email": "signer@perry-demo.iam.gserviceaccount.com",
        "private_key_id": "0123456789abcdef",
        "private_key": key,
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    let account_text = serde_json::to_string_pretty(&account).unwrap();
    let m = masker(&[&STANDARD.encode(&account_text)]);
    // The decoded JSON, one of its secrets printed alone, and a line of the key.
    assert!(!m.mask(&account_text).contains("0123456789abcdef"));
    assert_eq!(m.mask("key id 0123456789abcdef"), "key id [redacted]");
    assert_eq!(m.mask("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "[redacted]");
    assert_eq!(
        m.mask("as signer@perry-demo.iam.gserviceaccount.com"),
        "as [redacted]"
    );
    // URLs and the public descriptors inside the JSON stay readable.
    assert_eq!(
        m.mask("POST https://oauth2.googleapis.com/token"),
        "POST https://oauth2.googleapis.com/token"
    );
    assert_eq!(
        m.mask("perry-demo: service_account on googleapis.com"),
        "perry-demo: service_account on googleapis.com"
    );
}
