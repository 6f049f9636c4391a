//! The source end of a session, played by the fuzz harness: it holds the real session keys
//! (from a real handshake with fixed nonces) but sends whatever frames the script asks for,
//! so a fuzzed message reaches the destination's rules instead of failing its tag check.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::cpu::CpuDescriptor;
use crate::crypto::{self, FrameProtector, PreSharedKey, Role};
use crate::framing::{FrameReader, FrameWriter};
use crate::message::{AuthProof, Hello, Message, Offer, VmIdentity};
use crate::negotiation::{Capabilities, VersionRange};
use crate::page_codec::PageEncoder;
use crate::page_digest::PageDigestKey;
use crate::session::{DestinationEvent, DestinationSession, DestinationState, Instant};
use crate::wire::MessageType;

/// The pre-shared key of every fuzz harness.
pub(crate) const FUZZ_KEY: [u8; 32] = [0x42; 32];

/// A source that authenticated with the real key and writes frames of its choosing.
pub(crate) struct ScriptedSource {
    writer: FrameWriter,
    /// The destination's frames, opened with the destination-to-source key.
    replies: FrameReader,
    /// Negotiated version and capabilities.
    pub(crate) version: u16,
    pub(crate) caps: Capabilities,
    pub(crate) page_digest_key: PageDigestKey,
    /// `Accept` and `CommitAck` frames the destination sent.
    pub(crate) accepts: usize,
    pub(crate) commit_acks: usize,
    pub(crate) aborts: usize,
    encoder: PageEncoder,
}

impl ScriptedSource {
    /// Runs the handshake against `dst` (fresh) and has the offer accepted. The parameters
    /// are always ones the destination must accept: anything else is a bug and panics.
    pub(crate) fn connect(
        dst: &mut DestinationSession,
        versions: VersionRange,
        offered: Capabilities,
        identity: VmIdentity,
        now: Instant,
    ) -> Self {
        let key = PreSharedKey::new(FUZZ_KEY);
        let hello = Hello {
            versions,
            offered,
            required: Capabilities::NONE,
            nonce: [2; 32],
        };
        let mut hello_payload = Vec::new();
        hello.encode(&mut crate::wire::Writer::new(&mut hello_payload));
        let mut writer = FrameWriter::new();
        let mut out = Vec::new();
        // A Hello is far below the frame limit.
        let _ = writer.write_with(MessageType::Hello, &mut out, |b| {
            b.extend_from_slice(&hello_payload)
        });
        dst.handle_input(&out, now);
        let mut replies = FrameReader::new();
        replies.push(dst.pending_output());
        dst.consume_output(dst.pending_output().len());
        let reply = match replies.next_frame() {
            Ok(Some(h)) => match Message::decode(h.msg_type, replies.payload()) {
                Ok(Message::HelloReply(reply)) => reply,
                other => panic!("destination answered a valid Hello with {other:?}"),
            },
            other => panic!("destination answered a valid Hello with {other:?}"),
        };
        let mut transcript = crypto::transcript_hash(&hello_payload, replies.payload());
        if reply.version >= crate::wire::MessageType::PageDigest.since_version() {
            // Version 3 binds the handshake to the endpoints; this link has none.
            transcript = crypto::bind_endpoints(&transcript, None);
        }
        replies.consume();
        let keys = crypto::session_keys(&key, &transcript);
        let encrypt = reply.capabilities.contains(Capabilities::ENCRYPTION);
        let mut source = ScriptedSource {
            writer,
            replies,
            version: reply.version,
            caps: reply.capabilities,
            page_digest_key: PageDigestKey(keys.page_digest),
            accepts: 0,
            commit_acks: 0,
            aborts: 0,
            encoder: PageEncoder::new(),
        };
        let proof = crypto::proof(&key, Role::Source, &transcript);
        let auth = source.frame(&Message::Auth(AuthProof { proof }));
        dst.handle_input(&auth, now);
        source
            .writer
            .protect(FrameProtector::new(&keys.source_to_destination, encrypt));
        source
            .replies
            .protect(FrameProtector::new(&keys.destination_to_source, encrypt));
        let offer = source.frame(&Message::Offer(Box::new(Offer {
            identity,
            cpu: CpuDescriptor::default(),
        })));
        dst.handle_input(&offer, now);
        assert!(
            matches!(dst.poll_event(), Some(DestinationEvent::Offer(_))),
            "valid handshake and offer not accepted: {:?}",
            dst.error()
        );
        assert!(dst.accept_offer(now).is_ok());
        assert_eq!(dst.state(), DestinationState::Receiving);
        source
    }

    /// The next frame carrying `msg`, sealed with the next sequence number.
    pub(crate) fn frame(&mut self, msg: &Message) -> Vec<u8> {
        let mut payload = Vec::new();
        msg.encode(self.caps, &mut self.encoder, &mut payload);
        self.frame_raw(msg.msg_type(), &payload)
    }

    /// The next frame of type `msg_type` carrying `payload` as is (empty if the payload is
    /// above the frame limit, which the harness never builds).
    pub(crate) fn frame_raw(&mut self, msg_type: MessageType, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self
            .writer
            .write_with(msg_type, &mut out, |b| b.extend_from_slice(payload));
        out
    }

    /// Reads what the destination wrote. Every frame must open with the session key and
    /// decode, and be one a destination may send after the handshake.
    pub(crate) fn read_replies(&mut self, dst: &mut DestinationSession) {
        self.replies.push(dst.pending_output());
        dst.consume_output(dst.pending_output().len());
        loop {
            let header = match self.replies.next_frame() {
                Ok(Some(h)) => h,
                Ok(None) => return,
                Err(e) => panic!("the destination wrote a frame its peer cannot open: {e}"),
            };
            match Message::decode(header.msg_type, self.replies.payload()) {
                Ok(Message::Accept) => self.accepts += 1,
                Ok(Message::CommitAck) => self.commit_acks += 1,
                Ok(Message::Abort(_)) => self.aborts += 1,
                other => panic!("the destination wrote {other:?} after the handshake"),
            }
            self.replies.consume();
        }
    }
}
