//! Session errors (why a migration ended) and usage errors (a call the session refused).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::cpu::Incompatibility;
use crate::digest::Digest;
use crate::framing::FrameError;
use crate::message::AbortReason;
use crate::negotiation::{Capabilities, VersionRange};
use crate::page_codec::PageRunError;
use crate::wire::{DecodeError, MessageType};

/// Why a session failed. After any of these on the source, the source still owns the VM
/// and resumes it (unless the session had completed, which is not an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The peer's bytes were malformed, unauthenticated or out of order.
    Frame(FrameError),
    /// A well-formed message arrived in a state where it is not allowed.
    UnexpectedMessage {
        /// Session state.
        state: &'static str,
        /// Message received.
        msg_type: MessageType,
    },
    /// The message does not exist in the negotiated protocol version.
    MessageNotInVersion {
        /// Message received.
        msg_type: MessageType,
        /// Negotiated version.
        version: u16,
    },
    /// No protocol version both sides speak.
    UnsupportedVersion {
        /// Our range.
        ours: VersionRange,
        /// The peer's range (or the single version it chose).
        peer: VersionRange,
    },
    /// Capabilities one side requires are not available in the session.
    MissingCapabilities(Capabilities),
    /// The peer chose capabilities we did not offer.
    CapabilityNotOffered(Capabilities),
    /// The peer sent data in an encoding, or a message, whose capability was not negotiated.
    EncodingNotNegotiated(Capabilities),
    /// The peer's key proof was wrong: it does not hold the pre-shared key.
    AuthenticationFailed,
    /// The guest's CPU cannot run on this host; every reason is listed.
    CpuIncompatible(Vec<Incompatibility>),
    /// The VM needs more memory than this host allows.
    VmTooLarge {
        /// Memory of the VM.
        memory_bytes: u64,
        /// Limit of this host.
        limit: u64,
    },
    /// The local operator or policy refused the VM.
    Rejected(String),
    /// The peer aborted.
    PeerAborted {
        /// Its reason.
        reason: AbortReason,
        /// Its explanation.
        detail: String,
    },
    /// The source's operator cancelled the migration.
    PeerCancelled,
    /// We cancelled the migration.
    Cancelled,
    /// Pages outside the VM's memory.
    PageOutOfRange {
        /// First address of the run.
        first_gpa: u64,
        /// Length of the run.
        len: u64,
        /// VM memory size.
        memory_bytes: u64,
    },
    /// State for a vCPU the VM does not have.
    VcpuOutOfRange {
        /// vCPU index.
        index: u32,
        /// vCPU count of the VM.
        count: u32,
    },
    /// The same vCPU, device or digest was sent twice.
    Duplicate(&'static str),
    /// Data arrived after the memory digest / commit (it would not be covered by the check).
    AfterCommit(MessageType),
    /// `Commit` arrived without a memory digest.
    MissingDigest,
    /// `Commit` arrived before the state of every vCPU.
    MissingVcpuState {
        /// vCPUs received.
        received: u32,
        /// vCPUs expected.
        expected: u32,
    },
    /// The digest message covers a different memory size than the offered VM.
    DigestSizeMismatch {
        /// Size in the digest message.
        digest_bytes: u64,
        /// Size of the VM.
        memory_bytes: u64,
    },
    /// The destination's memory differs from the source's.
    DigestMismatch {
        /// The source's digest.
        expected: Digest,
        /// The destination's digest.
        computed: Digest,
    },
    /// Version 3: `Commit` arrived while some pages had never been received.
    MissingPages {
        /// Pages never received.
        missing: u64,
        /// Address of the first of them.
        first_gpa: u64,
    },
    /// Version 3: the destination's page-digest accumulator differs from the source's: some
    /// page in the destination's memory is not the page the source sent last.
    PageDigestMismatch,
    /// The manifest's disks need more room than this host has for incoming disks.
    NoRoomForDisks {
        /// Bytes the disks need.
        needed: u64,
        /// Bytes this host can take.
        available: u64,
    },
    /// Disk blocks, a disk digest or a manifest entry names a disk the manifest does not
    /// have (or a disk message arrived with no manifest).
    UnknownDisk(u32),
    /// Disk blocks of another block size than the disk's, or outside the disk.
    DiskBlocksOutOfRange {
        /// The disk.
        disk_id: u32,
        /// First block address of the run.
        first_lba: u64,
        /// Bytes in the run.
        len: u64,
    },
    /// A disk digest whose size or region size is not the manifest disk's.
    DiskDigestShape(u32),
    /// `Commit` without the digest of every disk in the manifest.
    MissingDiskDigest(u32),
    /// `Commit` while some blocks of a disk were never received.
    MissingDiskBlocks {
        /// The disk.
        disk_id: u32,
        /// Blocks never received.
        missing: u64,
        /// The first of them.
        first_lba: u64,
    },
    /// A region of a disk differs from what the source sent last.
    DiskDigestMismatch {
        /// The disk.
        disk_id: u32,
        /// The region's first byte on the disk.
        offset: u64,
        /// The region's length.
        len: u64,
    },
    /// This host has no memory left for the session's bookkeeping (a local failure).
    OutOfMemory {
        /// What could not be allocated.
        what: &'static str,
        /// How many bytes it needed.
        bytes: u64,
    },
    /// The caller's guest memory does not back these addresses (a local failure).
    GuestMemoryUnavailable {
        /// First address.
        gpa: u64,
        /// Length.
        len: u64,
    },
    /// The local configuration breaks a protocol limit; nothing was sent.
    InvalidConfig(DecodeError),
    /// The peer stayed silent longer than the idle timeout.
    Timeout {
        /// State we were in.
        state: &'static str,
    },
    /// The peer trickled bytes: the handshake or one frame took longer than allowed.
    TooSlow {
        /// What took too long.
        what: &'static str,
        /// State we were in.
        state: &'static str,
    },
    /// The connection ended.
    ConnectionClosed {
        /// Bytes of an incomplete frame left (truncation) or 0.
        partial_frame_bytes: usize,
    },
    /// The destination acknowledged the commit but did not hear that the source released
    /// the VM: the VM must not run here until the source's operator confirms the source
    /// completed (it did if and only if it received the acknowledgement).
    InDoubt(Box<SessionError>),
}

impl SessionError {
    /// The abort reason sent to the peer for this error.
    pub fn abort_reason(&self) -> AbortReason {
        match self {
            SessionError::Frame(_) => AbortReason::BadFrame,
            SessionError::UnsupportedVersion { .. } => AbortReason::UnsupportedVersion,
            SessionError::MissingCapabilities(_) | SessionError::CapabilityNotOffered(_) => {
                AbortReason::MissingCapability
            }
            SessionError::AuthenticationFailed => AbortReason::AuthenticationFailed,
            SessionError::CpuIncompatible(_) => AbortReason::CpuIncompatible,
            SessionError::VmTooLarge { .. }
            | SessionError::OutOfMemory { .. }
            | SessionError::NoRoomForDisks { .. } => AbortReason::ResourceExhausted,
            SessionError::Rejected(_) => AbortReason::Rejected,
            SessionError::DigestMismatch { .. }
            | SessionError::PageDigestMismatch
            | SessionError::DiskDigestMismatch { .. } => AbortReason::DigestMismatch,
            SessionError::Timeout { .. } | SessionError::TooSlow { .. } => AbortReason::Timeout,
            SessionError::GuestMemoryUnavailable { .. } => AbortReason::Internal,
            SessionError::Cancelled | SessionError::PeerCancelled => AbortReason::Unspecified,
            _ => AbortReason::ProtocolViolation,
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Frame(e) => write!(f, "{e}"),
            SessionError::UnexpectedMessage { state, msg_type } => {
                write!(f, "unexpected {msg_type} message in state {state}")
            }
            SessionError::MessageNotInVersion { msg_type, version } => {
                write!(
                    f,
                    "{msg_type} message does not exist in protocol version {version}"
                )
            }
            SessionError::UnsupportedVersion { ours, peer } => write!(
                f,
                "no common protocol version: we speak {}..={}, the peer {}..={}",
                ours.min, ours.max, peer.min, peer.max
            ),
            SessionError::MissingCapabilities(c) => write!(f, "required capabilities missing: {c}"),
            SessionError::CapabilityNotOffered(c) => {
                write!(f, "peer chose capabilities we did not offer: {c}")
            }
            SessionError::EncodingNotNegotiated(c) => {
                write!(f, "peer used an encoding or message not negotiated: {c}")
            }
            SessionError::AuthenticationFailed => write!(
                f,
                "authentication failed: the peer does not hold the migration key, or it is not \
                 the host at the address dialed (redirected, or a NAT in between)"
            ),
            SessionError::CpuIncompatible(list) => {
                write!(f, "CPU incompatible ({} problems)", list.len())?;
                for (i, item) in list.iter().enumerate() {
                    write!(f, "{} {item}", if i == 0 { ":" } else { ";" })?;
                }
                Ok(())
            }
            SessionError::VmTooLarge {
                memory_bytes,
                limit,
            } => {
                write!(
                    f,
                    "VM needs {memory_bytes} bytes of memory, this host allows {limit}"
                )
            }
            SessionError::Rejected(why) => write!(f, "rejected: {why}"),
            SessionError::PeerAborted { reason, detail } => {
                write!(f, "peer aborted ({reason}): {detail}")
            }
            SessionError::PeerCancelled => write!(f, "the source cancelled the migration"),
            SessionError::Cancelled => write!(f, "migration cancelled"),
            SessionError::PageOutOfRange {
                first_gpa,
                len,
                memory_bytes,
            } => write!(
                f,
                "pages {first_gpa:#x}+{len:#x} outside guest memory of {memory_bytes:#x} bytes"
            ),
            SessionError::VcpuOutOfRange { index, count } => {
                write!(f, "state for vCPU {index} of a {count}-vCPU VM")
            }
            SessionError::Duplicate(what) => write!(f, "{what} sent twice"),
            SessionError::AfterCommit(t) => {
                write!(f, "{t} message after the memory digest or commit")
            }
            SessionError::MissingDigest => write!(f, "commit requested without a memory digest"),
            SessionError::MissingVcpuState { received, expected } => {
                write!(
                    f,
                    "commit requested with {received} of {expected} vCPU states"
                )
            }
            SessionError::DigestSizeMismatch {
                digest_bytes,
                memory_bytes,
            } => write!(
                f,
                "memory digest covers {digest_bytes} bytes, the VM has {memory_bytes}"
            ),
            SessionError::DigestMismatch { .. } => write!(
                f,
                "memory digest mismatch: destination memory differs from the source"
            ),
            SessionError::MissingPages { missing, first_gpa } => write!(
                f,
                "commit requested while {missing} pages were never received (first at {first_gpa:#x})"
            ),
            SessionError::PageDigestMismatch => write!(
                f,
                "page digest mismatch: destination memory differs from what the source sent"
            ),
            SessionError::NoRoomForDisks { needed, available } => write!(
                f,
                "no disk backend with room: the VM's disks need {needed} bytes, this host has \
                 {available} for incoming disks"
            ),
            SessionError::UnknownDisk(id) => write!(f, "disk {id} is not in the disk manifest"),
            SessionError::DiskBlocksOutOfRange {
                disk_id,
                first_lba,
                len,
            } => write!(
                f,
                "disk {disk_id}: blocks from {first_lba} ({len} bytes) do not fit the disk or its \
                 block size"
            ),
            SessionError::DiskDigestShape(id) => write!(
                f,
                "disk {id}: digest for another disk size or region size than the manifest's"
            ),
            SessionError::MissingDiskDigest(id) => {
                write!(f, "commit requested without the digest of disk {id}")
            }
            SessionError::MissingDiskBlocks {
                disk_id,
                missing,
                first_lba,
            } => write!(
                f,
                "commit requested while {missing} blocks of disk {disk_id} were never received \
                 (first: block {first_lba})"
            ),
            SessionError::DiskDigestMismatch {
                disk_id,
                offset,
                len,
            } => write!(
                f,
                "disk digest mismatch: disk {disk_id} bytes {offset:#x}+{len:#x} differ from what \
                 the source sent"
            ),
            SessionError::OutOfMemory { what, bytes } => {
                write!(f, "out of host memory for the {what} ({bytes} bytes)")
            }
            SessionError::GuestMemoryUnavailable { gpa, len } => {
                write!(
                    f,
                    "guest memory {gpa:#x}+{len:#x} is not backed on this host"
                )
            }
            SessionError::InvalidConfig(e) => write!(f, "invalid migration configuration: {e}"),
            SessionError::Timeout { state } => {
                write!(f, "peer silent for too long in state {state}")
            }
            SessionError::TooSlow { what, state } => {
                write!(f, "peer too slow: {what} (state {state})")
            }
            SessionError::ConnectionClosed {
                partial_frame_bytes: 0,
            } => write!(f, "connection closed"),
            SessionError::ConnectionClosed {
                partial_frame_bytes,
            } => {
                write!(
                    f,
                    "connection closed inside a frame ({partial_frame_bytes} bytes of it received)"
                )
            }
            SessionError::InDoubt(cause) => write!(
                f,
                "commit acknowledged but release not received ({cause}): check the source before starting the VM"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SessionError {}

/// A call the session refused; the session itself is unaffected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageError {
    /// The operation is not possible in the current state.
    WrongState {
        /// Operation attempted.
        operation: &'static str,
        /// Current state.
        state: &'static str,
    },
    /// The output buffer is above its limit: write it to the socket first.
    OutputFull,
    /// The data breaks a protocol limit.
    Invalid(DecodeError),
    /// The page run cannot be sent as one message.
    PageRun(PageRunError),
    /// The pages lie outside the VM's memory.
    OutOfRange,
    /// The message needs a capability the session did not negotiate.
    NotNegotiated(Capabilities),
    /// The message needs a newer protocol version than negotiated.
    NotInVersion(MessageType),
    /// This item was already sent in this session.
    AlreadySent(&'static str),
    /// `commit` before the state of every vCPU was sent.
    MissingVcpuState {
        /// vCPU states sent.
        sent: usize,
        /// vCPUs of the VM.
        expected: usize,
    },
    /// `commit` while pages declared dirty (`mark_dirty`) were not sent again: the
    /// destination would resume on stale copies.
    StalePages {
        /// Pages dirty and not re-sent.
        count: usize,
        /// The first of them.
        first_pfn: usize,
    },
    /// `commit` while blocks of a disk were never sent (the bulk pass is not finished).
    DiskNotCopied {
        /// The disk.
        disk_id: u32,
        /// The first block never sent.
        first_lba: u64,
    },
    /// `commit` while blocks declared dirty (`mark_disk_dirty`) were not sent again.
    StaleDiskBlocks {
        /// The disk.
        disk_id: u32,
        /// Blocks dirty and not re-sent.
        count: usize,
        /// The first of them.
        first_lba: usize,
    },
    /// `commit` without a whole-memory digest in a version-2 session (which has no page
    /// digest to verify with).
    DigestRequired,
    /// The bitmap does not cover the VM's memory page for page.
    BitmapSize {
        /// Pages in the bitmap.
        pages: usize,
        /// Pages of the VM.
        expected: usize,
    },
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::WrongState { operation, state } => {
                write!(f, "cannot {operation} in state {state}")
            }
            UsageError::OutputFull => write!(f, "output buffer full; send pending bytes first"),
            UsageError::Invalid(e) => write!(f, "invalid message: {e}"),
            UsageError::PageRun(e) => write!(f, "invalid page run: {e}"),
            UsageError::OutOfRange => write!(f, "pages outside the VM's memory"),
            UsageError::NotNegotiated(c) => write!(f, "capability not negotiated: {c}"),
            UsageError::NotInVersion(t) => write!(f, "{t} needs a newer protocol version"),
            UsageError::AlreadySent(what) => write!(f, "{what} was already sent"),
            UsageError::MissingVcpuState { sent, expected } => {
                write!(f, "commit with {sent} of {expected} vCPU states sent")
            }
            UsageError::StalePages { count, first_pfn } => write!(
                f,
                "commit with {count} dirty pages not sent again (first: page {first_pfn:#x})"
            ),
            UsageError::DiskNotCopied { disk_id, first_lba } => write!(
                f,
                "commit before every block of disk {disk_id} was sent (first missing: {first_lba})"
            ),
            UsageError::StaleDiskBlocks {
                disk_id,
                count,
                first_lba,
            } => write!(
                f,
                "commit with {count} dirty blocks of disk {disk_id} not sent again (first: \
                 {first_lba})"
            ),
            UsageError::DigestRequired => write!(
                f,
                "a version-2 peer needs the whole-memory digest to commit"
            ),
            UsageError::BitmapSize { pages, expected } => write!(
                f,
                "dirty bitmap of {pages} pages for a VM of {expected} pages"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UsageError {}
