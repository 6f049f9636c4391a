//! The `sealed_source` fuzz target: a source session past authentication, driven by fuzzed
//! API calls and by replies sealed with the real destination-to-source key.
//!
//! Why: the source's post-authentication surface is its API (pages, dirty pages, rounds,
//! state, commit, cancel, timers) and the few replies it accepts (`Accept`, `CommitAck`,
//! `Abort`). Here a real source migrates to a real destination (the *mirror*, decoding into
//! its guest memory) through a real handshake with fixed nonces; the harness relays the
//! mirror's replies, resealing each with the destination-to-source key so that it can also
//! inject forged replies (any type, fuzzed payload) between them. The guest writes to its
//! memory between sends, and reports the pages to the source (`mark_dirty`), or loses the
//! write as broken dirty tracking would.
//!
//! The harness panics (a finding) when the source panics, or when:
//! - a source usage call is taken when it must be refused (pages out of range, a dirty
//!   bitmap of the wrong size, a vCPU twice or out of range, commit with a stale page);
//! - the source gives the VM up (`owns_vm() == false`) without a `CommitAck` delivered;
//! - nothing was forged and the mirror fails for a reason an honest source never causes
//!   (anything but the source's own abort or cancel, a timeout, a closed connection, pages
//!   never sent, or a whole-memory digest that differs after a lost write);
//! - nothing was forged or lost and the migration completed, yet the mirror's memory differs
//!   from the guest's.

use alloc::vec;
use alloc::vec::Vec;

use crate::cpu::CpuDescriptor;
use crate::crypto::{self, FrameProtector, PreSharedKey};
use crate::digest::digest_memory;
use crate::dirty::DirtyBitmap;
use crate::framing::{FrameReader, FrameWriter};
use crate::message::{
    Abort, AbortReason, DeviceState, DiskBlocks, Message, Progress, VcpuState, VmIdentity,
};
use crate::negotiation::{Capabilities, VersionRange};
use crate::page_codec::PageEncoder;
use crate::session::{
    DestinationConfig, DestinationEvent, DestinationSession, DestinationState, Instant,
    SessionError, SourceConfig, SourceSession, SourceState,
};
use crate::wire::{MessageType, PAGE_SIZE};

use super::script::Script;
use super::scripted_source::FUZZ_KEY;

mod seeds;

pub use seeds::sealed_source_seeds;

/// What one input reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceOutcome {
    /// Page runs the source sent.
    pub runs_sent: usize,
    /// Whether the source completed (gave the VM up).
    pub completed: bool,
    /// Whether the mirror released the VM with memory equal to the guest's.
    pub verified: bool,
    /// Whether forged replies were injected.
    pub forged: bool,
}

const MAX_OPS: usize = 256;

/// Runs one input: see the module documentation. Panics on a finding.
pub fn sealed_source(data: &[u8]) -> SourceOutcome {
    let mut s = Script::new(data);
    let mut h = SourceHarness::new(&mut s);
    for _ in 0..MAX_OPS {
        if s.is_done() {
            break;
        }
        h.step(&mut s);
        h.check();
    }
    h.relay(&mut s, true);
    h.check();
    h.finish()
}

struct SourceHarness {
    src: SourceSession,
    mirror: DestinationSession,
    mirror_memory: Vec<u8>,
    guest: Vec<u8>,
    pages: usize,
    vcpus: usize,
    now: Instant,
    /// The mirror's replies, opened with the destination-to-source key.
    replies: FrameReader,
    /// The harness's frames to the source (relayed and forged), same key.
    to_source: FrameWriter,
    encoder: PageEncoder,
    vcpus_sent: Vec<bool>,
    /// Pages written by the guest and not sent since (what the source must refuse to
    /// commit over, when the writes were reported).
    stale: DirtyBitmap,
    forged: bool,
    lost_write: bool,
    commit_ack_delivered: bool,
    outcome: SourceOutcome,
}

impl SourceHarness {
    fn new(s: &mut Script<'_>) -> Self {
        let flags = s.u8();
        let versions = match flags & 3 {
            0 => VersionRange::SUPPORTED,
            1 => VersionRange { min: 2, max: 2 },
            _ => VersionRange { min: 3, max: 3 },
        };
        let pages = 1 + s.below(8);
        let vcpus = 1 + s.below(2);
        let now = Instant::from_millis(1);
        let identity = VmIdentity {
            uuid: [7; 16],
            name: "fuzz".into(),
            memory_bytes: (pages * PAGE_SIZE) as u64,
            vcpu_count: vcpus as u32,
        };
        let key = PreSharedKey::new(FUZZ_KEY);
        let mut config = SourceConfig::new(key.clone(), identity, CpuDescriptor::default());
        config.versions = versions;
        config.offered =
            Capabilities::IMPLEMENTED.difference(Capabilities::from_bits(u64::from(s.u8())));
        config.delta_cache_bytes = usize::from(s.u8() & 3) * PAGE_SIZE;
        if flags & 4 != 0 {
            config.output_limit = 2 * PAGE_SIZE;
        }
        let mut src = SourceSession::new(config, [2; 32], now);
        let mut mirror = DestinationSession::new(
            DestinationConfig::new(key.clone(), CpuDescriptor::default(), 1 << 30),
            [1; 32],
            now,
        );
        // Hello and HelloReply pass in clear: read them for the transcript on the way.
        let hello = first_payload(src.pending_output());
        mirror.handle_input(src.pending_output(), now);
        src.consume_output(src.pending_output().len());
        // The mirror's frames are read from its first one (sequence 0, the HelloReply).
        let mut replies = FrameReader::new();
        replies.push(mirror.pending_output());
        let reply = match replies.next_frame() {
            Ok(Some(_)) => replies.payload().to_vec(),
            other => panic!("no HelloReply: {other:?}"),
        };
        replies.consume();
        src.handle_input(mirror.pending_output(), now);
        mirror.consume_output(mirror.pending_output().len());
        let Some((version, caps)) = src.negotiated() else {
            panic!("an honest handshake failed: {:?}", src.error());
        };
        let mut transcript = crypto::transcript_hash(&hello, &reply);
        if version >= MessageType::PageDigest.since_version() {
            // Version 3 binds the handshake to the endpoints; this link has none.
            transcript = crypto::bind_endpoints(&transcript, None);
        }
        let keys = crypto::session_keys(&key, &transcript);
        let encrypt = caps.contains(Capabilities::ENCRYPTION);
        replies.protect(FrameProtector::new(&keys.destination_to_source, encrypt));
        let mut to_source = FrameWriter::new();
        // The source expects the destination's frames from sequence 1 (0 was HelloReply).
        let _ = to_source.write_with(MessageType::Progress, &mut Vec::new(), |_| {});
        to_source.protect(FrameProtector::new(&keys.destination_to_source, encrypt));
        let mut mirror_memory = vec![0u8; pages * PAGE_SIZE];
        mirror.handle_input_into(src.pending_output(), now, &mut mirror_memory);
        src.consume_output(src.pending_output().len());
        assert!(
            matches!(mirror.poll_event(), Some(DestinationEvent::Offer(_))),
            "an honest offer was refused: {:?}",
            mirror.error()
        );
        assert!(mirror.accept_offer(now).is_ok());
        let mut h = SourceHarness {
            src,
            mirror,
            mirror_memory,
            guest: vec![0; pages * PAGE_SIZE],
            pages,
            vcpus,
            now,
            replies,
            to_source,
            encoder: PageEncoder::new(),
            vcpus_sent: vec![false; vcpus],
            stale: DirtyBitmap::new(pages),
            forged: false,
            lost_write: false,
            commit_ack_delivered: false,
            outcome: SourceOutcome::default(),
        };
        h.relay(s, true);
        assert_eq!(h.src.state(), SourceState::Transferring);
        h
    }

    fn step(&mut self, s: &mut Script<'_>) {
        match s.below(16) {
            0..=2 => self.send_pages(s),
            3 | 4 => self.guest_writes(s),
            5 => {
                let _ = self.src.end_round(u64::from(s.u8()), self.now);
            }
            6 => self.send_state(s),
            7 => self.commit(s),
            8..=10 => self.relay(s, false),
            11 => self.forge_reply(s),
            12 => self.time_passes(s),
            13 => {
                let wrong = DirtyBitmap::new(self.pages + 1 + s.below(64));
                assert!(
                    self.src.mark_dirty(&wrong).is_err(),
                    "a bitmap of the wrong size"
                );
            }
            14 => {
                if s.one_in(8) {
                    self.src.cancel(self.now);
                }
            }
            _ => {
                if s.one_in(8) {
                    self.src.connection_closed(self.now);
                    self.mirror.connection_closed(self.now);
                }
            }
        }
    }

    fn send_pages(&mut self, s: &mut Script<'_>) {
        let first = if s.one_in(16) {
            usize::from(s.u8())
        } else {
            s.below(self.pages)
        };
        let count = 1 + s.below(self.pages);
        let end = (first + count) * PAGE_SIZE;
        let data = match self.guest.get(first * PAGE_SIZE..end) {
            Some(d) => d.to_vec(),
            None => vec![0; count * PAGE_SIZE],
        };
        let in_range = end <= self.guest.len();
        let result = self
            .src
            .send_pages((first * PAGE_SIZE) as u64, &data, self.now);
        if !in_range {
            assert!(result.is_err(), "pages beyond memory were sent");
        }
        if result.is_ok() {
            self.outcome.runs_sent += 1;
            for pfn in first..first + count {
                self.stale.clear(pfn);
            }
        }
        if s.one_in(2) {
            self.relay(s, false);
        }
    }

    /// The guest writes a few bytes; the dirty pages are reported, or (rarely) lost. Only
    /// while transferring: the VM is paused before the commit (and after a failure it is the
    /// source's again, nothing more is migrated).
    fn guest_writes(&mut self, s: &mut Script<'_>) {
        if self.src.state() != SourceState::Transferring {
            return;
        }
        let mut dirty = DirtyBitmap::new(self.pages);
        for _ in 0..1 + s.below(4) {
            let at = usize::from(s.u16()) * 7 % self.guest.len();
            self.guest[at] = s.u8();
            dirty.set(at / PAGE_SIZE);
        }
        if s.one_in(16) {
            self.lost_write = true;
        } else {
            assert!(self.src.mark_dirty(&dirty).is_ok());
            self.stale.merge(&dirty);
        }
    }

    fn send_state(&mut self, s: &mut Script<'_>) {
        match s.below(3) {
            0 => {
                let index = s.below(self.vcpus + 1);
                let state = VcpuState {
                    vcpu_index: index as u32,
                    rip: s.u64(),
                    ..VcpuState::default()
                };
                let transferring = self.src.state() == SourceState::Transferring;
                let fresh = self.vcpus_sent.get(index).is_some_and(|sent| !sent);
                let result = self.src.send_vcpu_state(&state, self.now);
                if !fresh {
                    assert!(result.is_err(), "vCPU {index} sent twice or out of range");
                } else if transferring {
                    assert!(result.is_ok(), "a valid vCPU state was refused");
                    self.vcpus_sent[index] = true;
                }
            }
            1 => {
                let state = DeviceState {
                    id: ["com1", "pit"][s.below(2)].into(),
                    version: 1,
                    data: s.blob(64).to_vec(),
                };
                let _ = self.src.send_device_state(&state, self.now);
            }
            _ => {
                let blocks = DiskBlocks {
                    disk_id: 0,
                    first_lba: u64::from(s.u8()),
                    block_size: 512,
                    data: vec![s.u8(); 512],
                };
                let _ = self.src.send_disk_blocks(&blocks, self.now);
            }
        }
    }

    fn commit(&mut self, s: &mut Script<'_>) {
        let digest = (s.u8() & 1 == 0).then(|| digest_memory(&self.guest));
        let stale = self.stale.count() > 0;
        let result = self.src.commit(digest, self.now);
        if stale {
            assert!(
                result.is_err(),
                "commit with reported dirty pages not sent again"
            );
        }
        self.relay(s, false);
    }

    /// Moves the source's output to the mirror, lets the mirror's caller decide a commit,
    /// and relays the mirror's replies (resealed) to the source.
    fn relay(&mut self, s: &mut Script<'_>, everything: bool) {
        for _ in 0..4 {
            let out = self.src.pending_output();
            let n = if everything || !s.one_in(4) {
                out.len()
            } else {
                s.below(out.len() + 1)
            };
            self.mirror
                .handle_input_into(&out[..n], self.now, &mut self.mirror_memory);
            self.src.consume_output(n);
            while let Some(event) = self.mirror.poll_event() {
                if let DestinationEvent::CommitRequested { expected_digest } = event {
                    let _ = match expected_digest {
                        Some(_) => self
                            .mirror
                            .report_digest(digest_memory(&self.mirror_memory), self.now),
                        None => self.mirror.confirm_commit(self.now),
                    };
                }
            }
            self.replies.push(self.mirror.pending_output());
            self.mirror
                .consume_output(self.mirror.pending_output().len());
            let mut relayed = false;
            loop {
                let header = match self.replies.next_frame() {
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(e) => panic!("the destination wrote a frame that does not open: {e}"),
                };
                let payload = self.replies.payload().to_vec();
                self.replies.consume();
                self.deliver(header.msg_type, &payload);
                relayed = true;
            }
            if !relayed && self.src.pending_output().is_empty() {
                break;
            }
        }
    }

    fn deliver(&mut self, msg_type: MessageType, payload: &[u8]) {
        let state = self.src.state();
        let mut frame = Vec::new();
        let _ = self
            .to_source
            .write_with(msg_type, &mut frame, |b| b.extend_from_slice(payload));
        self.src.handle_input(&frame, self.now);
        if state == SourceState::AwaitingCommitAck && msg_type == MessageType::CommitAck {
            self.commit_ack_delivered = true;
        }
    }

    fn forge_reply(&mut self, s: &mut Script<'_>) {
        self.forged = true;
        let (msg_type, payload) = match s.below(4) {
            0 => (MessageType::CommitAck, Vec::new()),
            1 => (MessageType::Accept, Vec::new()),
            2 => {
                let mut p = Vec::new();
                let abort = Message::Abort(Abort::new(AbortReason::BadFrame, "forged"));
                abort.encode(Capabilities::NONE, &mut self.encoder, &mut p);
                (MessageType::Abort, p)
            }
            _ => (
                MessageType::ALL[s.below(MessageType::ALL.len())],
                s.blob(128).to_vec(),
            ),
        };
        self.deliver(msg_type, &payload);
    }

    fn time_passes(&mut self, s: &mut Script<'_>) {
        self.now = self.now + core::time::Duration::from_millis(u64::from(s.u16()) * 4);
        let state = self.src.state();
        let deadline = self.src.poll_timeout();
        self.src.handle_timeout(self.now);
        let _ = self.src.send_progress(Progress::default(), self.now);
        if deadline.is_none_or(|t| self.now < t) || state == SourceState::Transferring {
            assert_eq!(self.src.state(), state, "a timeout before its deadline");
        }
        self.mirror.handle_timeout(self.now);
    }

    /// Invariants after every operation.
    fn check(&mut self) {
        if !self.src.owns_vm() {
            assert!(
                self.commit_ack_delivered,
                "the source gave the VM up without a CommitAck"
            );
        }
        if self.src.state() == SourceState::Failed {
            assert!(self.src.error().is_some());
        }
        while self.src.poll_event().is_some() {}
        if self.forged || self.mirror.state() != DestinationState::Failed {
            return;
        }
        let error = self.mirror.error().cloned();
        let honest_failure = match &error {
            Some(SessionError::PeerAborted { .. })
            | Some(SessionError::PeerCancelled)
            | Some(SessionError::Timeout { .. })
            | Some(SessionError::ConnectionClosed { .. })
            | Some(SessionError::MissingPages { .. }) => true,
            // A Cancel after the destination acknowledged settles it like an Abort (the
            // source kept the VM), so it is never in doubt for that.
            Some(SessionError::InDoubt(inner)) => matches!(
                **inner,
                SessionError::Timeout { .. } | SessionError::ConnectionClosed { .. }
            ),
            Some(SessionError::DigestMismatch { .. }) => self.lost_write,
            _ => false,
        };
        assert!(
            honest_failure,
            "an honest destination refused the source's traffic: {error:?}"
        );
    }

    fn finish(mut self) -> SourceOutcome {
        self.outcome.forged = self.forged;
        self.outcome.completed = self.src.state() == SourceState::Completed;
        if self.mirror.may_run_vm() && !self.forged && !self.lost_write {
            let differing = (self.mirror_memory.iter())
                .zip(&self.guest)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                differing, 0,
                "the destination released a VM whose memory differs from the source's"
            );
            self.outcome.verified = true;
        }
        self.outcome
    }
}

/// The payload of the first (clear) frame in `bytes`.
fn first_payload(bytes: &[u8]) -> Vec<u8> {
    let mut reader = FrameReader::new();
    reader.push(bytes);
    match reader.next_frame() {
        Ok(Some(_)) => reader.payload().to_vec(),
        other => panic!("no handshake frame: {other:?}"),
    }
}
