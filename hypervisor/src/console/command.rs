//! The command table: what a console command is, and how a line finds its handler.
//!
//! Commands are plain data ([`CommandSpec`]): a name (one or two words, e.g. `info` and
//! `info migrate`), a usage string, one line of help, the accepted argument count and a
//! handler function. Each subsystem owns a `&'static [CommandSpec]` table in its own module and
//! the kernel registers it with one [`CommandRegistry::register`] call, so adding commands
//! never means editing a central `match`.
//!
//! Lookup takes the longest name whose words are the line's leading words, so `info migrate`
//! (if registered) wins over `info` with an argument. Handlers reach their subsystem's state
//! through that subsystem's own globals; they get the output sink, the arguments and the
//! registry (for `help`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// A command handler. Errors are printed by the shell as one `error: ...` line.
pub type Handler = fn(&mut Invocation<'_>) -> Result<(), CommandError>;

/// One console command.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// One or two words, lower case (`"help"`, `"vm start"`).
    pub name: &'static str,
    /// Arguments as shown in help, e.g. `"NAME"` or `"[-c] HOST:PORT"`; empty if none.
    pub usage: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Fewest arguments accepted (words after the name).
    pub min_args: usize,
    /// Most arguments accepted.
    pub max_args: usize,
    pub handler: Handler,
}

/// What a handler gets.
pub struct Invocation<'a> {
    /// Where the command's output goes (the serial console).
    pub out: &'a mut dyn Write,
    /// The words after the command name.
    pub args: &'a [String],
    /// All registered commands (for `help`).
    pub registry: &'a CommandRegistry,
}

/// Why a command failed; the shell prints `error: <Display>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// No command has this name (the first word).
    Unknown(String),
    /// The argument count is outside the command's range.
    Arity {
        name: &'static str,
        usage: &'static str,
    },
    /// An argument is malformed; the text says which and why.
    BadArgument(String),
    /// The command ran and failed; the text says why.
    Failed(String),
}

impl core::fmt::Display for CommandError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CommandError::Unknown(name) => write!(f, "unknown command '{name}' (try 'help')"),
            CommandError::Arity { name, usage: "" } => {
                write!(f, "'{name}' takes no arguments")
            }
            CommandError::Arity { name, usage } => write!(f, "usage: {name} {usage}"),
            CommandError::BadArgument(msg) | CommandError::Failed(msg) => f.write_str(msg),
        }
    }
}

impl From<core::fmt::Error> for CommandError {
    fn from(_: core::fmt::Error) -> Self {
        CommandError::Failed(String::from("console output failed"))
    }
}

/// The set of command tables the shell knows.
#[derive(Default)]
pub struct CommandRegistry {
    tables: Vec<&'static [CommandSpec]>,
}

impl CommandRegistry {
    pub const fn new() -> CommandRegistry {
        CommandRegistry { tables: Vec::new() }
    }

    /// Adds a subsystem's command table.
    pub fn register(&mut self, table: &'static [CommandSpec]) {
        self.tables.push(table);
    }

    /// All commands, in registration order.
    pub fn commands(&self) -> impl Iterator<Item = &'static CommandSpec> + '_ {
        self.tables.iter().flat_map(|t| t.iter())
    }

    /// Finds the command for `words` (longest matching name) and checks the argument count.
    /// Returns the command and the index of its first argument.
    pub fn lookup(&self, words: &[String]) -> Result<(&'static CommandSpec, usize), CommandError> {
        let first = words.first().map(String::as_str).unwrap_or("");
        let mut best: Option<(&'static CommandSpec, usize)> = None;
        for spec in self.commands() {
            let name_words = spec.name.split(' ').count();
            let matches =
                words.len() >= name_words && spec.name.split(' ').zip(words).all(|(n, w)| n == w);
            if matches && best.is_none_or(|(_, n)| name_words > n) {
                best = Some((spec, name_words));
            }
        }
        let (spec, consumed) = best.ok_or_else(|| CommandError::Unknown(String::from(first)))?;
        let argc = words.len() - consumed;
        if argc < spec.min_args || argc > spec.max_args {
            return Err(CommandError::Arity {
                name: spec.name,
                usage: spec.usage,
            });
        }
        Ok((spec, consumed))
    }

    /// Runs the command that `words` names (must be non-empty).
    pub fn dispatch(&self, words: &[String], out: &mut dyn Write) -> Result<(), CommandError> {
        let (spec, first_arg) = self.lookup(words)?;
        let mut inv = Invocation {
            out,
            args: &words[first_arg..],
            registry: self,
        };
        (spec.handler)(&mut inv)
    }
}

/// Writes the help listing: one line per command, usage padded into a column.
pub fn write_help(registry: &CommandRegistry, out: &mut dyn Write) -> core::fmt::Result {
    let width = registry
        .commands()
        .map(|c| {
            c.name.len()
                + if c.usage.is_empty() {
                    0
                } else {
                    c.usage.len() + 1
                }
        })
        .max()
        .unwrap_or(0);
    for c in registry.commands() {
        let mut synopsis = String::from(c.name);
        if !c.usage.is_empty() {
            synopsis.push(' ');
            synopsis.push_str(c.usage);
        }
        writeln!(out, "  {synopsis:<width$}  {}", c.help)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::tokenizer::tokenize;

    fn echo_args(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
        write!(inv.out, "{}", inv.args.join("|"))?;
        Ok(())
    }

    fn info_migrate(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
        write!(inv.out, "migrate")?;
        Ok(())
    }

    fn failing(_: &mut Invocation<'_>) -> Result<(), CommandError> {
        Err(CommandError::BadArgument(String::from(
            "port must be a number",
        )))
    }

    static BASE: &[CommandSpec] = &[
        CommandSpec {
            name: "info",
            usage: "[TOPIC]",
            help: "show things",
            min_args: 0,
            max_args: 1,
            handler: echo_args,
        },
        CommandSpec {
            name: "echo",
            usage: "WORD...",
            help: "echo words",
            min_args: 1,
            max_args: 8,
            handler: echo_args,
        },
        CommandSpec {
            name: "quiet",
            usage: "",
            help: "no args",
            min_args: 0,
            max_args: 0,
            handler: echo_args,
        },
        CommandSpec {
            name: "bad",
            usage: "",
            help: "fails",
            min_args: 0,
            max_args: 0,
            handler: failing,
        },
    ];
    static EXTRA: &[CommandSpec] = &[CommandSpec {
        name: "info migrate",
        usage: "",
        help: "migration status",
        min_args: 0,
        max_args: 0,
        handler: info_migrate,
    }];

    fn run(reg: &CommandRegistry, line: &str) -> Result<String, String> {
        let words = tokenize(line).map_err(|e| e.to_string())?;
        let mut out = String::new();
        reg.dispatch(&words, &mut out)
            .map_err(|e| alloc::format!("error: {e}"))?;
        Ok(out)
    }

    use alloc::string::ToString;

    #[test]
    fn dispatches_with_arguments() {
        let mut reg = CommandRegistry::new();
        reg.register(BASE);
        assert_eq!(run(&reg, r#"echo a "b c""#), Ok(String::from("a|b c")));
        assert_eq!(run(&reg, "info"), Ok(String::new()));
    }

    #[test]
    fn longest_name_wins_and_tables_extend() {
        let mut reg = CommandRegistry::new();
        reg.register(BASE);
        assert_eq!(run(&reg, "info migrate"), Ok(String::from("migrate")));
        reg.register(EXTRA);
        assert_eq!(run(&reg, "info migrate"), Ok(String::from("migrate")));
        assert_eq!(run(&reg, "info vm"), Ok(String::from("vm")));
    }

    #[test]
    fn errors_are_single_lines() {
        let mut reg = CommandRegistry::new();
        reg.register(BASE);
        assert_eq!(
            run(&reg, "xyz 1 2"),
            Err(String::from("error: unknown command 'xyz' (try 'help')"))
        );
        assert_eq!(
            run(&reg, "echo"),
            Err(String::from("error: usage: echo WORD..."))
        );
        assert_eq!(
            run(&reg, "quiet x"),
            Err(String::from("error: 'quiet' takes no arguments"))
        );
        assert_eq!(
            run(&reg, "bad"),
            Err(String::from("error: port must be a number"))
        );
        for line in ["xyz", "echo", "quiet x", "bad"] {
            assert!(!run(&reg, line).unwrap_err().contains('\n'));
        }
    }

    #[test]
    fn help_lists_every_command_with_usage() {
        let mut reg = CommandRegistry::new();
        reg.register(BASE);
        reg.register(EXTRA);
        let mut out = String::new();
        write_help(&reg, &mut out).unwrap();
        assert_eq!(out.lines().count(), 5);
        assert!(out.contains("  echo WORD...  echo words"));
        assert!(out.contains("  info migrate  migration status"));
    }
}
