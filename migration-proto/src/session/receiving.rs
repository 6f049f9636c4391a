//! The destination's rules while receiving: what may arrive, in which order, how often.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::digest::Digest;
use crate::dirty::DirtyBitmap;
use crate::message::{Message, VmIdentity};

use super::{DestinationEvent, DestinationState, SessionError};

/// What the destination knows about the VM being received.
pub(super) struct Incoming {
    pub(super) identity: VmIdentity,
    pub(super) vcpus_received: Vec<bool>,
    pub(super) devices: Vec<String>,
    pub(super) digest: Option<Digest>,
    pub(super) maybe_nonzero: DirtyBitmap,
}

pub(super) fn on_receiving(
    inc: &mut Incoming,
    msg: Message,
    events: &mut VecDeque<DestinationEvent>,
    state: &mut DestinationState,
) -> Result<(), SessionError> {
    let sealed = inc.digest.is_some();
    match msg {
        Message::RoundEnd(stats) => events.push_back(DestinationEvent::RoundEnd(stats)),
        Message::Progress(p) => events.push_back(DestinationEvent::Progress(p)),
        Message::VcpuState(_) | Message::DeviceState(_) | Message::DiskBlocks(_) if sealed => {
            return Err(SessionError::AfterCommit(msg.msg_type()));
        }
        Message::VcpuState(s) => {
            let count = inc.identity.vcpu_count;
            let Some(seen) = inc.vcpus_received.get_mut(s.vcpu_index as usize) else {
                return Err(SessionError::VcpuOutOfRange {
                    index: s.vcpu_index,
                    count,
                });
            };
            if *seen {
                return Err(SessionError::Duplicate("vCPU state"));
            }
            *seen = true;
            events.push_back(DestinationEvent::VcpuState(s));
        }
        Message::DeviceState(d) => {
            if inc.devices.contains(&d.id) {
                return Err(SessionError::Duplicate("device state"));
            }
            inc.devices.push(d.id.clone());
            events.push_back(DestinationEvent::DeviceState(d));
        }
        Message::DiskBlocks(b) => events.push_back(DestinationEvent::DiskBlocks(b)),
        Message::MemoryDigest(d) => {
            if sealed {
                return Err(SessionError::Duplicate("memory digest"));
            }
            if d.memory_bytes != inc.identity.memory_bytes {
                return Err(SessionError::DigestSizeMismatch {
                    digest_bytes: d.memory_bytes,
                    memory_bytes: inc.identity.memory_bytes,
                });
            }
            inc.digest = Some(d.digest);
        }
        Message::Commit => {
            let Some(expected_digest) = inc.digest else {
                return Err(SessionError::MissingDigest);
            };
            let received = inc.vcpus_received.iter().filter(|v| **v).count() as u32;
            if received != inc.identity.vcpu_count {
                return Err(SessionError::MissingVcpuState {
                    received,
                    expected: inc.identity.vcpu_count,
                });
            }
            *state = DestinationState::AwaitingDigestCheck;
            events.push_back(DestinationEvent::CommitRequested { expected_digest });
        }
        other => {
            return Err(SessionError::UnexpectedMessage {
                state: "Receiving",
                msg_type: other.msg_type(),
            });
        }
    }
    Ok(())
}
