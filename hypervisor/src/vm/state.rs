//! The life cycle of a VM, as the console commands `vm start|pause|resume|stop` drive it.
//!
//! ```text
//!  Created --start--> Running --pause--> Paused --resume--> Running
//!     |                 |  \                |
//!     +------stop-------+---+------stop-----+--> Stopped --start--> Running (fresh boot)
//!                        \--(triple fault, entry failure, ...)--> Crashed --start--> Running
//! ```
//! A crashed or stopped VM keeps its exit counters and crash dump until it is started again.

use core::fmt;

/// Where a VM is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    /// Configured and loaded, never run.
    Created,
    /// Scheduled for slices.
    Running,
    /// Not scheduled; state kept (migration pauses VMs this way too).
    Paused,
    /// Stopped by the operator.
    Stopped,
    /// Stopped by the hypervisor because the guest cannot continue.
    Crashed,
}

impl VmState {
    /// The name shown by `vm list`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Crashed => "crashed",
        }
    }
}

/// Operator commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmCommand {
    /// Boot (or reboot from scratch) the VM.
    Start,
    /// Stop scheduling it, keeping its state.
    Pause,
    /// Schedule it again after a pause.
    Resume,
    /// Stop it for good (until the next start).
    Stop,
}

impl VmCommand {
    /// Parse the console word.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "start" => Some(Self::Start),
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            "stop" => Some(Self::Stop),
            _ => None,
        }
    }
}

/// A command that does not apply in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTransition {
    /// The state the VM is in.
    pub from: VmState,
    /// The refused command.
    pub command: VmCommand,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {:?} a VM that is {}",
            self.command,
            self.from.name()
        )
    }
}

/// What the VM layer must do for an accepted command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionEffect {
    /// Reset guest memory and vCPU to a fresh PVH boot, then run.
    Boot,
    /// Only the state changes.
    None,
}

/// Apply `command` in state `from`.
pub fn transition(
    from: VmState,
    command: VmCommand,
) -> Result<(VmState, TransitionEffect), InvalidTransition> {
    use VmCommand::*;
    use VmState::*;
    let next = match (from, command) {
        (Created | Stopped | Crashed, Start) => (Running, TransitionEffect::Boot),
        (Running, Pause) => (Paused, TransitionEffect::None),
        (Paused, Resume) => (Running, TransitionEffect::None),
        (Running | Paused | Created, Stop) => (Stopped, TransitionEffect::None),
        _ => return Err(InvalidTransition { from, command }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn life_cycle() {
        use VmCommand::*;
        use VmState::*;
        assert_eq!(
            transition(Created, Start),
            Ok((Running, TransitionEffect::Boot))
        );
        assert_eq!(
            transition(Running, Pause),
            Ok((Paused, TransitionEffect::None))
        );
        assert_eq!(
            transition(Paused, Resume),
            Ok((Running, TransitionEffect::None))
        );
        assert_eq!(
            transition(Paused, Stop),
            Ok((Stopped, TransitionEffect::None))
        );
        assert_eq!(
            transition(Crashed, Start),
            Ok((Running, TransitionEffect::Boot))
        );
        for (from, cmd) in [
            (Running, Start),
            (Paused, Pause),
            (Running, Resume),
            (Stopped, Stop),
            (Crashed, Resume),
        ] {
            assert_eq!(
                transition(from, cmd),
                Err(InvalidTransition { from, command: cmd })
            );
        }
        assert_eq!(VmCommand::parse("pause"), Some(Pause));
        assert_eq!(VmCommand::parse("reboot"), None);
    }
}
