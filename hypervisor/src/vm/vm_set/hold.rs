//! Holds: a VM that migration owns for the moment, which the operator's `vm start|pause|
//! resume|stop` must not touch (issue 13, items 0 and 4e).
//!
//! - [`VmHold::MigratingOut`]: the source engine pauses, resumes and finally releases the
//!   VM itself; an operator `vm resume` during stop-and-copy would let the guest change
//!   memory the destination believes final, and `vm stop` would lose the VM mid-flight.
//! - [`VmHold::InDoubt`]: the destination acknowledged a commit but never heard the release
//!   (`migration::in_doubt`): the VM must stay paused until `migrate_resolve`.

use alloc::string::String;

use super::{ManagedVm, VmSet};

/// Why a VM is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmHold {
    /// An outgoing migration runs.
    MigratingOut,
    /// An incoming commit was acknowledged but not released.
    InDoubt,
    /// An incoming VM whose vCPU state could not be loaded after the commit: its memory is
    /// intact but its vCPU is in its reset state, so running it would corrupt the guest.
    Unrunnable,
}

impl VmHold {
    /// The state shown by `vm list` instead of the life-cycle state.
    pub fn name(self) -> &'static str {
        match self {
            Self::MigratingOut => "migrating",
            Self::InDoubt => "in-doubt",
            Self::Unrunnable => "unrunnable",
        }
    }

    /// Why an operator command is refused.
    pub fn refusal(self) -> &'static str {
        match self {
            Self::MigratingOut => {
                "being migrated out: wait for the migration to end or use migrate_cancel"
            }
            Self::InDoubt => {
                "in doubt after an interrupted migration: resolve it with migrate_resolve VM run|discard"
            }
            Self::Unrunnable => {
                "unrunnable: its vCPU state could not be loaded after the commit (memory intact, \
                 vCPU in reset state); migrate_resolve VM discard removes it"
            }
        }
    }
}

impl<V: ManagedVm> VmSet<V> {
    /// Holds the VM named `name`; false if there is none.
    pub fn hold(&mut self, name: &str, hold: VmHold) -> bool {
        if self.find(name).is_none() {
            return false;
        }
        self.release_hold(name);
        self.holds.push((String::from(name), hold));
        true
    }

    /// Lifts any hold on `name`.
    pub fn release_hold(&mut self, name: &str) {
        self.holds.retain(|(n, _)| n != name);
    }

    /// The hold on `name`, if any.
    pub fn hold_of(&self, name: &str) -> Option<VmHold> {
        self.holds
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, hold)| *hold)
    }
}
