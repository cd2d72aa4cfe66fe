//! Secret masking: every credential value of a job, in every form it is likely to be printed
//! in, is replaced by `[redacted]` before any text leaves the worker.
//!
//! For each secret value the [`Masker`] looks for:
//! - the value itself and its trimmed form;
//! - its base64 (standard and URL-safe alphabets, with and without padding), including the
//!   stable middle part of its encoding when it sits at any byte offset inside a larger
//!   base64 blob;
//! - its URL-encoded forms (`+` and `%20` for spaces) and its JSON-escaped form;
//! - each line of a multi-line value (PEM blocks, service-account JSON);
//! - when the value is base64 of text (a service-account JSON, a PEM): that text, and for
//!   JSON every string in it except URLs and the public descriptors `type`, `project_id`
//!   and `universe_domain` (masking the project name would redact it from every log line
//!   that names the app or its folders), each again in all the forms above.
//!
//! Values and derived forms shorter than `MIN_SECRET_LEN` characters are ignored: masking
//! every `ab` or `1` in a build log would destroy the log and reveal nothing useful anyway.
//! Longer forms win over shorter overlapping ones; overlapping matches merge into one
//! `[redacted]`. [`MaskingStream`] masks text that arrives in chunks, holding back just
//! enough to catch a secret split across two chunks.

use crate::job::credentials::Secret;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use zeroize::Zeroizing;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";
/// Shorter values (in characters) are not masked.
pub(crate) const MIN_SECRET_LEN: usize = 4;
/// Top-level fields of a decoded credential JSON that describe it and are not secret.
const PUBLIC_JSON_FIELDS: [&str; 3] = ["type", "project_id", "universe_domain"];

/// Replaces known secret values (and their encodings) in text.
pub struct Masker {
    /// Distinct patterns, longest first.
    patterns: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} patterns)", self.patterns.len())
    }
}

impl Masker {
    /// A masker for `secrets` and their derived forms; values shorter than
    /// `MIN_SECRET_LEN` are skipped.
    pub fn new(secrets: &[Secret]) -> Masker {
        let mut patterns: Vec<Zeroizing<String>> = Vec::new();
        let mut values: Vec<Zeroizing<String>> = Vec::new();
        for secret in secrets {
            values.push(Zeroizing::new(secret.expose().to_string()));
            values.extend(decoded_values(secret.expose()));
        }
        for value in &values {
            if value.trim().chars().count() < MIN_SECRET_LEN {
                continue;
            }
            for form in forms_of(value) {
                if form.chars().count() >= MIN_SECRET_LEN && !patterns.iter().any(|p| **p == *form)
                {
                    patterns.push(form);
                }
            }
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Masker { patterns }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Length in bytes of the longest pattern (0 when empty).
    pub(crate) fn longest_pattern(&self) -> usize {
        self.patterns.first().map_or(0, |p| p.len())
    }

    /// `text` with every occurrence of every pattern replaced by [`REDACTED`].
    pub fn mask(&self, text: &str) -> String {
        let ranges = self.matches(text);
        if ranges.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in ranges {
            out.push_str(&text[at..start]);
            out.push_str(REDACTED);
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Sorted, merged byte ranges of all pattern occurrences.
    fn matches(&self, text: &str) -> Vec<(usize, usize)> {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for pattern in &self.patterns {
            if pattern.len() > text.len() {
                continue;
            }
            ranges.extend(
                text.match_indices(pattern.as_str())
                    .map(|(i, m)| (i, i + m.len())),
            );
        }
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }
}

/// When `value` is base64 of UTF-8 text (a service-account JSON, a PEM certificate), that
/// text; when the text is a JSON object, also every string in it except URLs (so a private
/// key printed from the decoded JSON is caught too).
fn decoded_values(value: &str) -> Vec<Zeroizing<String>> {
    let compact: Zeroizing<String> =
        Zeroizing::new(value.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let Some(bytes) = STANDARD
        .decode(compact.as_bytes())
        .or_else(|_| URL_SAFE.decode(compact.as_bytes()))
        .ok()
        .map(Zeroizing::new)
    else {
        return Vec::new();
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Vec::new();
    };
    let mut out = vec![Zeroizing::new(text.to_string())];
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        let mut stack: Vec<&serde_json::Value> = map
            .iter()
            .filter(|(key, _)| !PUBLIC_JSON_FIELDS.contains(&key.as_str()))
            .map(|(_, v)| v)
            .collect();
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::String(s)
                    if !s.starts_with("http://") && !s.starts_with("https://") =>
                {
                    out.push(Zeroizing::new(s.clone()))
                }
                serde_json::Value::Array(items) => stack.extend(items),
                serde_json::Value::Object(m) => stack.extend(m.values()),
                _ => {}
            }
        }
    }
    out
}

/// Every printable form of one secret value.
fn forms_of(value: &str) -> Vec<Zeroizing<String>> {
    let mut forms: Vec<Zeroizing<String>> = Vec::new();
    let mut push = |s: String| forms.push(Zeroizing::new(s));
    for v in [value, value.trim()] {
        push(v.to_string());
        let bytes = v.as_bytes();
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            push(engine.encode(bytes));
        }
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            for offset in 0..3 {
                push(base64_middle(engine, bytes, offset));
            }
        }
        let form = url::form_urlencoded::byte_serialize(bytes).collect::<String>();
        push(form.replace('+', "%20"));
        push(form);
        let json = serde_json::to_string(v).unwrap_or_default();
        push(
            json.get(1..json.len().saturating_sub(1))
                .unwrap_or_default()
                .to_string(),
        );
    }
    if value.contains('\n') {
        for line in value.lines() {
            push(line.trim_end_matches('\r').to_string());
            push(line.trim().to_string());
        }
    }
    forms
}

/// The base64 characters that depend only on `bytes` when they sit `offset` (0, 1 or 2)
/// bytes into a larger encoded blob.
fn base64_middle(engine: &impl Engine, bytes: &[u8], offset: usize) -> String {
    let mut shifted = Zeroizing::new(vec![0u8; offset]);
    shifted.extend_from_slice(bytes);
    let encoded = Zeroizing::new(engine.encode(&*shifted));
    let skip = [0, 2, 3][offset];
    let drop_tail = usize::from(shifted.len() % 3 != 0);
    encoded
        .get(skip..encoded.len().saturating_sub(drop_tail))
        .unwrap_or_default()
        .to_string()
}

/// Masks text that arrives in chunks (process output), so that a secret split across two
/// chunks is still caught. Text is held back only while it could be the start of a secret.
#[derive(Debug)]
pub struct MaskingStream<'m> {
    masker: &'m Masker,
    pending: String,
}

impl<'m> MaskingStream<'m> {
    /// A stream masking with `masker`, nothing held back yet.
    pub fn new(masker: &'m Masker) -> Self {
        MaskingStream {
            masker,
            pending: String::new(),
        }
    }

    /// Adds a chunk; returns the masked text that is safe to release now.
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let hold = self.masker.longest_pattern().saturating_sub(1);
        let mut cut = self.pending.len().saturating_sub(hold);
        while !self.pending.is_char_boundary(cut) {
            cut -= 1;
        }
        // A match that straddles the cut is released whole.
        for (start, end) in self.masker.matches(&self.pending) {
            if start < cut && end > cut {
                cut = end;
            }
        }
        let rest = self.pending.split_off(cut);
        let ready = std::mem::replace(&mut self.pending, rest);
        self.masker.mask(&ready)
    }

    /// Releases whatever is still held back.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.masker.mask(&rest)
    }
}
