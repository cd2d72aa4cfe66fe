//! Base64 in bounded pieces: a decoder fed arbitrary chunks of text (whitespace allowed
//! anywhere, padding only at the end) and an encoder for file chunks whose length is a
//! multiple of three, so the pieces concatenate to one valid padded encoding.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Raw bytes read from disk per upload chunk (a multiple of 3, encodes to 64 KiB of text).
pub(crate) const ENCODE_CHUNK: usize = 48 * 1024;

/// Standard alphabet; trailing padding may be present or missing.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Length of the padded standard base64 text for `n` raw bytes.
pub(crate) fn encoded_len(n: u64) -> u64 {
    n.div_ceil(3) * 4
}

/// Encodes one chunk; only the last chunk of a stream may have a length that is not a
/// multiple of three.
pub(crate) fn encode_chunk(raw: &[u8]) -> String {
    STANDARD.encode(raw)
}

/// Decodes base64 text that arrives in chunks. Memory is bounded by the chunk size.
#[derive(Default)]
pub struct StreamDecoder {
    /// Significant characters not yet decoded (fewer than 4 between calls).
    carry: Vec<u8>,
    /// Set once a quantum with `=` padding was decoded: only whitespace may follow.
    ended: bool,
    /// Offset in the text, for error messages.
    position: u64,
    /// Decoded bytes of the last call; only ever grows (zero-filling a buffer on every call
    /// would cost a per-byte loop in unoptimised builds).
    scratch: Vec<u8>,
}

impl StreamDecoder {
    /// Decodes what can be decoded of `text`; returns the decoded bytes.
    pub fn feed(&mut self, text: &[u8]) -> Result<&[u8], String> {
        let mut significant = std::mem::take(&mut self.carry);
        significant.reserve(text.len());
        if !self.ended && !text.contains(&b'\t') && !text.contains(&b'\x0c') {
            // Common case: copy the runs between newlines and spaces in bulk.
            let mut rest = text;
            while let Some(at) = memchr::memchr3(b'\n', b'\r', b' ', rest) {
                significant.extend_from_slice(&rest[..at]);
                rest = &rest[at + 1..];
            }
            significant.extend_from_slice(rest);
            self.position += text.len() as u64;
        } else {
            for &b in text {
                self.position += 1;
                if b.is_ascii_whitespace() {
                    continue;
                }
                if self.ended {
                    return Err(format!(
                        "data after the final padding at byte {}",
                        self.position
                    ));
                }
                significant.push(b);
            }
        }
        let whole = significant.len() / 4 * 4;
        let n = if whole > 0 {
            self.decode(&significant[..whole])?
        } else {
            0
        };
        self.carry = significant[whole..].to_vec();
        if self.ended && !self.carry.is_empty() {
            return Err(format!(
                "data after the final padding at byte {}",
                self.position
            ));
        }
        Ok(&self.scratch[..n])
    }

    /// Decodes the rest; a tail of 2 or 3 characters without padding is accepted.
    pub fn finish(&mut self) -> Result<&[u8], String> {
        let tail = std::mem::take(&mut self.carry);
        let n = if tail.is_empty() {
            0
        } else {
            self.decode(&tail)?
        };
        Ok(&self.scratch[..n])
    }

    /// Decodes whole quanta into `scratch`; returns the decoded length.
    fn decode(&mut self, text: &[u8]) -> Result<usize, String> {
        if let Some(pad) = memchr::memchr(b'=', text) {
            // Padding may only sit in the last quantum of the whole stream.
            if pad < text.len().saturating_sub(4) {
                return Err(format!(
                    "padding in the middle of the data near byte {}",
                    self.position
                ));
            }
            self.ended = true;
        }
        let needed = text.len() / 4 * 3 + 3;
        if self.scratch.len() < needed {
            self.scratch = vec![0u8; needed];
        }
        LENIENT
            .decode_slice(text, &mut self.scratch)
            .map_err(|e| format!("invalid base64 near byte {}: {e}", self.position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(text: &str, piece: usize) -> Result<Vec<u8>, String> {
        let mut d = StreamDecoder::default();
        let mut all = Vec::new();
        for chunk in text.as_bytes().chunks(piece) {
            all.extend_from_slice(d.feed(chunk)?);
        }
        all.extend_from_slice(d.finish()?);
        Ok(all)
    }

    #[test]
    fn decodes_any_chunking_with_whitespace() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for len in [0, 1, 2, 3, 4, 5, 998, 1000] {
            let encoded = STANDARD.encode(&data[..len]);
            let wrapped: String = encoded
                .as_bytes()
                .chunks(76)
                .map(|l| format!("{}\r\n", std::str::from_utf8(l).unwrap()))
                .collect::<String>()
                + "  \n";
            for piece in [1, 2, 3, 5, 7, 64, 4096] {
                assert_eq!(
                    decode_in_pieces(&wrapped, piece).unwrap(),
                    &data[..len],
                    "len {len} piece {piece}"
                );
            }
        }
        assert_eq!(decode_in_pieces("YWI", 2).unwrap(), b"ab");
    }

    #[test]
    fn refuses_garbage() {
        assert!(decode_in_pieces("YQ==YWJj", 3).is_err());
        assert!(decode_in_pieces("YQ==\nYQ==", 100).is_err());
        assert!(decode_in_pieces("YQ==YW", 100).is_err());
        assert!(decode_in_pieces("YW*j", 4).is_err());
        assert!(decode_in_pieces("Y", 4).is_err());
        assert!(decode_in_pieces("<html>", 4).is_err());
    }

    #[test]
    fn chunks_concatenate() {
        let data = vec![42u8; ENCODE_CHUNK * 2 + 5];
        let text: String = data.chunks(ENCODE_CHUNK).map(encode_chunk).collect();
        assert_eq!(text, STANDARD.encode(&data));
        assert_eq!(text.len() as u64, encoded_len(data.len() as u64));
    }
}
