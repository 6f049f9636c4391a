//! The shell: line editor + tokenizer + command registry, driven one input byte at a time by
//! the kernel's main loop (polling, no interrupts). Portable: output goes to any
//! `core::fmt::Write`, so whole sessions are tested on the host.

use alloc::string::String;
use core::fmt::Write;

use super::command::CommandRegistry;
use super::line_editor::{LineEditor, LineEvent, MAX_LINE};
use super::tokenizer::tokenize;

/// The prompt; system tests wait for exactly this string.
pub const PROMPT: &str = "tern> ";

/// See the module documentation.
pub struct Shell {
    editor: LineEditor,
    registry: CommandRegistry,
    /// Whether to print the prompt after a command: not when the command handed the
    /// console to a VM (`vm console`, [`super::attach`]).
    prompt_gate: fn() -> bool,
}

impl Shell {
    pub fn new(registry: CommandRegistry) -> Shell {
        Shell {
            editor: LineEditor::new(),
            registry,
            prompt_gate: || true,
        }
    }

    /// After each command, print the prompt only if `gate` says so.
    pub fn set_prompt_gate(&mut self, gate: fn() -> bool) {
        self.prompt_gate = gate;
    }

    pub fn registry(&self) -> &CommandRegistry {
        &self.registry
    }

    /// Prints the first prompt.
    pub fn start(&self, out: &mut dyn Write) {
        let _ = out.write_str(PROMPT);
    }

    /// Feeds one input byte: echoes it, and when a line is complete runs it and prints the
    /// next prompt. Output errors are ignored (there is nowhere else to report them).
    pub fn feed(&mut self, byte: u8, out: &mut dyn Write) {
        let mut echo = |bytes: &[u8]| {
            // The editor only echoes ASCII.
            let _ = out.write_str(core::str::from_utf8(bytes).unwrap_or(""));
        };
        let line = match self.editor.feed(byte, &mut echo) {
            LineEvent::None => return,
            LineEvent::TooLong => {
                let _ = writeln!(out, "error: line too long (at most {MAX_LINE} characters)");
                let _ = out.write_str(PROMPT);
                return;
            }
            LineEvent::Line(l) => String::from(l),
        };
        self.run_line(&line, out);
        if (self.prompt_gate)() {
            let _ = out.write_str(PROMPT);
        }
    }

    /// Runs one command line; errors become one `error: ...` line.
    pub fn run_line(&self, line: &str, out: &mut dyn Write) {
        let words = match tokenize(line) {
            Ok(words) => words,
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
                return;
            }
        };
        if words.is_empty() {
            return;
        }
        if let Err(e) = self.registry.dispatch(&words, out) {
            let _ = writeln!(out, "error: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::command::{CommandError, CommandSpec, Invocation};
    use crate::console::commands_builtin::HELP_COMMANDS;

    fn hello(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
        writeln!(
            inv.out,
            "hello {}",
            inv.args.first().map(String::as_str).unwrap_or("world")
        )?;
        Ok(())
    }

    static TEST: &[CommandSpec] = &[CommandSpec {
        name: "hello",
        usage: "[NAME]",
        help: "greet",
        min_args: 0,
        max_args: 1,
        handler: hello,
    }];

    fn session(input: &[u8]) -> String {
        let mut reg = CommandRegistry::new();
        reg.register(HELP_COMMANDS);
        reg.register(TEST);
        let mut shell = Shell::new(reg);
        let mut out = String::new();
        shell.start(&mut out);
        for &b in input {
            shell.feed(b, &mut out);
        }
        out
    }

    #[test]
    fn a_session_echoes_runs_and_prompts() {
        let out = session(b"hello\r\nhell\x7flo \"big world\"\r");
        assert_eq!(
            out,
            "tern> hello\r\nhello world\ntern> hell\x08 \x08lo \"big world\"\r\nhello big world\ntern> "
        );
    }

    #[test]
    fn errors_are_one_line_and_the_prompt_returns() {
        let out = session(b"xyz\rhello a b\rhello \"x\r\r");
        let expected = "tern> xyz\r\nerror: unknown command 'xyz' (try 'help')\n\
                        tern> hello a b\r\nerror: usage: hello [NAME]\n\
                        tern> hello \"x\r\nerror: unterminated quote\n\
                        tern> \r\ntern> ";
        assert_eq!(out, expected);
    }

    #[test]
    fn a_closed_prompt_gate_leaves_the_console_to_the_command() {
        let mut reg = CommandRegistry::new();
        reg.register(TEST);
        let mut shell = Shell::new(reg);
        shell.set_prompt_gate(|| false);
        let mut out = String::new();
        for &b in b"hello\r" {
            shell.feed(b, &mut out);
        }
        assert_eq!(out, "hello\r\nhello world\n");
    }

    #[test]
    fn help_lists_registered_commands() {
        let out = session(b"help\r");
        assert!(out.contains("  help "), "{out}");
        assert!(out.contains("  hello [NAME]  greet"), "{out}");
    }
}
