//! Handshake rules, one scenario each: keys, versions, capabilities, CPU compatibility,
//! frame limits, configuration; what must fail, with which error, the source keeping its VM.

mod common;

use common::rogue::RogueSource;
use common::*;
use migration_proto::cpu::Incompatibility;
use migration_proto::crypto::PreSharedKey;
use migration_proto::framing::FrameError;
use migration_proto::framing::FrameWriter;
use migration_proto::message::{AbortReason, Hello, Message, PageDigestMessage, PageRun};
use migration_proto::negotiation::{Capabilities, PROTOCOL_VERSION, VersionRange};
use migration_proto::page_codec::PageEncoder;
use migration_proto::session::{
    DestinationEvent, DestinationSession, DestinationState, SessionError, SourceSession,
    SourceState, UsageError,
};
use migration_proto::wire::{DecodeError, FRAME_MAGIC, MAX_PAYLOAD_LEN, MessageType, PAGE_SIZE};

#[test]
fn wrong_key_is_refused_and_reveals_nothing() {
    let mut dc = destination_config();
    dc.key = PreSharedKey::new([0x11; 32]);
    let (mut src, mut dst) = connect(source_config(MEM, 1), dc);
    assert_eq!(src_failure(&mut src), SessionError::AuthenticationFailed);
    assert!(matches!(
        dst_failure(&mut dst),
        SessionError::PeerAborted {
            reason: AbortReason::AuthenticationFailed,
            ..
        }
    ));
    // The destination never saw the offer: no event, no identity.
    assert!(dst.identity().is_none());
    assert!(
        !destination_events(&mut dst)
            .iter()
            .any(|e| matches!(e, DestinationEvent::Offer(_)))
    );
}

#[test]
fn impostor_source_without_key_cannot_get_past_auth() {
    let mut sc = source_config(MEM, 1);
    sc.key = PreSharedKey::from_passphrase(b"guess");
    let now = T0;
    let mut dst = DestinationSession::new(destination_config(), [2; 32], now);
    // Drive the impostor by hand: it ignores the bad destination proof and sends its own.
    let mut rogue_dst = DestinationSession::new(
        {
            let mut c = destination_config();
            c.key = sc.key.clone();
            c
        },
        [2; 32],
        now,
    );
    let mut src = SourceSession::new(sc, [1; 32], now);
    let hello = src.pending_output().to_vec();
    dst.handle_input(&hello, now);
    rogue_dst.handle_input(&hello, now);
    // Feed the impostor a reply made with its own key so it sends an Auth frame.
    let reply = rogue_dst.pending_output().to_vec();
    src.handle_input(&reply, now);
    let rest = src.pending_output()[hello.len()..].to_vec();
    dst.handle_input(&rest, now);
    assert_eq!(dst_failure(&mut dst), SessionError::AuthenticationFailed);
    assert!(dst.identity().is_none());
}

#[test]
fn version_n_minus_one_interoperates_and_older_or_newer_is_refused() {
    let mut sc = source_config(MEM, 1);
    sc.versions = VersionRange {
        min: PROTOCOL_VERSION - 1,
        max: PROTOCOL_VERSION - 1,
    };
    let (mut src, dst) = connect(sc, destination_config());
    assert_eq!(src.state(), SourceState::Transferring);
    assert_eq!(dst.negotiated().map(|n| n.0), Some(PROTOCOL_VERSION - 1));
    // N-1 has no page digest: the whole-memory digest is what the commit needs.
    assert!(!src.uses_page_digest());
    src.send_pages(0, &vec![0u8; MEM as usize], T0).unwrap();
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    assert_eq!(src.commit(None, T0), Err(UsageError::DigestRequired));
    assert_eq!(src.state(), SourceState::Transferring);

    for versions in [
        VersionRange {
            min: PROTOCOL_VERSION + 1,
            max: PROTOCOL_VERSION + 3,
        },
        VersionRange {
            min: 0,
            max: PROTOCOL_VERSION - 2,
        },
    ] {
        let mut sc = source_config(MEM, 1);
        sc.versions = versions;
        let (mut src, mut dst) = connect(sc, destination_config());
        assert!(matches!(
            dst_failure(&mut dst),
            SessionError::UnsupportedVersion { .. }
        ));
        assert!(matches!(
            src_failure(&mut src),
            SessionError::PeerAborted {
                reason: AbortReason::UnsupportedVersion,
                ..
            }
        ));
    }
}

#[test]
fn incompatible_cpu_is_refused_with_every_reason() {
    let mut sc = source_config(MEM, 1);
    sc.cpu.xcr0_supported = 0xe7; // AVX-512 state the destination lacks
    sc.cpu.cpuid[2].ebx |= 1 << 16; // AVX512F
    let (mut src, mut dst) = connect(sc, destination_config());
    let SessionError::CpuIncompatible(list) = dst_failure(&mut dst) else {
        panic!("wrong error")
    };
    assert_eq!(list.len(), 2);
    assert!(list.contains(&Incompatibility::MissingXcr0Bits(0xe0)));
    match src_failure(&mut src) {
        SessionError::PeerAborted {
            reason: AbortReason::CpuIncompatible,
            detail,
        } => {
            assert!(detail.contains("XCR0"), "{detail}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn frame_too_large_is_rejected_from_the_header_alone() {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut header = Vec::from(FRAME_MAGIC);
    header.extend_from_slice(&MessageType::Hello.code().to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&(MAX_PAYLOAD_LEN + 1).to_le_bytes());
    header.extend_from_slice(&[0; 12]);
    dst.handle_input(&header, T0);
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::Frame(FrameError::Decode(DecodeError::FrameTooLarge {
            len: MAX_PAYLOAD_LEN + 1,
            max: MAX_PAYLOAD_LEN
        }))
    );
    // The sending side cannot produce one either.
    let mut w = FrameWriter::new();
    let mut out = Vec::new();
    assert!(
        w.write_with(MessageType::DeviceState, &mut out, |b| b
            .resize(b.len() + MAX_PAYLOAD_LEN as usize + 1, 0))
            .is_err()
    );
    assert!(out.is_empty());
}

#[test]
fn state_before_authentication_is_refused() {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut w = FrameWriter::new();
    let mut out = Vec::new();
    w.write_message(
        &Message::VcpuState(Box::new(vcpu_state(0))),
        Capabilities::NONE,
        &mut PageEncoder::new(),
        &mut out,
    )
    .unwrap();
    dst.handle_input(&out, T0);
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::UnexpectedMessage {
            state: "AwaitingHello",
            msg_type: MessageType::VcpuState
        }
    );

    // After a valid Hello, pages before the proof are refused too.
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut w = FrameWriter::new();
    let mut out = Vec::new();
    let hello = Hello {
        versions: VersionRange::SUPPORTED,
        offered: Capabilities::IMPLEMENTED,
        required: Capabilities::NONE,
        nonce: [3; 32],
    };
    let mut enc = PageEncoder::new();
    w.write_message(
        &Message::Hello(hello),
        Capabilities::NONE,
        &mut enc,
        &mut out,
    )
    .unwrap();
    let pages = Message::Pages(PageRun {
        first_gpa: 0,
        data: vec![1; PAGE_SIZE],
    });
    w.write_message(&pages, Capabilities::NONE, &mut enc, &mut out)
        .unwrap();
    dst.handle_input(&out, T0);
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::UnexpectedMessage {
            state: "AwaitingAuth",
            msg_type: MessageType::Pages
        }
    );
}

#[test]
fn required_capability_missing_is_refused() {
    let mut sc = source_config(MEM, 1);
    sc.required = Capabilities::ENCRYPTION;
    let mut dc = destination_config();
    dc.offered = dc.offered.difference(Capabilities::ENCRYPTION);
    let (mut src, mut dst) = connect(sc, dc);
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::MissingCapabilities(Capabilities::ENCRYPTION)
    );
    assert!(matches!(
        src_failure(&mut src),
        SessionError::PeerAborted {
            reason: AbortReason::MissingCapability,
            ..
        }
    ));
}

#[test]
fn source_refuses_invalid_config_incomplete_commit_and_duplicate_state() {
    let mut sc = source_config(MEM + 1, 1);
    sc.identity.name = "x".repeat(65);
    let mut src = SourceSession::new(sc, [1; 32], T0);
    assert!(
        src.pending_output().is_empty(),
        "nothing is sent for an invalid VM"
    );
    assert!(matches!(
        src_failure(&mut src),
        SessionError::InvalidConfig(DecodeError::TooLong { .. })
    ));

    let (mut src, _dst) = connect(source_config(MEM, 2), destination_config());
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    assert_eq!(
        src.send_vcpu_state(&vcpu_state(0), T0),
        Err(UsageError::AlreadySent("vCPU state"))
    );
    assert_eq!(
        src.commit(Some([0; 32]), T0),
        Err(UsageError::MissingVcpuState {
            sent: 1,
            expected: 2
        })
    );
    assert_eq!(src.state(), SourceState::Transferring);
    assert_eq!(
        src.send_vcpu_state(&vcpu_state(2), T0),
        Err(UsageError::OutOfRange)
    );
}

#[test]
fn messages_newer_than_the_negotiated_version_are_refused() {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let n_minus_one = VersionRange {
        min: PROTOCOL_VERSION - 1,
        max: PROTOCOL_VERSION - 1,
    };
    let mut rogue = RogueSource::connect_with_versions(
        &mut dst,
        MEM,
        1,
        Capabilities::IMPLEMENTED,
        n_minus_one,
    );
    rogue.send(
        &mut dst,
        &Message::PageDigest(PageDigestMessage {
            memory_bytes: MEM,
            accumulator: [0; 16],
        }),
    );
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::MessageNotInVersion {
            msg_type: MessageType::PageDigest,
            version: PROTOCOL_VERSION - 1
        }
    );
}

#[test]
fn encrypted_sessions_do_not_leak_page_contents() {
    let marker = b"SECRET-GUEST-DATA-0123456789";
    let mut page = vec![0u8; PAGE_SIZE];
    for (i, chunk) in page.chunks_mut(marker.len()).enumerate() {
        let n = chunk.len();
        chunk.copy_from_slice(&marker[..n]);
        chunk[0] = i as u8; // keep LZ4 from shrinking the marker away
    }
    for (encrypt, leaks) in [(true, false), (false, true)] {
        let mut sc = source_config(MEM, 1);
        sc.offered = Capabilities::ZERO_PAGES; // no LZ4: raw page bytes on the wire
        if encrypt {
            sc.offered = sc.offered.union(Capabilities::ENCRYPTION);
        }
        let (mut src, _dst) = connect(sc, destination_config());
        src.send_pages(0, &page, T0).unwrap();
        let wire = src.pending_output();
        let found = wire.windows(20).any(|w| w == &marker[1..21]);
        assert_eq!(found, leaks, "encrypt = {encrypt}");
    }
}

#[test]
fn a_handshake_redirected_to_another_key_holder_fails() {
    use migration_proto::crypto::Endpoints;
    // alpha (10.0.0.1:49152) dials beta (10.0.0.2:4444); someone on the path redirects the
    // connection to gamma (10.0.0.3:4444), which holds the same key.
    let dialed = Endpoints {
        source: ([10, 0, 0, 1], 49152),
        destination: ([10, 0, 0, 2], 4444),
    };
    let seen_by_gamma = Endpoints {
        destination: ([10, 0, 0, 3], 4444),
        ..dialed
    };
    let mut sc = source_config(MEM, 1);
    sc.endpoints = Some(dialed);
    let mut dc = destination_config();
    dc.endpoints = Some(seen_by_gamma);
    let (mut src, dst) = connect(sc, dc);
    assert_eq!(src_failure(&mut src), SessionError::AuthenticationFailed);
    assert!(dst.identity().is_none(), "no VM data reached gamma");
    assert_ne!(dst.state(), DestinationState::Receiving);

    // The real beta sees the same endpoints: the handshake completes.
    let mut sc = source_config(MEM, 1);
    sc.endpoints = Some(dialed);
    let mut dc = destination_config();
    dc.endpoints = Some(dialed);
    let (src, _dst) = connect(sc, dc);
    assert_eq!(src.state(), SourceState::Transferring);

    // Version 2 peers are not bound (documented): the same redirection goes unnoticed there.
    let mut sc = source_config(MEM, 1);
    sc.endpoints = Some(dialed);
    sc.versions = VersionRange {
        min: PROTOCOL_VERSION - 1,
        max: PROTOCOL_VERSION - 1,
    };
    let mut dc = destination_config();
    dc.endpoints = Some(seen_by_gamma);
    let (src, _dst) = connect(sc, dc);
    assert_eq!(src.state(), SourceState::Transferring);
}
