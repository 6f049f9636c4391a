//! In-doubt VMs: what happens when the connection dies between the destination's
//! `CommitAck` and the source's `Release`.
//!
//! At that instant exactly one host may run the VM, and only the source knows which: it
//! completed (and released its copy) if and only if it received the `CommitAck`. The
//! destination cannot tell a lost `Release` (the source destroyed its copy: the destination
//! must run the VM) from a lost `CommitAck` (the source resumed its copy: the destination
//! must discard). So the destination keeps the VM **paused and visible** (`vm list` shows
//! `in-doubt`, `info migrate` explains) and the operator resolves it with
//! `migrate_resolve VM run|discard` after reading the source's final line, which this
//! module words so that it says which one applies.
//!
//! Automatic resolution (the destination reconnects and asks the source, which remembers
//! finished sessions) needs a protocol message; it is proposed in
//! `docs/proposals/in-doubt-resolution.md` and not built yet.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// The operator's decision about an in-doubt VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The source completed (its last line says "committed"): run the VM here.
    Run,
    /// The source kept the VM (its last line says it stays there): free this copy.
    Discard,
}

/// A malformed `migrate_resolve` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveUsage(pub String);

impl fmt::Display for ResolveUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; usage: migrate_resolve VM run|discard", self.0)
    }
}

/// Parses the arguments of `migrate_resolve VM run|discard`.
pub fn parse_resolve<'a>(args: &[&'a str]) -> Result<(&'a str, Resolution), ResolveUsage> {
    let [vm, decision] = args else {
        return Err(ResolveUsage(format!(
            "expected 2 arguments, got {}",
            args.len()
        )));
    };
    let resolution = match *decision {
        "run" => Resolution::Run,
        "discard" => Resolution::Discard,
        other => return Err(ResolveUsage(format!("unknown decision '{other}'"))),
    };
    Ok((vm, resolution))
}

/// The source's last line about `vm` once its migration ended: `completed` is true iff the
/// source received the destination's `CommitAck` (then its copy is released).
pub fn source_verdict(vm: &str, completed: bool) -> String {
    if completed {
        format!(
            "migrate: VM '{vm}' committed (CommitAck received): it belongs to the destination \
             and was released on this host; if the destination lists it in-doubt, run \
             'migrate_resolve {vm} run' there"
        )
    } else {
        format!(
            "migrate: VM '{vm}' stays on this host (no CommitAck received); if the destination \
             lists it in-doubt, run 'migrate_resolve {vm} discard' there"
        )
    }
}

/// The destination's line when it keeps an in-doubt VM.
pub fn destination_kept(vm: &str, why: &str) -> String {
    format!(
        "migrate: VM '{vm}' is IN DOUBT ({why}): kept paused; the source's last line says \
         which host owns it; then 'migrate_resolve {vm} run' or 'migrate_resolve {vm} discard'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_arguments() {
        assert_eq!(parse_resolve(&["hb", "run"]), Ok(("hb", Resolution::Run)));
        assert_eq!(
            parse_resolve(&["hb", "discard"]),
            Ok(("hb", Resolution::Discard))
        );
        assert!(parse_resolve(&["hb", "keep"]).is_err());
        assert!(parse_resolve(&["hb"]).is_err());
        assert!(parse_resolve(&["hb", "run", "now"]).is_err());
    }

    #[test]
    fn the_source_verdict_names_the_resolution_that_matches_it() {
        assert!(source_verdict("hb", true).contains("migrate_resolve hb run"));
        assert!(source_verdict("hb", false).contains("migrate_resolve hb discard"));
        assert!(source_verdict("hb", false).contains("stays on this host"));
    }
}
