//! The `vm` console commands, parsed: `vm list`, `vm info NAME`, `vm start|pause|resume|stop
//! NAME`. Parsing is separate from execution so that every malformed line gets a one-line
//! error and the grammar is tested on the host; the console module executes the result
//! against the VMs.

use core::fmt;

use super::state::VmCommand;

/// A parsed `vm` command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmConsoleCommand<'a> {
    /// `vm list`: one line per VM (name, state, RAM, exits).
    List,
    /// `vm info NAME`: state, crash reason, exit counters by reason.
    Info(&'a str),
    /// `vm start|pause|resume|stop NAME`.
    Control(VmCommand, &'a str),
}

/// Why a `vm` line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmConsoleError<'a> {
    /// `vm` alone.
    MissingSubcommand,
    /// An unknown word after `vm`.
    UnknownSubcommand(&'a str),
    /// The subcommand needs a VM name.
    MissingName(&'static str),
    /// Words after the last expected one.
    TrailingArguments(&'a str),
}

impl fmt::Display for VmConsoleError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const USAGE: &str = "usage: vm list | vm info NAME | vm start|pause|resume|stop NAME";
        match self {
            Self::MissingSubcommand => write!(f, "{USAGE}"),
            Self::UnknownSubcommand(w) => write!(f, "vm: unknown subcommand '{w}'; {USAGE}"),
            Self::MissingName(sub) => write!(f, "vm {sub}: missing VM name"),
            Self::TrailingArguments(w) => write!(f, "vm: unexpected argument '{w}'"),
        }
    }
}

/// Parse the arguments after the word `vm` (e.g. `"start hb1"`).
pub fn parse_vm_command(args: &str) -> Result<VmConsoleCommand<'_>, VmConsoleError<'_>> {
    let mut words = args.split_ascii_whitespace();
    let sub = words.next().ok_or(VmConsoleError::MissingSubcommand)?;
    let command = match sub {
        "list" => VmConsoleCommand::List,
        "info" => VmConsoleCommand::Info(words.next().ok_or(VmConsoleError::MissingName("info"))?),
        other => {
            let control =
                VmCommand::parse(other).ok_or(VmConsoleError::UnknownSubcommand(other))?;
            let name_for = match control {
                VmCommand::Start => "start",
                VmCommand::Pause => "pause",
                VmCommand::Resume => "resume",
                VmCommand::Stop => "stop",
            };
            VmConsoleCommand::Control(
                control,
                words.next().ok_or(VmConsoleError::MissingName(name_for))?,
            )
        }
    };
    match words.next() {
        Some(extra) => Err(VmConsoleError::TrailingArguments(extra)),
        None => Ok(command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(parse_vm_command("list"), Ok(VmConsoleCommand::List));
        assert_eq!(
            parse_vm_command("  info   hb1 "),
            Ok(VmConsoleCommand::Info("hb1"))
        );
        assert_eq!(
            parse_vm_command("pause hb1"),
            Ok(VmConsoleCommand::Control(VmCommand::Pause, "hb1"))
        );
        assert_eq!(parse_vm_command(""), Err(VmConsoleError::MissingSubcommand));
        assert_eq!(
            parse_vm_command("reboot x"),
            Err(VmConsoleError::UnknownSubcommand("reboot"))
        );
        assert_eq!(
            parse_vm_command("stop"),
            Err(VmConsoleError::MissingName("stop"))
        );
        assert_eq!(
            parse_vm_command("list all"),
            Err(VmConsoleError::TrailingArguments("all"))
        );
        assert_eq!(
            alloc::string::ToString::to_string(&VmConsoleError::MissingName("info")),
            "vm info: missing VM name"
        );
    }
}
