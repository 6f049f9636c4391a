//! A peer that trickles bytes must not hold the destination's only incoming slot: every
//! byte resets the idle timer, so the handshake has one deadline for all of it and every
//! frame a deadline of its own (issue 13, item 2).

mod common;

use common::rogue::RogueSource;
use common::*;
use migration_proto::framing::FrameWriter;
use migration_proto::message::{AbortReason, Hello, Message, Progress};
use migration_proto::negotiation::{Capabilities, VersionRange};
use migration_proto::page_codec::PageEncoder;
use migration_proto::session::{
    DEFAULT_HANDSHAKE_TIMEOUT, DestinationSession, DestinationState, Instant, SessionError,
};

/// Feeds `bytes` one byte every `gap_ms`, firing timeouts like the engine does; returns the
/// time at which the session failed, if it did.
fn trickle(dst: &mut DestinationSession, bytes: &[u8], start_ms: u64, gap_ms: u64) -> Option<u64> {
    let mut t = start_ms;
    for b in bytes {
        t += gap_ms;
        let now = Instant::from_millis(t);
        if dst.poll_timeout().is_some_and(|d| now >= d) {
            dst.handle_timeout(now);
        }
        if dst.state() == DestinationState::Failed {
            return Some(t);
        }
        dst.handle_input(&[*b], now);
    }
    None
}

fn hello_frame() -> Vec<u8> {
    let hello = Message::Hello(Hello {
        versions: VersionRange::SUPPORTED,
        offered: Capabilities::NONE,
        required: Capabilities::NONE,
        nonce: [7; 32],
    });
    let mut out = Vec::new();
    FrameWriter::new()
        .write_message(
            &hello,
            Capabilities::NONE,
            &mut PageEncoder::new(),
            &mut out,
        )
        .unwrap();
    out
}

#[test]
fn hello_trickled_a_byte_every_few_seconds_fails_at_the_handshake_deadline() {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    // 3 s per byte stays under the 10 s idle timeout forever; the hello is ~100 bytes.
    let failed_at = trickle(&mut dst, &hello_frame(), 0, 3000).expect("session must fail");
    let deadline = DEFAULT_HANDSHAKE_TIMEOUT.as_millis() as u64;
    assert!(
        failed_at <= deadline + 3000,
        "failed at {failed_at} ms, handshake budget {deadline} ms"
    );
    assert!(matches!(
        dst_failure(&mut dst),
        SessionError::TooSlow {
            state: "AwaitingHello",
            ..
        }
    ));
    // The peer is told why.
    assert!(!dst.pending_output().is_empty());
    assert_eq!(
        SessionError::TooSlow {
            what: "",
            state: ""
        }
        .abort_reason(),
        AbortReason::Timeout
    );
}

#[test]
fn silent_connection_fails_at_the_handshake_deadline_too() {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let deadline = dst.poll_timeout().expect("a deadline while awaiting hello");
    assert!(deadline <= T0 + DEFAULT_HANDSHAKE_TIMEOUT);
    dst.handle_timeout(deadline);
    assert_eq!(dst.state(), DestinationState::Failed);
}

#[test]
fn a_frame_trickled_after_the_handshake_fails_at_the_frame_deadline() {
    let mut cfg = destination_config();
    cfg.frame_timeout = std::time::Duration::from_secs(20);
    let mut dst = DestinationSession::new(cfg, [2; 32], T0);
    let mut rogue = RogueSource::connect(&mut dst, MEM, 1, Capabilities::NONE);
    let mut frame = Vec::new();
    rogue
        .writer
        .write_message(
            &Message::Progress(Progress::default()),
            rogue.caps,
            &mut PageEncoder::new(),
            &mut frame,
        )
        .unwrap();
    // 5 s per byte: never idle for 10 s, but the frame is not done after 20 s.
    let failed_at = trickle(&mut dst, &frame, 1000, 5000).expect("session must fail");
    assert!(
        failed_at <= 1000 + 5000 + 20_000 + 5000,
        "failed at {failed_at} ms"
    );
    assert!(matches!(
        dst_failure(&mut dst),
        SessionError::TooSlow {
            state: "Receiving",
            ..
        }
    ));
}

#[test]
fn frames_delivered_in_time_never_trip_the_frame_deadline() {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut rogue = RogueSource::connect(&mut dst, MEM, 1, Capabilities::NONE);
    // A keep-alive every 5 s for two minutes, each frame arriving whole.
    for i in 1..24u64 {
        let now = Instant::from_millis(i * 5000);
        if dst.poll_timeout().is_some_and(|d| now >= d) {
            dst.handle_timeout(now);
        }
        let mut frame = Vec::new();
        rogue
            .writer
            .write_message(
                &Message::Progress(Progress::default()),
                rogue.caps,
                &mut PageEncoder::new(),
                &mut frame,
            )
            .unwrap();
        dst.handle_input(&frame, now);
        while dst.poll_event().is_some() {}
        assert_eq!(dst.state(), DestinationState::Receiving, "at {i}");
    }
}
