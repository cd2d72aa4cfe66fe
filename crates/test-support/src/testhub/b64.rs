//! Strict streaming base64 for the test hub's upload route: the worker's decoder
//! ([`StreamDecoder`]) plus the check that the worker sent padded standard base64 (a
//! multiple of four significant characters), so a worker that drops its padding fails the
//! upload instead of passing unnoticed.

use perry_ship_windows::hub::transfer::StreamDecoder;

#[derive(Default)]
pub struct StreamingDecoder {
    inner: StreamDecoder,
    /// Non-whitespace characters seen so far.
    significant: u64,
}

impl StreamingDecoder {
    /// Decodes what can be decoded from `chunk` (plus the carry) into `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.significant += chunk.iter().filter(|b| !b.is_ascii_whitespace()).count() as u64;
        out.extend_from_slice(self.inner.feed(chunk)?);
        Ok(())
    }

    /// Checks that nothing is left over.
    pub fn finish(mut self) -> Result<(), String> {
        let stray = self.significant % 4;
        if stray != 0 {
            return Err(format!("base64 ends with {stray} stray characters"));
        }
        self.inner.finish().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    #[test]
    fn decodes_across_odd_chunk_boundaries() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_001).collect();
        let text = STANDARD.encode(&data) + "\n";
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
