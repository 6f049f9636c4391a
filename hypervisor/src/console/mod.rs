//! The operator's serial console.
//!
//! Portable pieces (host-tested): [`line_editor`] (bytes to lines), [`tokenizer`] (lines to
//! words), [`command`] (the extensible command table), [`shell`] (the three together) and
//! [`log_format`], and [`attach`] (`vm console`: routing console bytes to a VM and back).
//! On bare metal, [`serial_log`] connects the `log` crate to COM1.
//!
//! To add commands from another subsystem: define a `pub static FOO_COMMANDS: &[CommandSpec]`
//! in that subsystem and add one `registry.register(...)` line in `kernel::commands::registry`.

pub mod attach;
pub mod command;
pub mod commands_builtin;
pub mod line_editor;
pub mod log_format;
pub mod shell;
pub mod tokenizer;

#[cfg(target_os = "none")]
pub mod serial_log;

pub use command::{CommandError, CommandRegistry, CommandSpec, Invocation};
pub use shell::{PROMPT, Shell};
