//! Message payloads: one type per `MessageType`, each with an encoder and a checked decoder.
//!
//! `Message` is the tagged union the sessions exchange. Decoding dispatches on the type code
//! of the (already checked) frame header, reads every field through `wire::Reader`, validates
//! ranges, and insists that the payload is consumed exactly.

mod control;
mod disk;
mod handshake;
mod vcpu;

use alloc::boxed::Box;
use alloc::vec::Vec;

pub use control::{
    Abort, AbortReason, DeviceState, DiskBlocks, MAX_ABORT_DETAIL_LEN, MAX_DEVICE_ID_LEN,
    MAX_DEVICE_STATE_LEN, MAX_DISK_RUN_LEN, MemoryDigestMessage, PageDigestMessage, Progress,
    RoundStats,
};
pub use disk::{
    DiskDescriptor, DiskDigestMessage, DiskManifest, MAX_DISK_NAME_LEN, MAX_DISK_REGIONS,
    MAX_DISKS, MIN_DISK_REGION_BYTES,
};
pub use handshake::{
    AuthProof, Hello, HelloReply, MAX_VCPUS, MAX_VM_NAME_LEN, NONCE_LEN, Offer, PROOF_LEN,
    VmIdentity,
};
pub use vcpu::{
    DescriptorTable, EventKind, MAX_VCPU_MSRS, MAX_XSAVE_LEN, MsrValue, PendingEvent,
    SegmentRegister, VcpuState,
};

use crate::negotiation::Capabilities;
use crate::page_codec::{PageEncoder, PageRunView};
use crate::wire::{DecodeError, MessageType, Reader, Writer};

/// A decoded run of guest pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRun {
    /// Guest-physical address of the first page.
    pub first_gpa: u64,
    /// The pages' contents (a whole number of pages).
    pub data: Vec<u8>,
}

/// Every protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// See `Hello`.
    Hello(Hello),
    /// See `HelloReply`.
    HelloReply(HelloReply),
    /// See `AuthProof`.
    Auth(AuthProof),
    /// See `Offer`.
    Offer(Box<Offer>),
    /// The destination accepts the offered VM.
    Accept,
    /// A run of pages.
    Pages(PageRun),
    /// End of a pre-copy round.
    RoundEnd(RoundStats),
    /// One vCPU's state.
    VcpuState(Box<VcpuState>),
    /// One device's state.
    DeviceState(DeviceState),
    /// A run of disk blocks.
    DiskBlocks(DiskBlocks),
    /// The disks that migrate with the VM (before the `Offer`).
    DiskManifest(DiskManifest),
    /// One disk's per-region digest (before `Commit`).
    DiskDigest(DiskDigestMessage),
    /// Digest of the source memory.
    MemoryDigest(MemoryDigestMessage),
    /// Progress report / keep-alive.
    Progress(Progress),
    /// The page-digest accumulator (version 3).
    PageDigest(PageDigestMessage),
    /// Request to verify and commit.
    Commit,
    /// Verified and committed.
    CommitAck,
    /// The source released the VM.
    Release,
    /// The session failed.
    Abort(Abort),
    /// The operator cancelled.
    Cancel,
}

impl Message {
    /// The type code of this message.
    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::HelloReply(_) => MessageType::HelloReply,
            Message::Auth(_) => MessageType::Auth,
            Message::Offer(_) => MessageType::Offer,
            Message::Accept => MessageType::Accept,
            Message::Pages(_) => MessageType::Pages,
            Message::RoundEnd(_) => MessageType::RoundEnd,
            Message::VcpuState(_) => MessageType::VcpuState,
            Message::DeviceState(_) => MessageType::DeviceState,
            Message::DiskBlocks(_) => MessageType::DiskBlocks,
            Message::DiskManifest(_) => MessageType::DiskManifest,
            Message::DiskDigest(_) => MessageType::DiskDigest,
            Message::MemoryDigest(_) => MessageType::MemoryDigest,
            Message::Progress(_) => MessageType::Progress,
            Message::PageDigest(_) => MessageType::PageDigest,
            Message::Commit => MessageType::Commit,
            Message::CommitAck => MessageType::CommitAck,
            Message::Release => MessageType::Release,
            Message::Abort(_) => MessageType::Abort,
            Message::Cancel => MessageType::Cancel,
        }
    }

    /// Checks that the message respects every limit the decoder enforces, so that what we
    /// send is always something the peer accepts.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Message::Offer(o) => o.validate(),
            Message::VcpuState(s) => s.validate(),
            Message::DeviceState(d) => d.validate(),
            Message::DiskBlocks(d) => d.validate(),
            Message::DiskManifest(m) => m.validate(),
            Message::DiskDigest(d) => d.validate(),
            Message::Pages(p) => crate::page_codec::check_run_shape(p.first_gpa, p.data.len())
                .map_err(|_| DecodeError::InvalidValue {
                    field: "pages.shape",
                    value: p.data.len() as u64,
                }),
            Message::Abort(a) if a.detail.len() > MAX_ABORT_DETAIL_LEN => {
                Err(DecodeError::TooLong {
                    field: "abort.detail",
                    len: a.detail.len(),
                    max: MAX_ABORT_DETAIL_LEN,
                })
            }
            _ => Ok(()),
        }
    }

    /// Appends the payload. Pages are encoded with the encodings `caps` allows; `encoder`
    /// holds the reusable LZ4 state. Call `validate` first for messages built from
    /// caller-supplied data.
    pub fn encode(&self, caps: Capabilities, encoder: &mut PageEncoder, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            Message::Hello(m) => m.encode(&mut w),
            Message::HelloReply(m) => m.encode(&mut w),
            Message::Auth(m) => w.bytes(&m.proof),
            Message::Offer(m) => m.encode(&mut w),
            Message::Pages(p) => {
                // Shape errors were reported by `validate`; an invalid run encodes as nothing
                // and the peer rejects the empty payload.
                let _ = encoder.encode_run(p.first_gpa, &p.data, caps, None, out);
            }
            Message::RoundEnd(m) => m.encode(&mut w),
            Message::VcpuState(m) => m.encode(&mut w),
            Message::DeviceState(m) => m.encode(&mut w),
            Message::DiskBlocks(m) => m.encode(&mut w),
            Message::DiskManifest(m) => m.encode(&mut w),
            Message::DiskDigest(m) => m.encode(&mut w),
            Message::MemoryDigest(m) => m.encode(&mut w),
            Message::Progress(m) => m.encode(&mut w),
            Message::PageDigest(m) => m.encode(&mut w),
            Message::Abort(m) => m.encode(&mut w),
            Message::Accept
            | Message::Commit
            | Message::CommitAck
            | Message::Release
            | Message::Cancel => {}
        }
    }

    /// Decodes the payload of a frame of type `msg_type`. Never panics.
    pub fn decode(msg_type: MessageType, payload: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(payload);
        let msg = match msg_type {
            MessageType::Hello => Message::Hello(Hello::decode(&mut r)?),
            MessageType::HelloReply => Message::HelloReply(HelloReply::decode(&mut r)?),
            MessageType::Auth => Message::Auth(AuthProof {
                proof: r.array("auth.proof")?,
            }),
            MessageType::Offer => Message::Offer(Box::new(Offer::decode(&mut r)?)),
            MessageType::Accept => Message::Accept,
            MessageType::RoundEnd => Message::RoundEnd(RoundStats::decode(&mut r)?),
            MessageType::VcpuState => Message::VcpuState(Box::new(VcpuState::decode(&mut r)?)),
            MessageType::DeviceState => Message::DeviceState(DeviceState::decode(&mut r)?),
            MessageType::DiskBlocks => Message::DiskBlocks(DiskBlocks::decode(&mut r)?),
            MessageType::DiskManifest => Message::DiskManifest(DiskManifest::decode(&mut r)?),
            MessageType::DiskDigest => Message::DiskDigest(DiskDigestMessage::decode(&mut r)?),
            MessageType::MemoryDigest => {
                Message::MemoryDigest(MemoryDigestMessage::decode(&mut r)?)
            }
            MessageType::Progress => Message::Progress(Progress::decode(&mut r)?),
            MessageType::PageDigest => Message::PageDigest(PageDigestMessage::decode(&mut r)?),
            MessageType::Commit => Message::Commit,
            MessageType::CommitAck => Message::CommitAck,
            MessageType::Release => Message::Release,
            MessageType::Abort => Message::Abort(Abort::decode(&mut r)?),
            MessageType::Cancel => Message::Cancel,
            MessageType::Pages => {
                // The run parser checks the exact length itself.
                let view = PageRunView::parse(payload)?;
                return Ok(Message::Pages(PageRun {
                    first_gpa: view.first_gpa(),
                    data: view.decode()?,
                }));
            }
        };
        r.finish()?;
        Ok(msg)
    }
}
