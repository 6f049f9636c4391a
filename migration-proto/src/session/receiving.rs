//! The destination's rules while receiving: what may arrive, in which order, how often.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::digest::{Digest, constant_time_eq};
use crate::dirty::DirtyBitmap;
use crate::disk_digest::DiskDigestTable;
use crate::message::{DiskDigestMessage, Message, PageDigestMessage, VmIdentity};
use crate::page_digest::PageDigestTable;
use crate::wire::PAGE_SIZE;

use super::{DestinationEvent, DestinationState, SessionError};

/// One manifest disk being received: our block hashes, and the source's digest once it
/// arrived.
pub(super) struct IncomingDisk {
    pub(super) table: DiskDigestTable,
    pub(super) source_digest: Option<DiskDigestMessage>,
}

impl IncomingDisk {
    /// Storage migration's checks at `Commit`: the digest arrived, every block arrived,
    /// every region's accumulator equals the source's.
    fn check(&self) -> Result<(), SessionError> {
        let disk = self.table.disk();
        let Some(theirs) = &self.source_digest else {
            return Err(SessionError::MissingDiskDigest(disk.disk_id));
        };
        if let Some(first_lba) = self.table.first_uncovered() {
            return Err(SessionError::MissingDiskBlocks {
                disk_id: disk.disk_id,
                missing: disk.blocks() - self.table.covered(),
                first_lba,
            });
        }
        let region_bytes = u64::from(disk.region_bytes());
        for (i, (ours, theirs)) in self.table.regions().iter().zip(&theirs.regions).enumerate() {
            if !constant_time_eq(&ours.to_le_bytes(), &theirs.to_le_bytes()) {
                let offset = i as u64 * region_bytes;
                return Err(SessionError::DiskDigestMismatch {
                    disk_id: disk.disk_id,
                    offset,
                    len: region_bytes.min(disk.size_bytes - offset),
                });
            }
        }
        Ok(())
    }
}

/// What the destination knows about the VM being received.
pub(super) struct Incoming {
    /// Storage migration: the manifest's disks (empty without one).
    pub(super) disks: Vec<IncomingDisk>,
    pub(super) identity: VmIdentity,
    /// The CPU the guest was shown, as offered (a snapshot records it).
    pub(super) cpu: crate::cpu::CpuDescriptor,
    pub(super) vcpus_received: Vec<bool>,
    pub(super) devices: Vec<String>,
    /// The source's whole-memory digest, if it sent one.
    pub(super) digest: Option<Digest>,
    /// Version 3: our page hashes, and the source's accumulator once it arrived.
    pub(super) page_digest: Option<PageDigestTable>,
    pub(super) source_page_digest: Option<PageDigestMessage>,
    pub(super) maybe_nonzero: DirtyBitmap,
}

impl Incoming {
    /// Whether a digest arrived: nothing that it would not cover may follow.
    pub(super) fn sealed(&self) -> bool {
        self.digest.is_some()
            || self.source_page_digest.is_some()
            || self.disks.iter().any(|d| d.source_digest.is_some())
    }

    /// Version 3 checks at `Commit`: the source's accumulator arrived, every page arrived at
    /// least once, and our accumulator over our memory equals the source's.
    fn check_page_digest(&self) -> Result<(), SessionError> {
        let Some(ours) = &self.page_digest else {
            return Ok(());
        };
        let Some(theirs) = &self.source_page_digest else {
            return Err(SessionError::MissingDigest);
        };
        if let Some(first) = ours.first_uncovered() {
            return Err(SessionError::MissingPages {
                missing: (ours.pages() - ours.covered()) as u64,
                first_gpa: (first * PAGE_SIZE) as u64,
            });
        }
        if constant_time_eq(&ours.accumulator(), &theirs.accumulator) {
            Ok(())
        } else {
            Err(SessionError::PageDigestMismatch)
        }
    }
}

pub(super) fn on_receiving(
    inc: &mut Incoming,
    msg: Message,
    events: &mut VecDeque<DestinationEvent>,
    state: &mut DestinationState,
) -> Result<(), SessionError> {
    let sealed = inc.sealed();
    match msg {
        Message::RoundEnd(stats) => events.push_back(DestinationEvent::RoundEnd(stats)),
        Message::Progress(p) => events.push_back(DestinationEvent::Progress(p)),
        // A disk digest seals its blocks too; several disk digests may follow each other.
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
        Message::DiskBlocks(b) => {
            let Some(disk) = inc
                .disks
                .iter_mut()
                .find(|d| d.table.disk().disk_id == b.disk_id)
            else {
                return Err(SessionError::UnknownDisk(b.disk_id));
            };
            let desc = disk.table.disk();
            let count = (b.data.len() / b.block_size as usize) as u64;
            if b.block_size != desc.block_size
                || b.first_lba
                    .checked_add(count)
                    .is_none_or(|end| end > desc.blocks())
            {
                return Err(SessionError::DiskBlocksOutOfRange {
                    disk_id: b.disk_id,
                    first_lba: b.first_lba,
                    len: b.data.len() as u64,
                });
            }
            disk.table.record_run(b.first_lba, &b.data);
            events.push_back(DestinationEvent::DiskBlocks(b));
        }
        Message::DiskDigest(d) => {
            if inc.source_page_digest.is_some() || inc.digest.is_some() {
                return Err(SessionError::AfterCommit(
                    crate::wire::MessageType::DiskDigest,
                ));
            }
            let Some(disk) = inc
                .disks
                .iter_mut()
                .find(|x| x.table.disk().disk_id == d.disk_id)
            else {
                return Err(SessionError::UnknownDisk(d.disk_id));
            };
            if disk.source_digest.is_some() {
                return Err(SessionError::Duplicate("disk digest"));
            }
            let desc = disk.table.disk();
            if d.size_bytes != desc.size_bytes || d.region_bytes != desc.region_bytes() {
                return Err(SessionError::DiskDigestShape(d.disk_id));
            }
            disk.source_digest = Some(d);
        }
        Message::PageDigest(d) => {
            if inc.page_digest.is_none() {
                // Only reachable if the version check above let a v3 message into v2.
                return Err(SessionError::UnexpectedMessage {
                    state: "Receiving",
                    msg_type: crate::wire::MessageType::PageDigest,
                });
            }
            if inc.source_page_digest.is_some() {
                return Err(SessionError::Duplicate("page digest"));
            }
            if d.memory_bytes != inc.identity.memory_bytes {
                return Err(SessionError::DigestSizeMismatch {
                    digest_bytes: d.memory_bytes,
                    memory_bytes: inc.identity.memory_bytes,
                });
            }
            inc.source_page_digest = Some(d);
        }
        Message::MemoryDigest(d) => {
            if inc.digest.is_some() {
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
            let has_digest = match inc.page_digest {
                Some(_) => inc.source_page_digest.is_some(),
                None => inc.digest.is_some(),
            };
            if !has_digest {
                return Err(SessionError::MissingDigest);
            }
            let received = inc.vcpus_received.iter().filter(|v| **v).count() as u32;
            if received != inc.identity.vcpu_count {
                return Err(SessionError::MissingVcpuState {
                    received,
                    expected: inc.identity.vcpu_count,
                });
            }
            inc.check_page_digest()?;
            for disk in &inc.disks {
                disk.check()?;
            }
            *state = DestinationState::AwaitingDigestCheck;
            events.push_back(DestinationEvent::CommitRequested {
                expected_digest: inc.digest,
            });
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
