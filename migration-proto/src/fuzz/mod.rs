//! Fuzz entry points shared by the stable fuzz driver (`examples/fuzz.rs`), the cargo-fuzz
//! targets (`fuzz/fuzz_targets/`) and the host tests.
//!
//! - [`decode_everything`] (target `decoders`): arbitrary bytes through every decoder and
//!   both sessions. With fixed keys almost every mutated frame fails its tag, so this covers
//!   the parsers and the handshake, not the rules behind authentication.
//! - [`sealed_destination`] (target `sealed_session`): a destination past a real handshake,
//!   fed messages sealed with the real session key; reaches every post-authentication rule
//!   and checks the destination's memory against a model.
//! - [`sealed_source`] (target `sealed_source`): a source past a real handshake with a real
//!   destination, driven by fuzzed API calls, guest writes and relayed or forged sealed
//!   replies; checks the source's rules and, end to end, the migrated memory.
//!
//! `decode_everything` pushes one input through every decoder of the crate: the frame
//! reader (clear and protected), every message decoder, the page-run parser and decoder, the
//! CPU descriptor decoder, and both sessions. It must never panic; errors are the expected
//! outcome for almost every input.

use crate::cpu::CpuDescriptor;
use crate::crypto::{FrameProtector, PreSharedKey};
use crate::framing::FrameReader;
use crate::message::{Message, VmIdentity};
use crate::page_codec::PageRunView;
use crate::session::{
    DestinationConfig, DestinationEvent, DestinationSession, Instant, SourceConfig, SourceSession,
};
use crate::wire::{MessageType, Reader};
use alloc::vec;
use alloc::vec::Vec;

mod script;
mod scripted_source;
mod sealed_destination;
mod sealed_source;

pub use sealed_destination::{SealedOutcome, sealed_destination, sealed_destination_seeds};
pub use sealed_source::{SourceOutcome, sealed_source, sealed_source_seeds};

/// Guest memory of the VM in the recorded sessions of the `decoders` corpus (16 pages).
pub const FUZZ_MEMORY_BYTES: usize = 64 * 1024;

/// How many of the decoders accepted the input (for the driver's statistics).
#[derive(Clone, Copy, Debug, Default)]
pub struct Accepted {
    /// Complete frames accepted by the frame readers.
    pub frames: usize,
    /// Message payloads that decoded.
    pub messages: usize,
    /// Page runs that parsed and decoded.
    pub page_runs: usize,
}

/// Reacts like a cooperative hypervisor so that recorded sessions reach the deep states:
/// accepts offers and confirms the expected digest.
pub fn drive_destination(dst: &mut DestinationSession, now: Instant) -> Vec<DestinationEvent> {
    let mut seen = Vec::new();
    while let Some(ev) = dst.poll_event() {
        match &ev {
            DestinationEvent::Offer(_) => {
                let _ = dst.accept_offer(now);
            }
            DestinationEvent::CommitRequested {
                expected_digest: Some(digest),
            } => {
                let _ = dst.report_digest(*digest, now);
            }
            DestinationEvent::CommitRequested {
                expected_digest: None,
            } => {
                let _ = dst.confirm_commit(now);
            }
            _ => {}
        }
        seen.push(ev);
    }
    seen
}

/// Runs every decoder on `data`.
pub fn decode_everything(data: &[u8]) -> Accepted {
    let mut accepted = Accepted::default();

    // 1. The input as a frame stream, clear and protected.
    for protector in [None, Some(false), Some(true)] {
        let mut reader = FrameReader::new();
        if let Some(encrypt) = protector {
            reader.protect(FrameProtector::new(&[0x42; 32], encrypt));
        }
        reader.push(data);
        for _ in 0..64 {
            match reader.next_frame() {
                Ok(Some(h)) => {
                    accepted.frames += 1;
                    if Message::decode(h.msg_type, reader.payload()).is_ok() {
                        accepted.messages += 1;
                    }
                    reader.consume();
                }
                _ => break,
            }
        }
    }

    // 2. The input as a payload: the first byte picks the message type.
    if let Some((&selector, payload)) = data.split_first() {
        let msg_type = MessageType::ALL[usize::from(selector) % MessageType::ALL.len()];
        if Message::decode(msg_type, payload).is_ok() {
            accepted.messages += 1;
        }
        if let Ok(view) = PageRunView::parse(payload) {
            let _ = view.required_capabilities();
            if view.decode().is_ok() {
                accepted.page_runs += 1;
            }
        }
        let _ = CpuDescriptor::decode(&mut Reader::new(payload));
    }

    // 3. The input fed to both sessions.
    let key = PreSharedKey::new([0x42; 32]);
    let now = Instant::from_millis(1);
    let cut = data.len() / 2;
    let mut dst = DestinationSession::new(
        DestinationConfig::new(key.clone(), CpuDescriptor::default(), 1 << 30),
        [1; 32],
        now,
    );
    // Small pieces, so that the destination's caller reacts between frames as it would;
    // pages into guest memory (where delta pages can apply) or, for odd lengths, as events.
    let mut memory = vec![0u8; FUZZ_MEMORY_BYTES];
    for piece in data.chunks(64) {
        if data.len().is_multiple_of(2) {
            dst.handle_input_into(piece, now, &mut memory);
        } else {
            dst.handle_input(piece, now);
        }
        drive_destination(&mut dst, now);
    }
    let identity = VmIdentity {
        uuid: [0; 16],
        name: "fuzz".into(),
        memory_bytes: FUZZ_MEMORY_BYTES as u64,
        vcpu_count: 1,
    };
    let mut src = SourceSession::new(
        SourceConfig::new(key, identity, CpuDescriptor::default()),
        [2; 32],
        now,
    );
    src.handle_input(&data[..cut], now);
    src.handle_input(&data[cut..], now);
    while src.poll_event().is_some() {}
    accepted
}
