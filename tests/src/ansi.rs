//! Turning raw serial bytes into text a test can match: OVMF's console (which mirrors the
//! loader's UEFI ConOut to COM1) wraps text in ANSI escape sequences, for example
//! `ESC[1mESC[33mShell> ESC[0m`, and moves the cursor between echoed characters.
//!
//! [`clean`] drops escape sequences and carriage returns. It is prefix-stable: cleaning a
//! longer stream never changes the text cleaned from a shorter prefix of it, except that an
//! escape sequence cut at the end of the prefix is dropped whole. That lets the console keep
//! a match position in cleaned-text coordinates while bytes keep arriving.

const ESC: u8 = 0x1b;

/// Raw bytes to matchable text: escape sequences and `\r` removed, invalid UTF-8 replaced.
pub fn clean(raw: &[u8]) -> String {
    String::from_utf8_lossy(&clean_bytes(raw)).into_owned()
}

/// [`clean`] without the UTF-8 conversion, which would not be prefix-stable (a multi-byte
/// character cut at the end of a prefix becomes U+FFFD).
pub fn clean_bytes(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            ESC => i = skip_escape(raw, i),
            b'\r' => i += 1,
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Index just past the escape sequence starting at `start` (or the end of input if cut).
fn skip_escape(raw: &[u8], start: usize) -> usize {
    let Some(&kind) = raw.get(start + 1) else {
        return raw.len();
    };
    if kind != b'[' {
        // Two-byte sequences such as `ESC c` or `ESC =`.
        return start + 2;
    }
    // CSI: parameter and intermediate bytes 0x20..=0x3f, then one final byte 0x40..=0x7e.
    let mut i = start + 2;
    while i < raw.len() {
        let byte = raw[i];
        i += 1;
        if (0x40..=0x7e).contains(&byte) {
            return i;
        }
        if !(0x20..=0x3f).contains(&byte) {
            // Not a well-formed CSI: drop just the introducer and keep the rest as text.
            return start + 2;
        }
    }
    raw.len()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> &str {
    if lines == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut start = body.len();
    for _ in 0..lines {
        match body[..start].rfind('\n') {
            Some(pos) => start = pos,
            None => return text,
        }
    }
    &text[start + 1..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ovmf_colour_and_cursor_sequences() {
        let raw =
            b"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[1m\x1b[33m\x1b[40mShell> \x1b[0m\x1b[37m\x1b[40m";
        assert_eq!(clean(raw), "Shell> ");
    }

    #[test]
    fn drops_carriage_returns_and_keeps_newlines() {
        assert_eq!(clean(b"a\r\nb\r\n"), "a\nb\n");
    }

    #[test]
    fn echoed_input_with_cursor_moves_becomes_plain_text() {
        let raw = b"\x1b[12;08Hr\x1b[12;09H\x1b[12;09He\x1b[12;10H";
        assert_eq!(clean(raw), "re");
    }

    #[test]
    fn cut_sequence_at_end_is_dropped_and_prefix_stays_stable() {
        let full = b"ab\x1b[1;33mcd";
        for cut in 0..full.len() {
            let prefix = clean_bytes(&full[..cut]);
            assert!(
                clean_bytes(full).starts_with(&prefix),
                "cut at {cut}: {prefix:?}"
            );
        }
    }

    #[test]
    fn malformed_csi_keeps_following_text() {
        assert_eq!(clean(b"x\x1b[\nyz"), "x\nyz");
    }

    #[test]
    fn tail_returns_last_lines() {
        assert_eq!(tail("1\n2\n3\n4", 2), "3\n4");
        assert_eq!(tail("1\n2\n3\n4\n", 2), "3\n4\n");
        assert_eq!(tail("only", 5), "only");
    }
}
