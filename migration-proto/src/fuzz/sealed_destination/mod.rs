//! The `sealed_session` fuzz target: a destination session past authentication.
//!
//! Why: with fixed keys, a blindly mutated frame fails its tag before its message is
//! decoded, so the rules behind the tag (pages, delta pages, page digest, vCPU and device
//! state, commit, release) were only reached by hand-written tests. Here the harness plays
//! the source: a real handshake with fixed nonces (`ScriptedSource`), then the rest of the
//! input is a script of operations, each sealed with the real source-to-destination key and
//! the next sequence number before it is fed in:
//!
//! - messages of any type with fuzzed payloads (`raw`), and structured ones: page runs whose
//!   every page picks zero / raw / LZ4 / delta against the destination's copy / delta
//!   against a wrong base / garbage compressed bytes, runs from the real encoder with a
//!   delta cache, vCPU and device state, honest or forged page and memory digests, commit,
//!   release, round ends, progress, disk blocks, abort, cancel;
//! - the caller's side: `confirm_commit`, `report_digest` (of the real memory or a wrong
//!   one), offers answered in the wrong state, timeouts, a closed connection;
//! - link faults: a frame replayed, a frame dropped, a bit flipped, clear bytes injected;
//! - delivery split at a fuzzed point, into guest memory (`handle_input_into`) or as events.
//!
//! The harness keeps a model of what the destination's memory must hold: the pages of every
//! run it accepted, computed independently of the session's decoder. It panics (a finding)
//! when the session panics or when one of these fails:
//!
//! - memory equals the model whenever the session has not failed; a `Released` destination
//!   received every page (version 3) and holds exactly the accepted pages;
//! - `CommitRequested` comes only with every vCPU received, and in version 3 only after a
//!   page digest equal to the model's accumulator (a forged one must be refused);
//! - a run with an undecodable page, out of range, in an encoding not negotiated, or a
//!   delta without guest memory is never accepted; a valid run while receiving is; disk
//!   disk messages never without a manifest, state only before a digest, each vCPU and device once;
//! - after a link fault nothing more is accepted; terminal states never change; a failed
//!   session has its error and reported it once; usage calls in the wrong state are refused
//!   and change nothing; `confirm_commit` / `report_digest` behave as documented;
//! - every frame the destination writes opens with the session key and is one a destination
//!   may send (`Accept` once, `CommitAck` only after a good commit, `Abort` only on failure).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::digest::Digest;
use crate::message::{Message, VmIdentity};
use crate::negotiation::{Capabilities, VersionRange};
use crate::page_codec::{DeltaCache, PageEncoder};
use crate::page_digest::Accumulator;
use crate::session::{
    DestinationConfig, DestinationEvent, DestinationSession, DestinationState, Instant,
};
use crate::wire::PAGE_SIZE;

use super::script::Script;
use super::scripted_source::{FUZZ_KEY, ScriptedSource};

mod caller_and_messages;
mod page_runs;
mod seeds;

pub use seeds::sealed_destination_seeds;

/// What one input reached (for the drivers' statistics and the tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealedOutcome {
    /// Frames fed to the destination.
    pub frames: usize,
    /// Page runs the destination accepted.
    pub runs_accepted: usize,
    /// Whether the destination asked for the commit decision.
    pub commit_requested: bool,
    /// Whether the destination ended `Released` (its memory checked against the model).
    pub released: bool,
    /// Whether the destination ended `Failed`.
    pub failed: bool,
}

/// Most operations one input runs (bounds the time per input).
const MAX_OPS: usize = 256;

/// Runs one input: see the module documentation. Panics on a finding.
pub fn sealed_destination(data: &[u8]) -> SealedOutcome {
    let mut s = Script::new(data);
    let mut h = Harness::new(&mut s);
    for _ in 0..MAX_OPS {
        if s.is_done() {
            break;
        }
        let before = h.dst.state();
        h.step(&mut s);
        h.src.read_replies(&mut h.dst);
        if is_terminal(before) {
            assert_eq!(h.dst.state(), before, "a terminal state changed");
        }
    }
    h.finish()
}

fn is_terminal(state: DestinationState) -> bool {
    matches!(state, DestinationState::Released | DestinationState::Failed)
}

/// The destination under test, the scripted source that feeds it, the destination's guest
/// memory and the model of what that memory must hold.
struct Harness {
    dst: DestinationSession,
    src: ScriptedSource,
    now: Instant,
    into_memory: bool,
    pages: usize,
    vcpus: usize,
    memory: Vec<u8>,
    model: Vec<u8>,
    covered: Vec<bool>,
    /// The harness's copy of the real source's delta cache, kept equal to the model.
    delta_cache: Option<DeltaCache>,
    encoder: PageEncoder,
    /// Receiving-side rules the model tracks: what was accepted, and whether a digest was
    /// (after which no state or pages may be).
    vcpus_received: Vec<bool>,
    devices: Vec<String>,
    sealed: bool,
    accumulator_sent: Option<Accumulator>,
    memory_digest_sent: Option<Digest>,
    /// A frame was dropped, replayed, corrupted or injected: nothing may be accepted now.
    desynced: bool,
    last_frame: Vec<u8>,
    commit_requested: Option<Option<Digest>>,
    commits_confirmed: usize,
    released_events: usize,
    failed_events: usize,
    outcome: SealedOutcome,
}

impl Harness {
    fn new(s: &mut Script<'_>) -> Self {
        let flags = s.u8();
        let versions = match flags & 3 {
            0 => VersionRange::SUPPORTED,
            1 => VersionRange { min: 2, max: 2 },
            _ => VersionRange { min: 3, max: 3 },
        };
        let into_memory = flags & 4 == 0;
        // A zero byte offers everything (short inputs get the richest session).
        let source_offers =
            Capabilities::IMPLEMENTED.difference(Capabilities::from_bits(u64::from(s.u8())));
        let destination_offers =
            Capabilities::IMPLEMENTED.difference(Capabilities::from_bits(u64::from(s.u8())));
        // Small VMs: every page a script sends is encoded, sealed, opened, decoded and hashed.
        let pages = 1 + s.below(8);
        let vcpus = 1 + s.below(3);
        let now = Instant::from_millis(1);
        let mut config = DestinationConfig::new(
            crate::crypto::PreSharedKey::new(FUZZ_KEY),
            crate::cpu::CpuDescriptor::default(),
            1 << 30,
        );
        config.offered = destination_offers;
        let mut dst = DestinationSession::new(config, [1; 32], now);
        let identity = VmIdentity {
            uuid: [7; 16],
            name: "fuzz".into(),
            memory_bytes: (pages * PAGE_SIZE) as u64,
            vcpu_count: vcpus as u32,
        };
        let mut src = ScriptedSource::connect(&mut dst, versions, source_offers, identity, now);
        src.read_replies(&mut dst);
        assert_eq!(src.accepts, 1, "accept_offer sends one Accept");
        let delta_cache = src
            .caps
            .contains(Capabilities::DELTA_PAGES)
            .then(|| DeltaCache::try_new(4 * PAGE_SIZE))
            .flatten();
        Harness {
            dst,
            src,
            now,
            into_memory,
            pages,
            vcpus,
            memory: vec![0; pages * PAGE_SIZE],
            model: vec![0; pages * PAGE_SIZE],
            covered: vec![false; pages],
            delta_cache,
            encoder: PageEncoder::new(),
            vcpus_received: vec![false; vcpus],
            devices: Vec::new(),
            sealed: false,
            accumulator_sent: None,
            memory_digest_sent: None,
            desynced: false,
            last_frame: Vec::new(),
            commit_requested: None,
            commits_confirmed: 0,
            released_events: 0,
            failed_events: 0,
            outcome: SealedOutcome::default(),
        }
    }

    fn step(&mut self, s: &mut Script<'_>) {
        match s.below(20) {
            0 | 1 => self.raw_message(s),
            2..=4 => self.planned_run(s),
            5 => self.encoded_run(s),
            6 => self.all_pages(s),
            7 => self.vcpu_state(s),
            8 => self.device_state(s),
            9 => self.page_digest(s),
            10 => self.memory_digest(s),
            11 => {
                self.send(s, &Message::Commit);
            }
            12 => {
                self.send(s, &Message::Release);
            }
            13 => self.chatter(s),
            14 => self.decide_commit(s),
            15 => self.wrong_state_calls(s),
            16 => self.time_passes(s),
            17 => {
                if s.one_in(8) {
                    self.connection_closed();
                }
            }
            18 => {
                if s.one_in(4) {
                    self.link_fault(s);
                }
            }
            _ => self.honest_finish(s),
        }
    }

    // --- Delivery -----------------------------------------------------------------------

    /// Feeds one sealed frame (split at a fuzzed point) and drains the events. Returns
    /// whether the destination accepted it while receiving.
    fn deliver(&mut self, s: &mut Script<'_>, frame: Vec<u8>) -> bool {
        let before = self.dst.state();
        let split = if s.one_in(4) {
            s.below(frame.len() + 1)
        } else {
            frame.len()
        };
        let (a, b) = frame.split_at(split);
        for piece in [a, b] {
            if piece.is_empty() {
                continue;
            }
            if self.into_memory {
                self.dst
                    .handle_input_into(piece, self.now, &mut self.memory);
            } else {
                self.dst.handle_input(piece, self.now);
            }
            self.drain_events();
        }
        self.outcome.frames += 1;
        self.last_frame = frame;
        let after = self.dst.state();
        if self.desynced {
            assert!(
                after == before || after == DestinationState::Failed,
                "{before:?} -> {after:?} after a link fault"
            );
            return false;
        }
        before == DestinationState::Receiving && after != DestinationState::Failed
    }

    fn send(&mut self, s: &mut Script<'_>, msg: &Message) -> bool {
        let frame = self.src.frame(msg);
        let accepted = self.deliver(s, frame);
        if accepted {
            self.note_accepted(msg);
        }
        accepted
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.dst.poll_event() {
            let state = self.dst.state();
            match event {
                DestinationEvent::Pages { first_gpa, data } => {
                    assert!(
                        !self.into_memory,
                        "a Pages event while decoding into memory"
                    );
                    let start = usize::try_from(first_gpa).unwrap_or(usize::MAX);
                    let Some(target) = start
                        .checked_add(data.len())
                        .and_then(|end| self.memory.get_mut(start..end))
                    else {
                        panic!(
                            "Pages event outside guest memory: {first_gpa:#x}+{}",
                            data.len()
                        );
                    };
                    target.copy_from_slice(&data);
                    self.dst.recycle_page_buffer(data);
                }
                DestinationEvent::CommitRequested { expected_digest } => {
                    assert_eq!(state, DestinationState::AwaitingDigestCheck);
                    self.check_commit_request(expected_digest);
                    self.commit_requested = Some(expected_digest);
                    self.outcome.commit_requested = true;
                }
                DestinationEvent::Committed => {
                    assert_eq!(state, DestinationState::AwaitingRelease);
                    self.commits_confirmed += 1;
                }
                DestinationEvent::Released => {
                    assert_eq!(state, DestinationState::Released);
                    self.released_events += 1;
                }
                DestinationEvent::Failed(e) => {
                    assert_eq!(state, DestinationState::Failed);
                    assert_eq!(self.dst.error(), Some(&e));
                    self.failed_events += 1;
                }
                DestinationEvent::Offer(_) => panic!("a second Offer event"),
                DestinationEvent::VcpuState(_)
                | DestinationEvent::DeviceState(_)
                | DestinationEvent::DiskBlocks(_)
                | DestinationEvent::RoundEnd(_)
                | DestinationEvent::Progress(_) => {}
            }
        }
    }

    /// At `CommitRequested` the destination must have everything the rules demand.
    fn check_commit_request(&self, expected_digest: Option<Digest>) {
        assert!(
            self.vcpus_received.iter().all(|r| *r),
            "commit requested without every vCPU"
        );
        assert_eq!(
            self.memory, self.model,
            "memory differs from the model at commit"
        );
        if self.src.version >= 3 {
            assert!(
                self.covered.iter().all(|c| *c),
                "commit requested with pages never sent"
            );
            assert_eq!(
                self.accumulator_sent,
                Some(self.honest_accumulator()),
                "commit requested on a page digest that does not match the pages"
            );
        } else {
            assert!(
                expected_digest.is_some(),
                "version 2 commit without a digest"
            );
        }
        assert_eq!(expected_digest, self.memory_digest_sent);
    }

    /// Bookkeeping of the receiving rules for a message the destination accepted.
    fn note_accepted(&mut self, msg: &Message) {
        match msg {
            Message::VcpuState(v) => {
                let index = v.vcpu_index as usize;
                assert!(!self.sealed, "vCPU state accepted after a digest");
                match self.vcpus_received.get_mut(index) {
                    Some(seen) if !*seen => *seen = true,
                    _ => panic!("vCPU state {index} accepted (out of range or duplicate)"),
                }
            }
            Message::DeviceState(d) => {
                assert!(!self.sealed, "device state accepted after a digest");
                assert!(!self.devices.contains(&d.id), "duplicate device accepted");
                self.devices.push(d.id.clone());
            }
            Message::DiskBlocks(_) | Message::DiskDigest(_) => {
                // This harness's source announces no disks: no disk message names a disk
                // of the manifest, so none may be accepted, negotiated or not.
                panic!("a disk message accepted without a disk manifest");
            }
            Message::PageDigest(p) => {
                assert!(self.src.version >= 3, "page digest accepted in version 2");
                assert!(
                    self.accumulator_sent.is_none(),
                    "second page digest accepted"
                );
                assert_eq!(p.memory_bytes, (self.pages * PAGE_SIZE) as u64);
                self.accumulator_sent = Some(p.accumulator);
                self.sealed = true;
            }
            Message::MemoryDigest(d) => {
                assert!(
                    self.memory_digest_sent.is_none(),
                    "second memory digest accepted"
                );
                assert_eq!(d.memory_bytes, (self.pages * PAGE_SIZE) as u64);
                self.memory_digest_sent = Some(d.digest);
                self.sealed = true;
            }
            _ => {}
        }
    }

    // --- Messages -----------------------------------------------------------------------

    fn finish(mut self) -> SealedOutcome {
        self.drain_events();
        self.src.read_replies(&mut self.dst);
        let state = self.dst.state();
        assert_eq!(self.dst.may_run_vm(), state == DestinationState::Released);
        assert!(self.failed_events <= 1 && self.released_events <= 1);
        assert_eq!(self.src.commit_acks, self.commits_confirmed);
        match state {
            DestinationState::Failed => {
                assert!(self.dst.error().is_some());
                assert_eq!(self.failed_events, 1, "a failure not reported as an event");
            }
            DestinationState::Released => {
                assert_eq!(self.released_events, 1);
                assert_eq!(self.commits_confirmed, 1, "released without a commit");
                assert_eq!(
                    self.memory, self.model,
                    "released memory differs from the model"
                );
                if self.src.version >= 3 {
                    assert!(self.covered.iter().all(|c| *c));
                }
                self.outcome.released = true;
            }
            _ => assert_eq!(self.memory, self.model, "memory differs from the model"),
        }
        if state != DestinationState::Failed {
            assert_eq!(
                self.src.aborts, 0,
                "an Abort from a session that did not fail"
            );
        }
        self.outcome.failed = state == DestinationState::Failed;
        self.outcome
    }
}
