//! Streaming standard-base64 decoding for the test hub's upload route: chunks of any size
//! in, raw bytes out, whitespace ignored, at most three characters carried between chunks.

use base64::Engine;

#[derive(Default)]
pub struct StreamingDecoder {
    carry: Vec<u8>,
    finished: bool,
}

impl StreamingDecoder {
    /// Decodes what can be decoded from `chunk` (plus the carry) into `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if self.finished && chunk.iter().any(|b| !b.is_ascii_whitespace()) {
            return Err("data after base64 padding".into());
        }
        self.carry
            .extend(chunk.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        let whole = self.carry.len() / 4 * 4;
        if whole == 0 {
            return Ok(());
        }
        let block: Vec<u8> = self.carry.drain(..whole).collect();
        if block.contains(&b'=') {
            self.finished = true;
        }
        base64::engine::general_purpose::STANDARD
            .decode_vec(&block, out)
            .map_err(|e| format!("invalid base64: {e}"))
    }

    /// Checks that nothing is left over.
    pub fn finish(self) -> Result<(), String> {
        if self.carry.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "base64 ends with {} stray characters",
                self.carry.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_odd_chunk_boundaries() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_001).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&data) + "\n";
        let mut d = StreamingDecoder::default();
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(7) {
            d.push(chunk, &mut out).unwrap();
        }
        d.finish().unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn rejects_garbage() {
        let mut d = StreamingDecoder::default();
        assert!(d.push(b"ab!d", &mut Vec::new()).is_err());
        let mut d = StreamingDecoder::default();
        d.push(b"abc", &mut Vec::new()).unwrap();
        assert!(d.finish().is_err());
    }
}
