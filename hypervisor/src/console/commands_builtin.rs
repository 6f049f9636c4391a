//! Commands that need nothing but the console itself (`help`). The kernel's own commands
//! (`info`, `reboot`, `shutdown`) live in `kernel::commands` because they touch hardware.

use super::command::{CommandError, CommandSpec, Invocation, write_help};

fn help(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    writeln!(inv.out, "commands:")?;
    write_help(inv.registry, inv.out)?;
    Ok(())
}

/// `help`.
pub static HELP_COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "help",
    usage: "",
    help: "list all commands",
    min_args: 0,
    max_args: 0,
    handler: help,
}];
