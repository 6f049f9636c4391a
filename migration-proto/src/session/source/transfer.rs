//! The source's transfer API: what the caller sends between `Accepted` and `commit`.

use alloc::boxed::Box;

use crate::digest::Digest;
use crate::message::{
    DeviceState, DiskBlocks, MemoryDigestMessage, Message, Progress, RoundStats, VcpuState,
};
use crate::negotiation::Capabilities;
use crate::page_codec::PageCounts;
use crate::wire::MessageType;

use super::{RoundTally, SourceSession};
use crate::session::{Instant, SourceState, UsageError};

impl SourceSession {
    fn require(&self, operation: &'static str, state: SourceState) -> Result<(), UsageError> {
        if self.state == state {
            Ok(())
        } else {
            Err(UsageError::WrongState {
                operation,
                state: self.state.name(),
            })
        }
    }

    fn require_room(&self) -> Result<(), UsageError> {
        if self.link.buffered_output() >= self.config.output_limit {
            Err(UsageError::OutputFull)
        } else {
            Ok(())
        }
    }

    /// Sends a run of consecutive pages (at most `MAX_PAGES_PER_FRAME`) read from guest
    /// memory at `first_gpa`. Encoded straight into the output buffer.
    pub fn send_pages(
        &mut self,
        first_gpa: u64,
        data: &[u8],
        now: Instant,
    ) -> Result<PageCounts, UsageError> {
        self.require("send pages", SourceState::Transferring)?;
        self.require_room()?;
        let end = first_gpa.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > self.config.identity.memory_bytes) {
            return Err(UsageError::OutOfRange);
        }
        let (counts, payload) = self
            .link
            .send_pages(first_gpa, data, now)
            .map_err(UsageError::PageRun)?;
        self.tally.counts.add(counts);
        self.tally.payload_bytes += payload as u64;
        Ok(counts)
    }

    /// Ends the current pre-copy round, sending its statistics; returns them.
    pub fn end_round(
        &mut self,
        dirty_pages_remaining: u64,
        now: Instant,
    ) -> Result<RoundStats, UsageError> {
        self.require("end a round", SourceState::Transferring)?;
        let t = &self.tally;
        let stats = RoundStats {
            round: t.round,
            pages_sent: t.counts.total(),
            zero_pages: t.counts.zero,
            lz4_pages: t.counts.lz4,
            raw_pages: t.counts.raw,
            payload_bytes: t.payload_bytes,
            dirty_pages_remaining,
            duration_us: now.saturating_since(t.started).as_micros() as u64,
        };
        self.send(&Message::RoundEnd(stats), now);
        self.tally = RoundTally {
            round: stats.round + 1,
            started: now,
            ..RoundTally::default()
        };
        Ok(stats)
    }

    /// Sends a progress report (also remembered as the keep-alive content).
    pub fn send_progress(&mut self, progress: Progress, now: Instant) -> Result<(), UsageError> {
        self.require("send progress", SourceState::Transferring)?;
        self.progress = progress;
        self.send(&Message::Progress(progress), now);
        Ok(())
    }

    /// Sends the state of one (stopped) vCPU.
    pub fn send_vcpu_state(&mut self, state: &VcpuState, now: Instant) -> Result<(), UsageError> {
        self.require("send vCPU state", SourceState::Transferring)?;
        state.validate().map_err(UsageError::Invalid)?;
        let Some(sent) = self.vcpus_sent.get_mut(state.vcpu_index as usize) else {
            return Err(UsageError::OutOfRange);
        };
        if *sent {
            return Err(UsageError::AlreadySent("vCPU state"));
        }
        *sent = true;
        self.send(&Message::VcpuState(Box::new(state.clone())), now);
        Ok(())
    }

    /// Sends the state of one device model.
    pub fn send_device_state(
        &mut self,
        state: &DeviceState,
        now: Instant,
    ) -> Result<(), UsageError> {
        self.require("send device state", SourceState::Transferring)?;
        state.validate().map_err(UsageError::Invalid)?;
        self.send(&Message::DeviceState(state.clone()), now);
        Ok(())
    }

    /// Sends a run of disk blocks (needs protocol version 2 and `DISK_BLOCKS`).
    pub fn send_disk_blocks(
        &mut self,
        blocks: &DiskBlocks,
        now: Instant,
    ) -> Result<(), UsageError> {
        self.require("send disk blocks", SourceState::Transferring)?;
        if self.link.version < MessageType::DiskBlocks.since_version() {
            return Err(UsageError::NotInVersion(MessageType::DiskBlocks));
        }
        if !self.link.caps.contains(Capabilities::DISK_BLOCKS) {
            return Err(UsageError::NotNegotiated(Capabilities::DISK_BLOCKS));
        }
        self.require_room()?;
        blocks.validate().map_err(UsageError::Invalid)?;
        self.send(&Message::DiskBlocks(blocks.clone()), now);
        Ok(())
    }

    /// Ends the transfer: sends the digest of the (stopped) VM's memory and asks the
    /// destination to verify and commit. The source still owns the VM until `Completed`.
    pub fn commit(&mut self, memory_digest: Digest, now: Instant) -> Result<(), UsageError> {
        self.require("commit", SourceState::Transferring)?;
        let sent = self.vcpus_sent.iter().filter(|s| **s).count();
        if sent != self.vcpus_sent.len() {
            return Err(UsageError::MissingVcpuState {
                sent,
                expected: self.vcpus_sent.len(),
            });
        }
        let memory_bytes = self.config.identity.memory_bytes;
        self.send(
            &Message::MemoryDigest(MemoryDigestMessage {
                memory_bytes,
                digest: memory_digest,
            }),
            now,
        );
        self.send(&Message::Commit, now);
        self.state = SourceState::AwaitingCommitAck;
        self.waiting_since = now;
        Ok(())
    }
}
