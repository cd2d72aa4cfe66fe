//! A bundle like a media-heavy app: incompressible "media" (xorshift noise under media
//! extensions) and compressible source-like text, split over a few files and folders, plus
//! an exe stand-in. Shared by the packaging tests and `benches/compression.rs`.

use perry_ship_windows::package::Bundle;
use std::io::Write;
use std::path::Path;

pub const MIXED_EXE: &str = "Mixed App.exe";

/// The relative paths of the media and text files of [`write_mixed_bundle`].
pub struct MixedFiles {
    pub media: Vec<String>,
    pub text: Vec<String>,
}

/// Writes `media_bytes` of noise (4 files) and `text_bytes` of text (4 files) under
/// `root`, plus a small exe stand-in, and returns the bundle and the file lists.
pub fn write_mixed_bundle(root: &Path, media_bytes: u64, text_bytes: u64) -> (Bundle, MixedFiles) {
    std::fs::create_dir_all(root.join("media/video")).unwrap();
    std::fs::create_dir_all(root.join("src/lib")).unwrap();
    let mut exe = b"MZ".to_vec();
    exe.extend(std::iter::repeat_n(0u8, 4094));
    std::fs::write(root.join(MIXED_EXE), &exe).unwrap();
    let media: Vec<String> = [
        "media/video/intro.mp4",
        "media/video/outro.mp4",
        "media/music.ogg",
        "media/textures.zip",
    ]
    .map(String::from)
    .to_vec();
    let text: Vec<String> = [
        "src/app.js",
        "src/lib/runtime.js",
        "src/lib/data.json",
        "src/strings.txt",
    ]
    .map(String::from)
    .to_vec();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for (i, rel) in media.iter().enumerate() {
        let share = media_bytes / 4 + u64::from((i as u64) < media_bytes % 4);
        let mut out = std::io::BufWriter::new(std::fs::File::create(root.join(rel)).unwrap());
        let mut buf = vec![0u8; 1 << 16];
        let mut left = share;
        while left > 0 {
            for chunk in buf.chunks_mut(8) {
                let v = xorshift(&mut state).to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            let n = left.min(buf.len() as u64) as usize;
            out.write_all(&buf[..n]).unwrap();
            left -= n as u64;
        }
    }
    let words = source_words(&mut state);
    for (i, rel) in text.iter().enumerate() {
        let share = text_bytes / 4 + u64::from((i as u64) < text_bytes % 4);
        let mut out = std::io::BufWriter::new(std::fs::File::create(root.join(rel)).unwrap());
        let mut written = 0u64;
        let mut line = String::new();
        while written < share {
            line.clear();
            let indent = (xorshift(&mut state) % 5) as usize;
            line.push_str(&"    ".repeat(indent));
            let tokens = 2 + xorshift(&mut state) % 10;
            for t in 0..tokens {
                if t > 0 {
                    line.push(' ');
                }
                line.push_str(&words[(xorshift(&mut state) % words.len() as u64) as usize]);
            }
            line.push_str([";\n", " {\n", "}\n", ",\n"][(xorshift(&mut state) % 4) as usize]);
            let take = line.len().min((share - written) as usize);
            out.write_all(&line.as_bytes()[..take]).unwrap();
            written += take as u64;
        }
    }
    (Bundle::new(root, MIXED_EXE), MixedFiles { media, text })
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Keywords and 4000 made-up identifiers: text that compresses like real source code.
fn source_words(state: &mut u64) -> Vec<String> {
    let mut words: Vec<String> = [
        "function", "const", "let", "return", "if", "else", "for", "while", "import", "export",
        "class", "this", "new", "await", "async", "true", "false", "null", "=", "=>", "+", "(",
        ")", "value", "index", "count", "result", "error", "config", "options",
    ]
    .map(String::from)
    .to_vec();
    let letters = b"abcdefghijklmnopqrstuvwxyz_";
    for _ in 0..4000 {
        let len = 3 + (xorshift(state) % 10) as usize;
        words.push(
            (0..len)
                .map(|_| letters[(xorshift(state) % letters.len() as u64) as usize] as char)
                .collect(),
        );
    }
    words
}
