//! Line editing for the serial console, as a pure state machine: bytes in, echo bytes and
//! finished lines out. It knows nothing of the UART, so it is tested on the host.
//!
//! Rules (what an operator on a dumb terminal expects):
//! * printable ASCII is appended and echoed;
//! * backspace (0x08) and DEL (0x7f) erase one character (`"\x08 \x08"` on the terminal);
//! * Ctrl-U (0x15) erases the whole line;
//! * CR or LF ends a line; an LF directly after a CR is swallowed, so CR LF (what telnet and
//!   Windows terminals send) counts as one line end;
//! * escape sequences (arrow keys send `ESC [ A`) are swallowed whole; other control bytes
//!   and non-ASCII bytes are ignored;
//! * a line longer than [`MAX_LINE`] is refused as a whole when it ends, with an error.

/// Longest accepted line, in bytes.
pub const MAX_LINE: usize = 256;

/// What a byte produced, apart from echo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// Nothing to do yet.
    None,
    /// A complete line (without its terminator).
    Line(&'a str),
    /// A line ended that was longer than [`MAX_LINE`]; it was discarded.
    TooLong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    /// Not in an escape sequence.
    None,
    /// After ESC.
    Start,
    /// After `ESC [` (CSI): parameter bytes until a final byte 0x40..=0x7e.
    Csi,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct LineEditor {
    buf: [u8; MAX_LINE],
    len: usize,
    overflowed: bool,
    last_was_cr: bool,
    escape: Escape,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    pub const fn new() -> LineEditor {
        LineEditor {
            buf: [0; MAX_LINE],
            len: 0,
            overflowed: false,
            last_was_cr: false,
            escape: Escape::None,
        }
    }

    /// The text typed so far on the current line.
    pub fn pending(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Feeds one input byte; `echo` receives what must be written back to the terminal.
    pub fn feed(&mut self, byte: u8, echo: &mut dyn FnMut(&[u8])) -> LineEvent<'_> {
        let after_cr = core::mem::replace(&mut self.last_was_cr, false);
        match self.escape {
            Escape::Start => {
                self.escape = if byte == b'[' {
                    Escape::Csi
                } else {
                    Escape::None
                };
                return LineEvent::None;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                return LineEvent::None;
            }
            Escape::None => {}
        }
        match byte {
            b'\n' if after_cr => LineEvent::None,
            b'\r' | b'\n' => {
                self.last_was_cr = byte == b'\r';
                echo(b"\r\n");
                let len = core::mem::replace(&mut self.len, 0);
                if core::mem::replace(&mut self.overflowed, false) {
                    LineEvent::TooLong
                } else {
                    LineEvent::Line(core::str::from_utf8(&self.buf[..len]).unwrap_or(""))
                }
            }
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    echo(b"\x08 \x08");
                }
                LineEvent::None
            }
            0x15 => {
                for _ in 0..self.len {
                    echo(b"\x08 \x08");
                }
                self.len = 0;
                self.overflowed = false;
                LineEvent::None
            }
            0x1b => {
                self.escape = Escape::Start;
                LineEvent::None
            }
            0x20..=0x7e => {
                if self.len < MAX_LINE {
                    self.buf[self.len] = byte;
                    self.len += 1;
                    echo(&[byte]);
                } else {
                    self.overflowed = true;
                }
                LineEvent::None
            }
            _ => LineEvent::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    /// Feeds `input`, returning (lines and errors as strings, echo).
    fn run(ed: &mut LineEditor, input: &[u8]) -> (Vec<String>, Vec<u8>) {
        let mut echo = Vec::new();
        let mut out = Vec::new();
        for &b in input {
            match ed.feed(b, &mut |e| echo.extend_from_slice(e)) {
                LineEvent::None => {}
                LineEvent::Line(l) => out.push(l.to_string()),
                LineEvent::TooLong => out.push("<too long>".to_string()),
            }
        }
        (out, echo)
    }

    #[test]
    fn printable_bytes_echo_and_cr_ends_line() {
        let mut ed = LineEditor::new();
        let (lines, echo) = run(&mut ed, b"help\r");
        assert_eq!(lines, ["help"]);
        assert_eq!(echo, b"help\r\n");
    }

    #[test]
    fn crlf_is_one_line_end_but_lflf_is_two() {
        let mut ed = LineEditor::new();
        assert_eq!(run(&mut ed, b"a\r\nb\n\n").0, ["a", "b", ""]);
        assert_eq!(run(&mut ed, b"\r\r").0, ["", ""]);
    }

    #[test]
    fn backspace_del_and_ctrl_u_edit() {
        let mut ed = LineEditor::new();
        let (lines, echo) = run(&mut ed, b"hx\x08el\x7flp\r");
        assert_eq!(lines, ["help"]);
        assert_eq!(echo, b"hx\x08 \x08el\x08 \x08lp\r\n");
        let (lines, _) = run(&mut ed, b"\x08garbage\x15info\n");
        assert_eq!(lines, ["info"]);
    }

    #[test]
    fn control_bytes_and_escape_sequences_are_ignored() {
        let mut ed = LineEditor::new();
        let (lines, echo) = run(&mut ed, b"in\x01\x1b[A\x1b[1;5Cfo\x07\xff\r");
        assert_eq!(lines, ["info"]);
        assert_eq!(echo, b"info\r\n");
    }

    #[test]
    fn overlong_line_is_refused_and_editor_recovers() {
        let mut ed = LineEditor::new();
        let mut input = alloc::vec![b'a'; MAX_LINE + 10];
        input.extend_from_slice(b"\rok\r");
        let (lines, echo) = run(&mut ed, &input);
        assert_eq!(lines, ["<too long>", "ok"]);
        assert_eq!(echo.iter().filter(|&&b| b == b'a').count(), MAX_LINE);
        assert_eq!(ed.pending(), "");
    }
}
