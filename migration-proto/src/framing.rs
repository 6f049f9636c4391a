//! Framing: turning messages into sealed frames in an output buffer, and a byte stream back
//! into checked, authenticated, in-order frames.
//!
//! Every frame carries a per-direction sequence number starting at 0. Once the session keys
//! exist every frame is tagged; the tag covers the header (hence the sequence number and the
//! length) and the payload. The reader accepts only the next expected sequence number, so a
//! replayed, duplicated, dropped or reordered frame is an error, and a truncated frame never
//! completes (the session reports it on timeout or end of stream).

use alloc::vec::Vec;
use core::fmt;

use crate::crypto::FrameProtector;
use crate::message::Message;
use crate::negotiation::Capabilities;
use crate::page_codec::PageEncoder;
use crate::wire::{
    DecodeError, FRAME_HEADER_LEN, FrameFlags, FrameHeader, MAX_PAYLOAD_LEN, MessageType, TAG_LEN,
};

/// Why the incoming byte stream was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A header or payload did not parse.
    Decode(DecodeError),
    /// A frame's flags are not what the session requires at this point (e.g. an untagged
    /// frame after the handshake, or a clear frame when encryption was negotiated).
    UnexpectedFlags {
        /// Message type of the frame.
        msg_type: MessageType,
        /// Flags required.
        expected: u16,
        /// Flags found.
        found: u16,
    },
    /// The authentication tag did not verify.
    BadTag {
        /// Sequence number claimed by the frame.
        seq: u64,
    },
    /// A valid frame arrived out of order (replayed, duplicated, reordered, or one lost).
    Sequence {
        /// The sequence number expected next.
        expected: u64,
        /// The one received.
        found: u64,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Decode(e) => write!(f, "malformed frame: {e}"),
            FrameError::UnexpectedFlags {
                msg_type,
                expected,
                found,
            } => write!(
                f,
                "{msg_type} frame with flags {found:#x} where {expected:#x} is required"
            ),
            FrameError::BadTag { seq } => write!(f, "frame {seq} failed authentication"),
            FrameError::Sequence { expected, found } => {
                write!(
                    f,
                    "frame {found} received where frame {expected} was expected"
                )
            }
        }
    }
}

impl From<DecodeError> for FrameError {
    fn from(e: DecodeError) -> Self {
        FrameError::Decode(e)
    }
}

/// A payload exceeded `MAX_PAYLOAD_LEN`; nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadTooLarge(pub usize);

fn expected_flags(protector: Option<&FrameProtector>) -> FrameFlags {
    match protector {
        None => FrameFlags::NONE,
        Some(p) if p.encrypts() => FrameFlags::TAGGED.with(FrameFlags::ENCRYPTED),
        Some(_) => FrameFlags::TAGGED,
    }
}

/// Checks, authenticates (decrypting in place) and sequence-checks the frame at the start of
/// `buf`. Returns the header and the frame's total length, or `None` if `buf` does not hold
/// a complete frame yet. After `Ok(Some((h, _)))` the payload is
/// `buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.payload_len]`, in clear.
pub fn open_frame(
    buf: &mut [u8],
    expected_seq: u64,
    protector: Option<&FrameProtector>,
) -> Result<Option<(FrameHeader, usize)>, FrameError> {
    let Some(header) = FrameHeader::parse(buf)? else {
        return Ok(None);
    };
    let expected = expected_flags(protector);
    if header.flags != expected {
        return Err(FrameError::UnexpectedFlags {
            msg_type: header.msg_type,
            expected: expected.bits(),
            found: header.flags.bits(),
        });
    }
    let tag_len = if protector.is_some() { TAG_LEN } else { 0 };
    let total = FRAME_HEADER_LEN + header.payload_len as usize + tag_len;
    if buf.len() < total {
        return Ok(None);
    }
    if let Some(p) = protector {
        let (head, rest) = buf[..total].split_at_mut(FRAME_HEADER_LEN);
        let (payload, tag) = rest.split_at_mut(header.payload_len as usize);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        p.open(header.seq, head, payload, &tag_bytes)
            .map_err(|_| FrameError::BadTag { seq: header.seq })?;
    }
    if header.seq != expected_seq {
        return Err(FrameError::Sequence {
            expected: expected_seq,
            found: header.seq,
        });
    }
    Ok(Some((header, total)))
}

/// Writes the frames of one direction.
#[derive(Default)]
pub struct FrameWriter {
    seq: u64,
    protector: Option<FrameProtector>,
}

impl FrameWriter {
    /// A writer for untagged handshake frames, sequence 0 first.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on every frame is sealed by `protector`.
    pub fn protect(&mut self, protector: FrameProtector) {
        self.protector = Some(protector);
    }

    /// Sequence number of the next frame.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    fn flags(&self) -> FrameFlags {
        expected_flags(self.protector.as_ref())
    }

    /// Appends one frame whose payload `body` appends to the buffer it is given.
    pub fn write_with(
        &mut self,
        msg_type: MessageType,
        out: &mut Vec<u8>,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), PayloadTooLarge> {
        let start = out.len();
        out.resize(start + FRAME_HEADER_LEN, 0);
        body(out);
        let payload_len = out.len() - start - FRAME_HEADER_LEN;
        if payload_len > MAX_PAYLOAD_LEN as usize {
            out.truncate(start);
            return Err(PayloadTooLarge(payload_len));
        }
        let header = FrameHeader {
            msg_type,
            flags: self.flags(),
            payload_len: payload_len as u32,
            seq: self.seq,
        };
        let header_bytes = header.to_bytes();
        out[start..start + FRAME_HEADER_LEN].copy_from_slice(&header_bytes);
        if let Some(p) = &self.protector {
            let tag = p.seal(
                self.seq,
                &header_bytes,
                &mut out[start + FRAME_HEADER_LEN..],
            );
            out.extend_from_slice(&tag);
        }
        self.seq += 1;
        Ok(())
    }

    /// Appends one frame carrying `msg`.
    pub fn write_message(
        &mut self,
        msg: &Message,
        caps: Capabilities,
        encoder: &mut PageEncoder,
        out: &mut Vec<u8>,
    ) -> Result<(), PayloadTooLarge> {
        self.write_with(msg.msg_type(), out, |buf| msg.encode(caps, encoder, buf))
    }
}

/// Reassembles, authenticates and orders the frames of one direction.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    seq: u64,
    protector: Option<FrameProtector>,
    current: Option<(FrameHeader, usize)>,
}

impl FrameReader {
    /// A reader expecting untagged handshake frames, sequence 0 first.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on every frame must be sealed by `protector`.
    pub fn protect(&mut self, protector: FrameProtector) {
        self.protector = Some(protector);
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet consumed as frames (non-zero at end of stream means the
    /// stream was cut inside a frame).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete, authentic, in-order frame, if one has arrived. Its payload is
    /// `payload()` until `consume()`.
    pub fn next_frame(&mut self) -> Result<Option<FrameHeader>, FrameError> {
        if let Some((header, _)) = self.current {
            return Ok(Some(header));
        }
        let opened = open_frame(
            &mut self.buf[self.start..],
            self.seq,
            self.protector.as_ref(),
        )?;
        Ok(opened.map(|(header, total)| {
            self.current = Some((header, total));
            header
        }))
    }

    /// Payload of the current frame (empty if none).
    pub fn payload(&self) -> &[u8] {
        match self.current {
            Some((h, _)) => {
                let at = self.start + FRAME_HEADER_LEN;
                &self.buf[at..at + h.payload_len as usize]
            }
            None => &[],
        }
    }

    /// Drops the current frame and expects the next sequence number.
    pub fn consume(&mut self) {
        if let Some((_, total)) = self.current.take() {
            self.start += total;
            self.seq += 1;
            if self.start == self.buf.len() {
                self.buf.clear();
                self.start = 0;
            } else if self.start >= 256 * 1024 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(protect: bool, encrypt: bool) -> (Vec<u8>, FrameReader) {
        let mut w = FrameWriter::new();
        let mut r = FrameReader::new();
        if protect {
            w.protect(FrameProtector::new(&[1; 32], encrypt));
            r.protect(FrameProtector::new(&[1; 32], encrypt));
        }
        let mut out = Vec::new();
        let mut enc = PageEncoder::new();
        for msg in [Message::Commit, Message::Accept, Message::CommitAck] {
            w.write_message(&msg, Capabilities::NONE, &mut enc, &mut out)
                .unwrap();
        }
        (out, r)
    }

    #[test]
    fn frames_arrive_in_order_byte_by_byte() {
        for (protect, encrypt) in [(false, false), (true, false), (true, true)] {
            let (bytes, mut r) = frames(protect, encrypt);
            let mut got = Vec::new();
            for b in &bytes {
                r.push(core::slice::from_ref(b));
                while let Some(h) = r.next_frame().unwrap() {
                    got.push(h.msg_type);
                    r.consume();
                }
            }
            assert_eq!(
                got,
                [
                    MessageType::Commit,
                    MessageType::Accept,
                    MessageType::CommitAck
                ]
            );
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn replay_reorder_and_tamper_are_detected() {
        let (bytes, mut r) = frames(true, false);
        let one = bytes.len() / 3;
        // Replay frame 0 after frame 0.
        r.push(&bytes[..one]);
        r.push(&bytes[..one]);
        assert!(r.next_frame().unwrap().is_some());
        r.consume();
        assert_eq!(
            r.next_frame(),
            Err(FrameError::Sequence {
                expected: 1,
                found: 0
            })
        );
        // Skip frame 1.
        let (bytes, mut r) = frames(true, true);
        r.push(&bytes[2 * one..]);
        assert_eq!(
            r.next_frame(),
            Err(FrameError::Sequence {
                expected: 0,
                found: 2
            })
        );
        // Flip one tag bit.
        let (mut bytes, mut r) = frames(true, true);
        bytes[one - 1] ^= 0x80;
        r.push(&bytes);
        assert_eq!(r.next_frame(), Err(FrameError::BadTag { seq: 0 }));
        // Untagged frame where tags are required.
        let (plain, _) = frames(false, false);
        let (_, mut r) = frames(true, false);
        r.push(&plain);
        assert!(matches!(
            r.next_frame(),
            Err(FrameError::UnexpectedFlags { .. })
        ));
    }
}
