//! Why the destination engine gave up on an incoming migration locally.
//!
//! `Display` is the operator's message twice over: the destination prints
//! `migrate: incoming migration failed: {error}`, and the same text goes to the source as
//! the `Abort` reason, where the source's operator reads it in `migrate: failed: ...`.
//! The system tests grep these texts.

use alloc::string::String;
use core::fmt;

use migration_proto::session::UsageError;

use crate::migration::vm_error::VmError;

/// A local failure of the destination engine (the session's own failures, including the
/// peer's, are `SessionError`s in `DestinationOutcome::Failed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationError {
    /// The offered VM cannot be built here: sent as the rejection of the offer.
    CannotBuild {
        /// The VM's name.
        name: String,
        /// Why the factory refused.
        cause: VmError,
    },
    /// The VM refused a state or its memory could not be read.
    Vm(VmError),
    /// The session refused a call of this engine (a bug or a protocol limit).
    Refused(UsageError),
    /// Pages arrived before the VM was built (the session refuses those as well).
    PagesBeforeVm {
        /// First address of the run.
        first_gpa: u64,
    },
    /// A state or the memory digest was needed before the VM was built.
    BeforeVm(&'static str),
}

impl fmt::Display for DestinationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationError::CannotBuild { name, cause } => {
                write!(f, "cannot build VM '{name}': {cause}")
            }
            DestinationError::Vm(e) => write!(f, "{e}"),
            DestinationError::Refused(e) => write!(f, "{e}"),
            DestinationError::PagesBeforeVm { first_gpa } => {
                write!(f, "pages at {first_gpa:#x} before the VM exists")
            }
            DestinationError::BeforeVm(what) => write!(f, "{what} before the VM exists"),
        }
    }
}

impl From<VmError> for DestinationError {
    fn from(e: VmError) -> Self {
        DestinationError::Vm(e)
    }
}

impl From<UsageError> for DestinationError {
    fn from(e: UsageError) -> Self {
        DestinationError::Refused(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn messages_are_the_operators() {
        let oom = DestinationError::CannotBuild {
            name: "hb".into(),
            cause: VmError::Build("out of host memory".into()),
        };
        assert_eq!(
            oom.to_string(),
            "cannot build VM 'hb': building the VM: out of host memory"
        );
        assert_eq!(
            DestinationError::BeforeVm("vCPU state").to_string(),
            "vCPU state before the VM exists"
        );
        assert_eq!(
            DestinationError::PagesBeforeVm { first_gpa: 0x2000 }.to_string(),
            "pages at 0x2000 before the VM exists"
        );
    }
}
