//! A hand-driven source that can send authenticated frames in any order: used to check that
//! the destination enforces the protocol rules rather than relying on a well-behaved peer.

use migration_proto::crypto::{self, FrameProtector, PreSharedKey, Role};
use migration_proto::framing::{FrameReader, FrameWriter};
use migration_proto::message::{AuthProof, Hello, Message, Offer};
use migration_proto::negotiation::{Capabilities, VersionRange};
use migration_proto::page_codec::PageEncoder;
use migration_proto::session::{DestinationEvent, DestinationSession, Instant};
use migration_proto::wire::MessageType;

use super::{KEY, cpu, identity};

pub struct RogueSource {
    pub writer: FrameWriter,
    pub caps: Capabilities,
    /// The session's page-digest key (version 3), to build honest or dishonest digests.
    pub page_digest_key: [u8; 32],
    encoder: PageEncoder,
}

impl RogueSource {
    /// Authenticates against `dst` with the real key and has the offer accepted.
    pub fn connect(
        dst: &mut DestinationSession,
        memory_bytes: u64,
        vcpus: u32,
        offered: Capabilities,
    ) -> Self {
        Self::connect_with_versions(dst, memory_bytes, vcpus, offered, VersionRange::SUPPORTED)
    }

    /// Same, speaking only `versions`.
    pub fn connect_with_versions(
        dst: &mut DestinationSession,
        memory_bytes: u64,
        vcpus: u32,
        offered: Capabilities,
        versions: VersionRange,
    ) -> Self {
        let now = Instant::from_millis(0);
        let key = PreSharedKey::new(KEY);
        let mut writer = FrameWriter::new();
        let hello = Message::Hello(Hello {
            versions,
            offered,
            required: Capabilities::NONE,
            nonce: [9; 32],
        });
        let mut hello_payload = Vec::new();
        hello.encode(
            Capabilities::NONE,
            &mut PageEncoder::new(),
            &mut hello_payload,
        );
        let mut out = Vec::new();
        writer
            .write_with(hello.msg_type(), &mut out, |b| {
                b.extend_from_slice(&hello_payload)
            })
            .unwrap();
        dst.handle_input(&out, now);
        let mut reader = FrameReader::new();
        reader.push(dst.pending_output());
        let n = dst.pending_output().len();
        dst.consume_output(n);
        let header = reader.next_frame().unwrap().expect("hello reply");
        let mut transcript = crypto::transcript_hash(&hello_payload, reader.payload());
        let Message::HelloReply(reply) =
            Message::decode(header.msg_type, reader.payload()).unwrap()
        else {
            panic!("expected HelloReply");
        };
        if reply.version >= MessageType::PageDigest.since_version() {
            // Version 3 binds the handshake to the endpoints; the test link has none.
            transcript = crypto::bind_endpoints(&transcript, None);
        }
        let proof = crypto::proof(&key, Role::Source, &transcript);
        let keys = crypto::session_keys(&key, &transcript);
        let mut rogue = RogueSource {
            writer,
            caps: reply.capabilities,
            page_digest_key: keys.page_digest,
            encoder: PageEncoder::new(),
        };
        rogue.send(dst, &Message::Auth(AuthProof { proof }));
        rogue.writer.protect(FrameProtector::new(
            &keys.source_to_destination,
            reply.capabilities.contains(Capabilities::ENCRYPTION),
        ));
        rogue.send(
            dst,
            &Message::Offer(Box::new(Offer {
                identity: identity(memory_bytes, vcpus),
                cpu: cpu(),
            })),
        );
        assert!(matches!(dst.poll_event(), Some(DestinationEvent::Offer(_))));
        dst.accept_offer(now).unwrap();
        let n = dst.pending_output().len();
        dst.consume_output(n);
        rogue
    }

    pub fn send(&mut self, dst: &mut DestinationSession, msg: &Message) {
        let mut out = Vec::new();
        self.writer
            .write_message(msg, self.caps, &mut self.encoder, &mut out)
            .unwrap();
        dst.handle_input(&out, Instant::from_millis(1));
    }
}
