//! Guest serial output to the hypervisor console: bytes from a VM's UART are collected into
//! lines and each line is handed on with the VM's name, so that several VMs' output stays
//! readable on one console (`[vm1] HB seq=3 ...`). A VM the operator attached to with
//! `vm console` ([`LineOutput::is_attached`]) gets its bytes shown raw instead: a guest's
//! shell prompt, line editing and escape sequences need the bytes as they are.

use alloc::string::String;
use alloc::vec::Vec;

use super::uart16550::SerialSink;

/// Longest line kept before it is flushed without a newline.
pub const MAX_LINE: usize = 240;

/// Receives finished lines.
pub trait LineOutput {
    /// One line of output from VM `vm` (without the newline; not necessarily UTF-8-clean:
    /// invalid bytes are replaced).
    fn line(&mut self, vm: &str, line: &str);

    /// Whether VM `vm`'s output currently goes out raw ([`raw`](Self::raw)).
    fn is_attached(&self, _vm: &str) -> bool {
        false
    }

    /// Output bytes of an attached VM, unchanged.
    fn raw(&mut self, _vm: &str, _bytes: &[u8]) {}
}

/// A [`SerialSink`] that assembles lines and passes them to `O` with the VM name.
pub struct LineSink<O: LineOutput> {
    vm: String,
    buffer: Vec<u8>,
    out: O,
}

impl<O: LineOutput> LineSink<O> {
    /// A sink for VM `vm`.
    pub fn new(vm: &str, out: O) -> Self {
        Self {
            vm: vm.into(),
            buffer: Vec::with_capacity(MAX_LINE),
            out,
        }
    }

    /// Emit a partial line (e.g. when the VM stops).
    pub fn flush(&mut self) {
        if !self.buffer.is_empty() {
            let text = String::from_utf8_lossy(&self.buffer);
            self.out.line(&self.vm, &text);
            self.buffer.clear();
        }
    }

    /// The bytes of the line being assembled (for migration: a VM paused mid-line finishes
    /// that line on the destination, not half on each host).
    pub fn pending(&self) -> &[u8] {
        &self.buffer
    }

    /// Continue a line that began elsewhere (at most [`MAX_LINE`] bytes are kept).
    pub fn preload(&mut self, bytes: &[u8]) {
        self.buffer.clear();
        self.buffer
            .extend_from_slice(&bytes[..bytes.len().min(MAX_LINE)]);
    }

    /// The output.
    pub fn output_mut(&mut self) -> &mut O {
        &mut self.out
    }
}

impl<O: LineOutput> SerialSink for LineSink<O> {
    fn write_byte(&mut self, byte: u8) {
        if self.out.is_attached(&self.vm) {
            // The line begun before the operator attached comes first, as it was.
            if !self.buffer.is_empty() {
                self.out.raw(&self.vm, &self.buffer);
                self.buffer.clear();
            }
            self.out.raw(&self.vm, &[byte]);
            return;
        }
        match byte {
            b'\n' => {
                self.flush();
            }
            b'\r' => {}
            _ => {
                self.buffer.push(byte);
                if self.buffer.len() >= MAX_LINE {
                    self.flush();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[derive(Default)]
    struct Lines(Vec<String>);

    impl LineOutput for Lines {
        fn line(&mut self, vm: &str, line: &str) {
            self.0.push(alloc::format!("[{vm}] {line}"));
        }
    }

    #[test]
    fn lines_are_prefixed_and_crlf_handled() {
        let mut s = LineSink::new("vm1", Lines::default());
        for b in b"HB seq=0\r\nHB seq=1\r\npart" {
            s.write_byte(*b);
        }
        assert_eq!(s.output_mut().0, ["[vm1] HB seq=0", "[vm1] HB seq=1"]);
        s.flush();
        assert_eq!(s.output_mut().0.last().unwrap(), "[vm1] part");
        for _ in 0..MAX_LINE + 3 {
            s.write_byte(b'x');
        }
        assert_eq!(
            s.output_mut().0.last().unwrap(),
            &("[vm1] ".to_string() + &"x".repeat(MAX_LINE))
        );
        s.write_byte(0xff);
        s.write_byte(b'\n');
        assert!(s.output_mut().0.last().unwrap().ends_with("xxx\u{fffd}"));
    }

    /// Prefixed lines, or raw bytes while `attached`.
    #[derive(Default)]
    struct Console {
        attached: bool,
        text: String,
    }

    impl LineOutput for Console {
        fn line(&mut self, vm: &str, line: &str) {
            self.text.push_str(&alloc::format!("[{vm}] {line}\n"));
        }
        fn is_attached(&self, _vm: &str) -> bool {
            self.attached
        }
        fn raw(&mut self, _vm: &str, bytes: &[u8]) {
            self.text.push_str(&String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn an_attached_vm_is_shown_raw_and_lines_resume_after() {
        let mut s = LineSink::new("hb", Console::default());
        for b in b"one\r\ntw" {
            s.write_byte(*b);
        }
        s.output_mut().attached = true;
        for b in b"o\r\n$ \x1b[1m" {
            s.write_byte(*b);
        }
        s.output_mut().attached = false;
        for b in b"three\n" {
            s.write_byte(*b);
        }
        assert_eq!(
            s.output_mut().text,
            "[hb] one\ntwo\r\n$ \x1b[1m[hb] three\n"
        );
    }

    #[test]
    fn a_line_begun_on_one_sink_finishes_on_another() {
        let mut source = LineSink::new("hb", Lines::default());
        for b in b"HB seq=204 tsc=1" {
            source.write_byte(*b);
        }
        let mut destination = LineSink::new("hb", Lines::default());
        destination.preload(source.pending());
        for b in b"23 corrupt=0\n" {
            destination.write_byte(*b);
        }
        assert!(source.output_mut().0.is_empty());
        assert_eq!(
            destination.output_mut().0,
            ["[hb] HB seq=204 tsc=123 corrupt=0"]
        );
        destination.preload(&[b'y'; MAX_LINE + 10]);
        assert_eq!(destination.pending().len(), MAX_LINE);
    }
}
