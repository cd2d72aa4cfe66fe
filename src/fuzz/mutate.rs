//! Mutations shared by the targets: generic byte edits, and helpers for the structures
//! several formats share (little-endian integers, values that tend to break parsers, JSON).

use super::engine::Rng;
use serde_json::{Map, Value};

/// 32-bit values that hit edges: zero, one, sign bits, all ones, "a subdirectory at
/// offset 0" (PE resource tables), and small offsets.
pub(crate) const INTERESTING_U32: &[u32] = &[
    0,
    1,
    2,
    7,
    8,
    16,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x200,
    0x1000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0x8000_0010,
    0x8000_0018,
    0xffff_fffe,
    0xffff_ffff,
];

/// Names that stress path rules (traversal, Windows devices and drives, odd characters).
pub(crate) const INTERESTING_NAMES: &[&str] = &[
    "../escape",
    "a/../../b",
    "/etc/passwd",
    "C:\\Windows\\x.dll",
    "c:x",
    "CON",
    "nul.txt",
    "aux",
    "a\\..\\..\\b",
    "dir/",
    "",
    ".",
    "..",
    "name with space ",
    "trailing.",
    "\u{1b}[2J",
    "ok.dll",
    "a/b/c/d/e/f/g/h",
];

/// One generic edit of `data`; `other` is another corpus input for splicing.
pub(crate) fn bytes(data: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    let len = data.len();
    match rng.below(9) {
        0 if len > 0 => {
            let at = rng.below(len);
            data[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            data[at] = *rng.pick(&[0u8, 0xff, 0x7f, 0x80, b'/', b'.', b'\\', b'0', b'7']);
        }
        2 if len >= 4 => {
            let at = rng.below(len - 3);
            put_u32(data, at, *rng.pick(INTERESTING_U32));
        }
        3 if len >= 2 => {
            let at = rng.below(len - 1);
            let v = *rng.pick(&[0u16, 1, 0x7fff, 0x8000, 0xffff]);
            data[at..at + 2].copy_from_slice(&v.to_le_bytes());
        }
        4 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            data.drain(start..end);
        }
        5 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(32);
            let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            data.splice(at..at, fill);
        }
        6 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(512)).min(len);
            let chunk = data[start..end].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        7 if len > 0 => data.truncate(rng.below(len)),
        _ if !other.is_empty() => {
            let cut = rng.below(data.len() + 1);
            let from = rng.below(other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        _ => data.push(rng.next() as u8),
    }
}

pub(crate) fn put_u32(data: &mut [u8], at: usize, v: u32) {
    if let Some(slot) = data.get_mut(at..at + 4) {
        slot.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// A JSON value of a random kind, often hostile (long, deep, control characters, paths).
pub(crate) fn json_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(2)),
        2 => Value::from(*rng.pick(&[0i64, -1, 65535, 65536, i64::MAX, i64::MIN])),
        3 => Value::from(*rng.pick(&[0.5f64, -1e308, 1e308])),
        4 => Value::from(*rng.pick(INTERESTING_NAMES)),
        5 => Value::from(
            rng.pick(&[
                "1",
                "1.2.3.4",
                "1.2.3.4.5",
                "65536",
                "1..2",
                "x",
                "é",
                "a\u{0}b",
            ])
            .repeat(1 + rng.below(3)),
        ),
        6 => Value::from("x".repeat(rng.below(5000))),
        7 => Value::Array(
            (0..rng.below(4))
                .map(|_| json_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(4) {
                map.insert(
                    rng.pick(INTERESTING_NAMES).to_string(),
                    json_value(rng, depth + 1),
                );
            }
            Value::Object(map)
        }
    }
}

/// Structure-aware JSON edit: set a known key (or a nested one) to a random value, drop a
/// key, or nest the text deeply; falls back to byte edits when the input is not JSON.
pub(crate) fn json(data: &mut Vec<u8>, keys: &[&str], rng: &mut Rng) {
    let Ok(mut value) = serde_json::from_slice::<Value>(data) else {
        bytes(data, &[], rng);
        return;
    };
    match rng.below(6) {
        0 => {
            let depth = 1 + rng.below(300);
            let text = format!(
                "{}{}{}",
                "[".repeat(depth),
                data_text(data),
                "]".repeat(depth)
            );
            *data = text.into_bytes();
            return;
        }
        1 => {
            if let Some(obj) = value.as_object_mut() {
                let key = rng.pick(keys).to_string();
                obj.remove(&key);
            }
        }
        _ => {
            let new = json_value(rng, 0);
            let key = rng.pick(keys).to_string();
            match value.as_object_mut() {
                Some(obj) => match obj.get_mut(&key) {
                    Some(Value::Object(inner)) if rng.chance(2) => {
                        inner.insert(rng.pick(keys).to_string(), new);
                    }
                    _ => {
                        obj.insert(key, new);
                    }
                },
                None => value = new,
            }
        }
    }
    *data = serde_json::to_vec(&value).unwrap_or_default();
}

fn data_text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}
