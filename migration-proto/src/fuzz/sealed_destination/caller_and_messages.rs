//! The sealed destination's other messages (state, digests, commit, chatter), the caller's
//! decisions, time, and link faults.

use alloc::string::String;
use alloc::vec;

use crate::digest::digest_memory;
use crate::message::{
    Abort, AbortReason, DeviceState, DiskBlocks, MemoryDigestMessage, Message, PageDigestMessage,
    Progress, RoundStats, VcpuState,
};
use crate::page_digest::{Accumulator, PageDigestTable};
use crate::session::DestinationState;
use crate::wire::PAGE_SIZE;

use super::super::script::Script;
use super::{Harness, is_terminal};

impl Harness {
    pub(super) fn vcpu_state(&mut self, s: &mut Script<'_>) {
        let mut state = VcpuState {
            vcpu_index: s.below(self.vcpus + 1) as u32,
            rip: s.u64(),
            ..VcpuState::default()
        };
        if s.one_in(4) {
            state.xsave = s.blob(1024).to_vec();
            state.cr0 = s.u64();
            state.efer = s.u64();
        }
        self.send(s, &Message::VcpuState(alloc::boxed::Box::new(state)));
    }

    pub(super) fn device_state(&mut self, s: &mut Script<'_>) {
        const IDS: [&str; 3] = ["com1", "pit", "e1000"];
        let id = match s.below(4) {
            3 => String::from_utf8_lossy(s.blob(12)).into_owned(),
            i => IDS[i].into(),
        };
        let state = DeviceState {
            id,
            version: u32::from(s.u8()),
            data: s.blob(128).to_vec(),
        };
        self.send(s, &Message::DeviceState(state));
    }

    pub(super) fn honest_accumulator(&self) -> Accumulator {
        let mut table = PageDigestTable::new(self.src.page_digest_key.clone(), self.pages);
        for (pfn, _) in self.covered.iter().enumerate().filter(|(_, c)| **c) {
            table.record(pfn, &self.model[pfn * PAGE_SIZE..(pfn + 1) * PAGE_SIZE]);
        }
        table.accumulator()
    }

    pub(super) fn page_digest(&mut self, s: &mut Script<'_>) {
        let mut msg = PageDigestMessage {
            memory_bytes: (self.pages * PAGE_SIZE) as u64,
            accumulator: self.honest_accumulator(),
        };
        match s.below(4) {
            0 => {}
            1 => msg.accumulator[usize::from(s.u8()) % 16] ^= 1 << s.below(8),
            2 => msg
                .accumulator
                .copy_from_slice(s.bytes(16).get(..16).unwrap_or(&[0; 16])),
            _ => msg.memory_bytes = msg.memory_bytes.wrapping_add(u64::from(s.u16()) + 1),
        }
        self.send(s, &Message::PageDigest(msg));
    }

    pub(super) fn memory_digest(&mut self, s: &mut Script<'_>) {
        let mut msg = MemoryDigestMessage {
            memory_bytes: (self.pages * PAGE_SIZE) as u64,
            digest: digest_memory(&self.model),
        };
        match s.below(4) {
            0 | 1 => {}
            2 => msg.digest = s.array32(),
            _ => msg.memory_bytes = msg.memory_bytes.wrapping_sub(u64::from(s.u16()) + 1),
        }
        self.send(s, &Message::MemoryDigest(msg));
    }

    /// Messages with no bearing on memory: round ends, progress, disk blocks, abort, cancel.
    pub(super) fn chatter(&mut self, s: &mut Script<'_>) {
        let msg = match s.below(8) {
            0..=2 => Message::RoundEnd(RoundStats {
                round: s.u32(),
                pages_sent: s.u64(),
                ..RoundStats::default()
            }),
            3 | 4 => Message::Progress(Progress {
                round: s.u32(),
                bytes_remaining: s.u64(),
                ..Progress::default()
            }),
            5 => Message::DiskBlocks(DiskBlocks {
                disk_id: u32::from(s.u8() & 1),
                first_lba: u64::from(s.u16()),
                block_size: 512 << s.below(4),
                data: vec![s.u8(); 512 * (1 + s.below(2))],
            }),
            6 => Message::Abort(Abort::new(AbortReason::BadFrame, "fuzz")),
            _ => Message::Cancel,
        };
        self.send(s, &msg);
    }

    /// The steps of a correct migration from here: every page, every vCPU, the digests the
    /// version needs, commit, confirm, release. Lets short inputs reach `Released`.
    pub(super) fn honest_finish(&mut self, s: &mut Script<'_>) {
        if self.dst.state() != DestinationState::Receiving || self.desynced || self.sealed {
            return;
        }
        if self.covered.iter().any(|c| !c) || s.one_in(4) {
            self.all_pages(s);
        }
        for index in 0..self.vcpus {
            if !self.vcpus_received[index] {
                let state = VcpuState {
                    vcpu_index: index as u32,
                    ..VcpuState::default()
                };
                self.send(s, &Message::VcpuState(alloc::boxed::Box::new(state)));
            }
        }
        let full = self.src.version < 3 || s.one_in(2);
        if self.src.version >= 3 {
            let msg = PageDigestMessage {
                memory_bytes: (self.pages * PAGE_SIZE) as u64,
                accumulator: self.honest_accumulator(),
            };
            self.send(s, &Message::PageDigest(msg));
        }
        if full {
            let msg = MemoryDigestMessage {
                memory_bytes: (self.pages * PAGE_SIZE) as u64,
                digest: digest_memory(&self.model),
            };
            self.send(s, &Message::MemoryDigest(msg));
        }
        let state = self.dst.state();
        self.send(s, &Message::Commit);
        if state != DestinationState::Receiving || self.desynced {
            return;
        }
        assert_eq!(
            self.dst.state(),
            DestinationState::AwaitingDigestCheck,
            "an honest commit was refused: {:?}",
            self.dst.error()
        );
        // A zero byte (or the end of the input) finishes the migration.
        if s.u8() & 1 == 0 {
            let ours = digest_memory(&self.memory);
            let result = match self.commit_requested {
                Some(Some(_)) => self.dst.report_digest(ours, self.now),
                _ => self.dst.confirm_commit(self.now),
            };
            assert!(result.is_ok(), "the honest commit decision was refused");
            self.drain_events();
            assert_eq!(self.dst.state(), DestinationState::AwaitingRelease);
            self.send(s, &Message::Release);
            assert_eq!(self.dst.state(), DestinationState::Released);
        }
    }

    // --- The caller's side --------------------------------------------------------------

    pub(super) fn decide_commit(&mut self, s: &mut Script<'_>) {
        let state = self.dst.state();
        let expected = match (state, self.commit_requested) {
            (DestinationState::AwaitingDigestCheck, Some(expected)) => Some(expected),
            _ => None,
        };
        let ours = digest_memory(&self.memory);
        let (result, reported) = match s.below(3) {
            0 => (self.dst.confirm_commit(self.now), None),
            1 => (self.dst.report_digest(ours, self.now), Some(ours)),
            _ => {
                let wrong = s.array32();
                (self.dst.report_digest(wrong, self.now), Some(wrong))
            }
        };
        self.drain_events();
        let Some(expected) = expected else {
            assert!(result.is_err(), "a commit decision in {state:?} was taken");
            assert_eq!(self.dst.state(), state);
            return;
        };
        match (expected, reported) {
            (None, None) | (Some(_), Some(_)) => assert!(result.is_ok()),
            _ => {
                assert!(result.is_err(), "confirm/report mixed up");
                assert_eq!(self.dst.state(), state);
                return;
            }
        }
        let good = match (expected, reported) {
            (Some(e), Some(r)) => e == r,
            _ => true,
        };
        let after = self.dst.state();
        if good {
            assert_eq!(after, DestinationState::AwaitingRelease);
        } else {
            assert_eq!(after, DestinationState::Failed);
        }
    }

    pub(super) fn wrong_state_calls(&mut self, s: &mut Script<'_>) {
        let state = self.dst.state();
        let result = if s.u8() & 1 == 0 {
            self.dst.accept_offer(self.now)
        } else {
            self.dst.reject_offer("fuzz", self.now)
        };
        assert!(result.is_err(), "an offer decision in {state:?} was taken");
        assert_eq!(self.dst.state(), state);
    }

    pub(super) fn time_passes(&mut self, s: &mut Script<'_>) {
        self.now = self.now + core::time::Duration::from_millis(u64::from(s.u16()) * 8);
        let deadline = self.dst.poll_timeout();
        let state = self.dst.state();
        self.dst.handle_timeout(self.now);
        self.drain_events();
        match deadline {
            Some(t) if self.now >= t => assert_eq!(self.dst.state(), DestinationState::Failed),
            _ => assert_eq!(self.dst.state(), state, "a timeout before its deadline"),
        }
    }

    pub(super) fn connection_closed(&mut self) {
        let state = self.dst.state();
        self.dst.connection_closed(self.now);
        self.drain_events();
        if !is_terminal(state) {
            assert_eq!(self.dst.state(), DestinationState::Failed);
        }
    }

    pub(super) fn link_fault(&mut self, s: &mut Script<'_>) {
        let frame = match s.below(4) {
            0 => core::mem::take(&mut self.last_frame),
            1 => {
                // Sealed, then lost on the way: the next frame is out of sequence.
                let _ = self.src.frame(&Message::Progress(Progress::default()));
                self.desynced = true;
                return;
            }
            2 => {
                let mut frame = self.src.frame(&Message::Progress(Progress::default()));
                let at = usize::from(s.u16()) % frame.len().max(1);
                if let Some(b) = frame.get_mut(at) {
                    *b ^= 1 << s.below(8);
                }
                frame
            }
            _ => s.blob(64).to_vec(),
        };
        if frame.is_empty() {
            return;
        }
        self.desynced = true;
        self.deliver(s, frame);
    }

    // --- End of input -------------------------------------------------------------------
}
