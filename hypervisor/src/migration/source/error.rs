//! Why an outgoing migration failed: the error behind `SourceOutcome::Failed`.
//!
//! `Display` is the operator's message: the source prints
//! `migrate: failed: {error}; the VM keeps running on this host`, and the system tests grep
//! those texts, so they are part of the interface. Every variant means the same thing to
//! the operator: the VM was rolled back and runs here; the variant says what to look at.

use alloc::string::String;
use core::fmt;

use migration_proto::session::{SessionError, UsageError};

use crate::migration::vm_error::VmError;

/// Why the source engine gave up (before the commit: the VM runs on here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The destination answered the connection with a reset (nothing listens there).
    ConnectionRefused,
    /// The connection was not established within `CONNECT_TIMEOUT`.
    ConnectTimeout,
    /// The session failed: the peer's abort, a timeout, a bad frame, a cancel.
    Session(SessionError),
    /// The VM could not do what the migration needs.
    Vm(VmError),
    /// The session refused a call of this engine at `step` (a bug or a protocol limit).
    Refused {
        /// What the engine was doing.
        step: SourceStep,
        /// The session's reason.
        error: UsageError,
    },
    /// `verify sample` found a page changed since it was sent but not reported dirty.
    LostWrite {
        /// Guest-physical address of the page.
        gpa: u64,
        /// The dirty-tracking mode in use (`wp` or `pml`).
        tracking: &'static str,
    },
}

/// The step of the source engine whose session call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceStep {
    /// Queueing a run of pages.
    SendingPages,
    /// Closing a pre-copy round.
    EndingRound,
    /// Sending the round's progress.
    Progress,
    /// Declaring the harvested dirty pages.
    DirtyPages,
    /// Closing the stop-and-copy round.
    EndingLastRound,
    /// Sending the vCPU state.
    VcpuState,
    /// Sending the state of the device with this id.
    DeviceState(String),
    /// Sending `Commit`.
    Commit,
    /// Queueing a run of disk blocks (storage migration).
    DiskBlocks,
}

impl fmt::Display for SourceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceStep::SendingPages => f.write_str("sending pages"),
            SourceStep::EndingRound => f.write_str("ending round"),
            SourceStep::Progress => f.write_str("progress"),
            SourceStep::DirtyPages => f.write_str("dirty pages"),
            SourceStep::EndingLastRound => f.write_str("ending the last round"),
            SourceStep::VcpuState => f.write_str("vCPU state"),
            SourceStep::DeviceState(id) => write!(f, "device state {id}"),
            SourceStep::Commit => f.write_str("commit"),
            SourceStep::DiskBlocks => f.write_str("sending disk blocks"),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::ConnectionRefused => f.write_str("the destination refused the connection"),
            SourceError::ConnectTimeout => f.write_str("could not connect to the destination"),
            SourceError::Session(e) => write!(f, "{e}"),
            SourceError::Vm(e) => write!(f, "{e}"),
            SourceError::Refused { step, error } => write!(f, "{step}: {error}"),
            SourceError::LostWrite { gpa, tracking } => write!(
                f,
                "dirty tracking lost a write: page {gpa:#x} changed since it was sent but was not reported dirty (dirty-tracking {tracking}); try the other tracking mode, or verify full"
            ),
        }
    }
}

impl From<VmError> for SourceError {
    fn from(e: VmError) -> Self {
        SourceError::Vm(e)
    }
}

impl SourceStep {
    /// A `map_err` adapter: the session refused this step's call.
    pub(super) fn refused(self) -> impl FnOnce(UsageError) -> SourceError {
        move |error| SourceError::Refused { step: self, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn messages_are_the_operators() {
        assert_eq!(
            SourceError::Session(SessionError::Cancelled).to_string(),
            "migration cancelled"
        );
        assert_eq!(
            SourceError::Refused {
                step: SourceStep::DeviceState("com1".into()),
                error: UsageError::OutputFull,
            }
            .to_string(),
            "device state com1: output buffer full; send pending bytes first"
        );
        assert_eq!(
            SourceError::LostWrite {
                gpa: 0x9000,
                tracking: "wp"
            }
            .to_string(),
            "dirty tracking lost a write: page 0x9000 changed since it was sent but was not reported dirty (dirty-tracking wp); try the other tracking mode, or verify full"
        );
        assert_eq!(
            SourceError::Vm(VmError::TooManyVcpus(2)).to_string(),
            "2 vCPUs (1 supported)"
        );
    }
}
