//! The source's configuration, states and events.

use core::time::Duration;

use crate::cpu::CpuDescriptor;
use crate::crypto::{Endpoints, PreSharedKey};
use alloc::vec::Vec;

use crate::message::{DiskDescriptor, VmIdentity};
use crate::negotiation::{Capabilities, VersionRange};

use super::{DEFAULT_IDLE_TIMEOUT, DEFAULT_OUTPUT_LIMIT, SessionError};

/// Settings of a source session.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// The pre-shared migration key.
    pub key: PreSharedKey,
    /// Protocol versions to offer (default: N-1 ..= N).
    pub versions: VersionRange,
    /// Capabilities to offer (default: all implemented).
    pub offered: Capabilities,
    /// Capabilities without which the migration must not run (e.g. `ENCRYPTION` by policy).
    pub required: Capabilities,
    /// The VM being migrated.
    pub identity: VmIdentity,
    /// The CPU the guest was shown.
    pub cpu: CpuDescriptor,
    /// How long to wait for a reply from the destination.
    pub idle_timeout: Duration,
    /// Send a `Progress` keep-alive when nothing was sent for this long.
    pub keepalive_interval: Duration,
    /// Bulk sends are refused while more than this many bytes wait in the output buffer.
    pub output_limit: usize,
    /// Memory for the copies of sent pages that DELTA_PAGES encodes against (0 = no
    /// deltas). Used only if the destination agrees to DELTA_PAGES (version 3).
    pub delta_cache_bytes: usize,
    /// The connection's endpoints as this host sees them (version 3 binds the handshake
    /// to them: `crypto::Endpoints`).
    pub endpoints: Option<Endpoints>,
    /// Disks that migrate with the VM (storage migration): non-empty makes DISK_MIGRATION
    /// required and sends them as the `DiskManifest` before the `Offer`.
    pub disks: Vec<DiskDescriptor>,
}

impl SourceConfig {
    /// Defaults for everything but the key and the VM.
    pub fn new(key: PreSharedKey, identity: VmIdentity, cpu: CpuDescriptor) -> Self {
        SourceConfig {
            key,
            versions: VersionRange::SUPPORTED,
            offered: Capabilities::IMPLEMENTED,
            required: Capabilities::NONE,
            identity,
            cpu,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keepalive_interval: DEFAULT_IDLE_TIMEOUT / 4,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            delta_cache_bytes: 0,
            endpoints: None,
            disks: Vec::new(),
        }
    }
}

/// Where the source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// `Hello` sent.
    AwaitingHelloReply,
    /// Authenticated, `Offer` sent.
    AwaitingAccept,
    /// Pre-copy / stop-and-copy: pages and state may be sent.
    Transferring,
    /// `MemoryDigest` and `Commit` sent.
    AwaitingCommitAck,
    /// The destination owns the VM; the source may destroy its copy.
    Completed,
    /// The migration failed; the source keeps and resumes the VM.
    Failed,
}

impl SourceState {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            SourceState::AwaitingHelloReply => "AwaitingHelloReply",
            SourceState::AwaitingAccept => "AwaitingAccept",
            SourceState::Transferring => "Transferring",
            SourceState::AwaitingCommitAck => "AwaitingCommitAck",
            SourceState::Completed => "Completed",
            SourceState::Failed => "Failed",
        }
    }

    pub(super) fn is_terminal(self) -> bool {
        matches!(self, SourceState::Completed | SourceState::Failed)
    }
}

/// What the source tells its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceEvent {
    /// The destination accepted the VM: start sending pages.
    Accepted {
        /// Negotiated protocol version.
        version: u16,
        /// Negotiated capabilities.
        capabilities: Capabilities,
    },
    /// The destination acknowledged the commit: the VM is the destination's now.
    Completed,
    /// The migration failed: resume the VM here.
    Failed(SessionError),
}
