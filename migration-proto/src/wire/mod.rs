//! The byte level of the protocol: frame header, message type codes, limits, and the checked
//! little-endian cursor every message decoder is built on.
//!
//! Why a separate layer: everything here is pure parsing of bytes a peer controls. Keeping it
//! apart from the session logic means the fuzz target and the property tests can hammer it
//! directly, and the session code above only ever sees values that passed these checks.

mod cursor;
mod error;
mod header;

pub use cursor::{Reader, Writer};
pub use error::DecodeError;
pub use header::{FRAME_HEADER_LEN, FRAME_MAGIC, FrameFlags, FrameHeader, FrameHeaderRaw};

/// Size of a guest page. The protocol only moves 4 KiB pages; large guest pages are sent as
/// runs of 4 KiB pages.
pub const PAGE_SIZE: usize = 4096;

/// Largest payload a frame may carry. A receiver rejects a header announcing more before it
/// buffers a single payload byte, so a hostile or corrupted length cannot make it allocate.
pub const MAX_PAYLOAD_LEN: u32 = 1024 * 1024;

/// Length of the authentication tag that follows the payload of every frame after the
/// handshake (BLAKE3 keyed hash truncated to 128 bits, or the Poly1305 tag).
pub const TAG_LEN: usize = 16;

/// Largest frame on the wire: header, payload and tag.
pub const MAX_FRAME_LEN: usize = FRAME_HEADER_LEN + MAX_PAYLOAD_LEN as usize + TAG_LEN;

/// Most pages one `Pages` message carries (256 KiB of guest memory). Small enough that a
/// frame is sealed and sent while the next one is encoded, large enough that the per-frame
/// header, sequence number and tag cost is noise.
pub const MAX_PAGES_PER_FRAME: usize = 64;

/// Message type codes (the `msg_type` field of the frame header).
///
/// An unknown code is a decode error, never skipped: a peer that sends something we do not
/// understand is speaking a protocol we did not negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum MessageType {
    /// Source -> destination: versions, capabilities, source nonce.
    Hello = 0x0001,
    /// Destination -> source: chosen version and capabilities, destination nonce and proof.
    HelloReply = 0x0002,
    /// Source -> destination: source proof of the pre-shared key.
    Auth = 0x0003,
    /// Source -> destination: VM identity and CPU compatibility descriptor.
    Offer = 0x0004,
    /// Destination -> source: the VM is accepted, pages may flow.
    Accept = 0x0005,
    /// Source -> destination: a run of consecutive guest pages.
    Pages = 0x0010,
    /// Source -> destination: end of a pre-copy round with its statistics.
    RoundEnd = 0x0011,
    /// Source -> destination: architectural state of one vCPU.
    VcpuState = 0x0012,
    /// Source -> destination: opaque state of one device model.
    DeviceState = 0x0013,
    /// Source -> destination: a run of disk blocks (protocol version 2 and later).
    DiskBlocks = 0x0014,
    /// Source -> destination: BLAKE3 digest over the whole guest memory.
    MemoryDigest = 0x0015,
    /// Source -> destination: migration progress; also the keep-alive.
    Progress = 0x0016,
    /// Source -> destination: the page-digest accumulator (protocol version 3 and later).
    PageDigest = 0x0017,
    /// Source -> destination, before the `Offer`: the disks that migrate (version 3 with
    /// DISK_MIGRATION).
    DiskManifest = 0x0018,
    /// Source -> destination, before `Commit`: one disk's per-region digest (version 3
    /// with DISK_MIGRATION).
    DiskDigest = 0x0019,
    /// Source -> destination: everything was sent, verify and take over.
    Commit = 0x0020,
    /// Destination -> source: verified; the VM is now the destination's.
    CommitAck = 0x0021,
    /// Source -> destination: the source has released the VM; start it.
    Release = 0x0022,
    /// Either direction: the migration failed, with a reason.
    Abort = 0x0030,
    /// Source -> destination: the operator cancelled the migration.
    Cancel = 0x0031,
}

impl MessageType {
    /// Every message type, for tests and the fuzz driver.
    pub const ALL: [MessageType; 20] = [
        MessageType::Hello,
        MessageType::HelloReply,
        MessageType::Auth,
        MessageType::Offer,
        MessageType::Accept,
        MessageType::Pages,
        MessageType::RoundEnd,
        MessageType::VcpuState,
        MessageType::DeviceState,
        MessageType::DiskBlocks,
        MessageType::MemoryDigest,
        MessageType::Progress,
        MessageType::PageDigest,
        MessageType::Commit,
        MessageType::CommitAck,
        MessageType::Release,
        MessageType::Abort,
        MessageType::Cancel,
        // Added with storage migration; at the end so the fuzz corpus's selectors of the
        // others stay what they were.
        MessageType::DiskManifest,
        MessageType::DiskDigest,
    ];

    /// Parses a wire code.
    pub fn from_code(code: u16) -> Result<Self, DecodeError> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| *t as u16 == code)
            .ok_or(DecodeError::UnknownMessageType(code))
    }

    /// The wire code.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// Oldest protocol version in which this message exists.
    pub fn since_version(self) -> u16 {
        match self {
            MessageType::DiskBlocks => 2,
            MessageType::PageDigest | MessageType::DiskManifest | MessageType::DiskDigest => 3,
            _ => 1,
        }
    }
}

impl core::fmt::Display for MessageType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}
