//! The destination's configuration, states and events.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::time::Duration;

use crate::cpu::CpuDescriptor;
use crate::crypto::{Endpoints, PreSharedKey};
use crate::digest::Digest;
use crate::message::{DeviceState, DiskBlocks, Progress, RoundStats, VcpuState, VmIdentity};
use crate::negotiation::{Capabilities, VersionRange};

use super::deadlines::{DEFAULT_FRAME_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT};
use super::{DEFAULT_IDLE_TIMEOUT, SessionError};

/// Settings of a destination session.
#[derive(Clone, Debug)]
pub struct DestinationConfig {
    /// The pre-shared migration key.
    pub key: PreSharedKey,
    /// Protocol versions accepted (default: N-1 ..= N).
    pub versions: VersionRange,
    /// Capabilities this host allows (default: all implemented).
    pub offered: Capabilities,
    /// Capabilities this host insists on.
    pub required: Capabilities,
    /// This host's CPU as it can present it to guests.
    pub cpu: CpuDescriptor,
    /// Largest VM memory this host accepts.
    pub max_memory_bytes: u64,
    /// Bytes of disk this host can take for the incoming VM (storage migration; 0: none).
    /// A manifest needing more is refused before the `Offer` is accepted.
    pub max_disk_bytes: u64,
    /// How long the source may stay silent while we wait for it.
    pub idle_timeout: Duration,
    /// Budget for the whole handshake, from the connection to a checked offer.
    pub handshake_timeout: Duration,
    /// Longest time one frame may take to arrive once its first byte did.
    pub frame_timeout: Duration,
    /// The connection's endpoints as this host sees them (version 3 binds the handshake
    /// to them: `crypto::Endpoints`).
    pub endpoints: Option<Endpoints>,
}

impl DestinationConfig {
    /// Defaults for everything but the key, the host CPU and the memory limit.
    pub fn new(key: PreSharedKey, cpu: CpuDescriptor, max_memory_bytes: u64) -> Self {
        DestinationConfig {
            key,
            versions: VersionRange::SUPPORTED,
            offered: Capabilities::IMPLEMENTED,
            required: Capabilities::NONE,
            cpu,
            max_memory_bytes,
            max_disk_bytes: 0,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            endpoints: None,
        }
    }
}

/// Where the destination is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationState {
    /// Waiting for `Hello`.
    AwaitingHello,
    /// `HelloReply` sent, waiting for the source's proof.
    AwaitingAuth,
    /// Authenticated, waiting for the `Offer`.
    AwaitingOffer,
    /// Offer checked; the caller decides (`accept_offer` / `reject_offer`).
    AwaitingDecision,
    /// Receiving memory and state.
    Receiving,
    /// `Commit` received and the page digest verified; the caller confirms
    /// (`report_digest` or `confirm_commit`).
    AwaitingDigestCheck,
    /// Commit acknowledged; the VM must stay paused until `Release`.
    AwaitingRelease,
    /// The source released the VM: it may run here.
    Released,
    /// The migration failed; discard the incoming VM.
    Failed,
}

impl DestinationState {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            DestinationState::AwaitingHello => "AwaitingHello",
            DestinationState::AwaitingAuth => "AwaitingAuth",
            DestinationState::AwaitingOffer => "AwaitingOffer",
            DestinationState::AwaitingDecision => "AwaitingDecision",
            DestinationState::Receiving => "Receiving",
            DestinationState::AwaitingDigestCheck => "AwaitingDigestCheck",
            DestinationState::AwaitingRelease => "AwaitingRelease",
            DestinationState::Released => "Released",
            DestinationState::Failed => "Failed",
        }
    }

    pub(super) fn is_terminal(self) -> bool {
        matches!(self, DestinationState::Released | DestinationState::Failed)
    }

    /// States in which we wait for the source (the idle timer runs).
    pub(super) fn waits_for_peer(self) -> bool {
        !matches!(
            self,
            DestinationState::AwaitingDecision | DestinationState::AwaitingDigestCheck
        ) && !self.is_terminal()
    }
}

/// What the destination tells its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationEvent {
    /// A compatible VM is offered: call `accept_offer` or `reject_offer`.
    Offer(VmIdentity),
    /// Write these pages into guest memory at `first_gpa`.
    Pages {
        /// Guest-physical address of the first page.
        first_gpa: u64,
        /// Page contents, decoded.
        data: Vec<u8>,
    },
    /// A pre-copy round ended.
    RoundEnd(RoundStats),
    /// Progress from the source.
    Progress(Progress),
    /// Load this vCPU state.
    VcpuState(Box<VcpuState>),
    /// Restore this device.
    DeviceState(DeviceState),
    /// Write these disk blocks.
    DiskBlocks(DiskBlocks),
    /// Everything arrived (and in version 3 the page digest matched): with a whole-memory
    /// digest, compute ours and call `report_digest`; without one, call `confirm_commit`.
    /// Either way only after the vCPU and device state were loaded and checked.
    CommitRequested {
        /// The source's whole-memory digest, if it sent one (the session compares).
        expected_digest: Option<Digest>,
    },
    /// Commit acknowledged; keep the VM paused until `Released`.
    Committed,
    /// The source released the VM: start it.
    Released,
    /// The migration failed: discard the incoming VM (see `SessionError::InDoubt`).
    Failed(SessionError),
}
