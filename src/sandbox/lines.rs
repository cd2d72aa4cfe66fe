//! Turns the byte chunks a process writes to stdout/stderr into log lines.
//!
//! Chunks arrive cut anywhere (mid-line, mid-UTF-8 sequence, between `\r` and `\n`), so a
//! [`LineAssembler`] keeps the unfinished tail between calls. Lines end at `\n`; a `\r`
//! right before it is dropped (CRLF from Windows tools). Bytes that are not UTF-8 are
//! replaced (lossy), never an error. A line longer than the cap is cut at a character
//! boundary and marked with [`TRUNCATION_MARK`]; the rest of it is skipped until the next
//! newline, so memory stays bounded whatever the process prints.
//!
//! Every emitted line goes through [`strip_controls`]: a tool (or project code running at
//! compile time) must not be able to move the cursor, clear the screen, set a terminal
//! title or overwrite an earlier line with `\r` on the terminal, in a log file or on the hub.

use std::borrow::Cow;

/// Appended to a line that was cut at the length cap.
pub(crate) const TRUNCATION_MARK: &str = " …[line truncated]";

/// Default cap on a line's length in bytes (matches `LogLimits::max_line_len`).
pub(crate) const DEFAULT_MAX_LINE_BYTES: usize = 4096;

/// `text` without control characters (C0 except tab, DEL, C1: ESC of ANSI/OSC sequences,
/// BEL, backspace, CR, form feed, …) and without the bidirectional overrides that make text
/// display in another order than it is written. Borrowed when nothing had to go.
pub(crate) fn strip_controls(text: &str) -> Cow<'_, str> {
    let unwanted = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if text.chars().any(unwanted) {
        Cow::Owned(text.chars().filter(|&c| !unwanted(c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// Splits a byte stream into lines. One assembler per stream.
#[derive(Debug)]
pub(crate) struct LineAssembler {
    pending: Vec<u8>,
    max_line_bytes: usize,
    /// The current line was already emitted (cut); skip bytes until the next `\n`.
    skipping_rest: bool,
}

impl Default for LineAssembler {
    fn default() -> Self {
        LineAssembler::new(DEFAULT_MAX_LINE_BYTES)
    }
}

impl LineAssembler {
    /// `max_line_bytes` is clamped to at least 16.
    pub(crate) fn new(max_line_bytes: usize) -> Self {
        LineAssembler {
            pending: Vec::new(),
            max_line_bytes: max_line_bytes.max(16),
            skipping_rest: false,
        }
    }

    /// Feeds one chunk; calls `emit` for every line completed by it.
    pub(crate) fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(String)) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let newline = rest.iter().position(|&b| b == b'\n');
            let (part, ends_line) = match newline {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = match newline {
                Some(i) => &rest[i + 1..],
                None => &[],
            };

            if self.skipping_rest {
                if ends_line {
                    self.skipping_rest = false;
                }
                continue;
            }
            self.pending.extend_from_slice(part);
            if ends_line {
                emit(self.take_line());
            } else if self.pending.len() > self.max_line_bytes {
                emit(self.take_truncated());
                self.skipping_rest = true;
            }
        }
    }

    /// Emits the unfinished last line, if any (call at end of stream).
    pub(crate) fn finish(&mut self, mut emit: impl FnMut(String)) {
        if !self.pending.is_empty() {
            emit(self.take_line());
        }
        self.skipping_rest = false;
    }

    /// For tests: all lines of `chunks`, including the last.
    #[cfg(test)]
    pub(crate) fn split_all<'a>(
        max_line_bytes: usize,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut assembler = LineAssembler::new(max_line_bytes);
        for c in chunks {
            assembler.push(c, |l| out.push(l));
        }
        assembler.finish(|l| out.push(l));
        out
    }

    fn take_line(&mut self) -> String {
        if self.pending.last() == Some(&b'\r') {
            self.pending.pop();
        }
        if self.pending.len() > self.max_line_bytes {
            return self.take_truncated();
        }
        let line = strip_controls(&String::from_utf8_lossy(&self.pending)).into_owned();
        self.pending.clear();
        line
    }

    fn take_truncated(&mut self) -> String {
        let mut cut = self.max_line_bytes.min(self.pending.len());
        // Back up to a UTF-8 character start so the cut does not create a replacement char.
        while cut > 0 && cut < self.pending.len() && (self.pending[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
        let mut line = strip_controls(&String::from_utf8_lossy(&self.pending[..cut])).into_owned();
        line.push_str(TRUNCATION_MARK);
        self.pending.clear();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let lines = LineAssembler::split_all(100, [&b"hel"[..], b"lo\nwor", b"ld\n", b"tail"]);
        assert_eq!(lines, vec!["hello", "world", "tail"]);
    }

    #[test]
    fn crlf_split_between_chunks_is_stripped() {
        let lines = LineAssembler::split_all(100, [&b"one\r"[..], b"\ntwo\r\n"]);
        assert_eq!(lines, vec!["one", "two"]);
    }

    #[test]
    fn control_characters_are_removed_but_tabs_kept() {
        let hostile = b"\x1b]0;pwned title\x07\x1b[2J\x1b[Hcompiling\tok\rfake [signing] Signed with PFX (verified)\x08\x7f\xc2\x9b\xe2\x80\xaeevil\n";
        let lines = LineAssembler::split_all(200, [&hostile[..]]);
        assert_eq!(
            lines,
            vec!["]0;pwned title[2J[Hcompiling\tokfake [signing] Signed with PFX (verified)evil"]
        );
        for line in &lines {
            assert!(
                !line.chars().any(|c| c.is_control() && c != '\t'),
                "{line:?}"
            );
        }
        assert!(matches!(strip_controls("plain\ttext"), Cow::Borrowed(_)));
    }

    #[test]
    fn empty_lines_are_kept() {
        let lines = LineAssembler::split_all(100, [&b"a\n\nb\n"[..]]);
        assert_eq!(lines, vec!["a", "", "b"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_an_error() {
        let lines = LineAssembler::split_all(100, [&b"caf\xff\n"[..]]);
        assert_eq!(lines, vec!["caf\u{fffd}"]);
    }

    #[test]
    fn multibyte_char_split_across_chunks_survives() {
        let bytes = "grüße\n".as_bytes();
        let lines = LineAssembler::split_all(100, [&bytes[..3], &bytes[3..]]);
        assert_eq!(lines, vec!["grüße"]);
    }

    #[test]
    fn long_line_is_cut_marked_and_rest_skipped() {
        let long = [b'x'; 100];
        let lines = LineAssembler::split_all(20, [&long[..50], &long[50..], b"\nnext\n"]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], format!("{}{}", "x".repeat(20), TRUNCATION_MARK));
        assert_eq!(lines[1], "next");
    }

    #[test]
    fn cut_never_splits_a_character() {
        let text = "é".repeat(30); // 60 bytes, 2 per char
        let mut input = text.into_bytes();
        input.push(b'\n');
        let lines = LineAssembler::split_all(17, [&input[..]]);
        assert_eq!(lines[0], format!("{}{}", "é".repeat(8), TRUNCATION_MARK));
    }

    #[test]
    fn memory_stays_bounded_for_endless_line() {
        let mut assembler = LineAssembler::new(64);
        let chunk = vec![b'y'; 4096];
        let mut emitted = 0;
        for _ in 0..1000 {
            assembler.push(&chunk, |_| emitted += 1);
            assert!(assembler.pending.len() <= 64 + chunk.len());
        }
        assert_eq!(emitted, 1);
    }
}
