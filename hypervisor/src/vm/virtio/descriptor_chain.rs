//! Walking a descriptor chain (VIRTIO 1.2 2.7.5) into a list of checked guest buffers.
//!
//! The walk is where a hostile driver gets its chances, so it checks everything before a
//! device touches a byte: every index against its table, the number of descriptors visited
//! against the table size (a `next` loop ends as [`QueueError::ChainLoop`], never as a hang),
//! zero lengths, address overflow, each buffer lying entirely in guest RAM, readable buffers
//! before writable ones (2.7.4.2), and the indirect-descriptor rules (2.7.5.3.1: only when
//! negotiated, never with NEXT, never nested, table length a non-zero multiple of 16).
//! The resulting [`DescriptorChain`] holds plain `(gpa, len, writable)` segments; devices
//! treat them as a readable byte stream followed by a writable one, without assuming any
//! particular framing (2.6.4 "message framing").

use alloc::vec::Vec;

use super::guest_memory::GuestMemory;
use super::queue_error::QueueError;
use super::split_queue::SplitQueue;

/// Descriptor flag: the chain continues at `next` (2.7.5).
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of indirect descriptors (2.7.5.3).
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;

/// Size of one descriptor in guest memory.
pub const DESCRIPTOR_SIZE: u64 = 16;

/// Largest indirect table accepted, in descriptors (Linux uses at most seg_max + 2).
pub const MAX_INDIRECT_DESCRIPTORS: u32 = 1024;

/// One guest buffer of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub gpa: u64,
    /// Length in bytes (non-zero).
    pub len: u32,
    /// Device-writable (otherwise device-readable).
    pub writable: bool,
}

/// A validated chain: its head and its buffers in order, readable ones first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorChain {
    /// The head index, returned in the used ring.
    pub head: u16,
    /// The buffers.
    pub segments: Vec<Segment>,
}

impl DescriptorChain {
    /// Total bytes the device may read.
    pub fn readable_len(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| !s.writable)
            .map(|s| u64::from(s.len))
            .sum()
    }

    /// Total bytes the device may write.
    pub fn writable_len(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.writable)
            .map(|s| u64::from(s.len))
            .sum()
    }
}

#[derive(Clone, Copy)]
struct RawDescriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn read_descriptor(
    mem: &impl GuestMemory,
    table: u64,
    index: u16,
) -> Result<RawDescriptor, QueueError> {
    let mut b = [0u8; DESCRIPTOR_SIZE as usize];
    let gpa = table.wrapping_add(u64::from(index) * DESCRIPTOR_SIZE);
    mem.read(gpa, &mut b)
        .map_err(|access| QueueError::OutsideRam {
            what: "descriptor",
            access,
        })?;
    Ok(RawDescriptor {
        addr: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        flags: u16::from_le_bytes([b[12], b[13]]),
        next: u16::from_le_bytes([b[14], b[15]]),
    })
}

/// Walks the chain starting at `head` of `queue`. `indirect_allowed` is whether
/// VIRTIO_F_INDIRECT_DESC was negotiated.
pub fn walk_chain(
    mem: &impl GuestMemory,
    queue: &SplitQueue,
    head: u16,
    indirect_allowed: bool,
) -> Result<DescriptorChain, QueueError> {
    let mut segments = Vec::new();
    walk_table(
        mem,
        queue.desc_table,
        u32::from(queue.size),
        head,
        Some(indirect_allowed),
        &mut segments,
    )?;
    Ok(DescriptorChain { head, segments })
}

/// Walks one table (the queue's, or an indirect one when `indirect` is `None`).
fn walk_table(
    mem: &impl GuestMemory,
    table: u64,
    table_size: u32,
    head: u16,
    indirect: Option<bool>,
    segments: &mut Vec<Segment>,
) -> Result<(), QueueError> {
    let mut index = head;
    let mut visited = 0u32;
    loop {
        if u32::from(index) >= table_size {
            return Err(QueueError::IndexOutOfRange {
                index,
                size: table_size,
            });
        }
        if visited == table_size {
            return Err(QueueError::ChainLoop {
                head,
                limit: table_size,
            });
        }
        visited += 1;
        let d = read_descriptor(mem, table, index)?;
        if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
            match indirect {
                None => return Err(QueueError::BadIndirect { index }),
                Some(false) => return Err(QueueError::IndirectNotNegotiated { index }),
                Some(true) if d.flags & VIRTQ_DESC_F_NEXT != 0 => {
                    return Err(QueueError::BadIndirect { index });
                }
                Some(true) => {}
            }
            let entries = d.len / DESCRIPTOR_SIZE as u32;
            if d.len == 0
                || !d.len.is_multiple_of(DESCRIPTOR_SIZE as u32)
                || entries > MAX_INDIRECT_DESCRIPTORS
            {
                return Err(QueueError::BadIndirectLength { len: d.len });
            }
            if !mem.is_ram(d.addr, u64::from(d.len)) {
                return Err(QueueError::OutsideRam {
                    what: "indirect descriptor table",
                    access: super::guest_memory::GuestMemoryError {
                        gpa: d.addr,
                        len: u64::from(d.len),
                    },
                });
            }
            // The indirect descriptor ends the chain (it cannot carry NEXT).
            return walk_table(mem, d.addr, entries, 0, None, segments);
        }
        push_segment(mem, index, &d, segments)?;
        if d.flags & VIRTQ_DESC_F_NEXT == 0 {
            return Ok(());
        }
        index = d.next;
    }
}

fn push_segment(
    mem: &impl GuestMemory,
    index: u16,
    d: &RawDescriptor,
    segments: &mut Vec<Segment>,
) -> Result<(), QueueError> {
    if d.len == 0 {
        return Err(QueueError::ZeroLength { index });
    }
    if d.addr.checked_add(u64::from(d.len)).is_none() {
        return Err(QueueError::AddressOverflow { index });
    }
    if !mem.is_ram(d.addr, u64::from(d.len)) {
        return Err(QueueError::OutsideRam {
            what: "buffer",
            access: super::guest_memory::GuestMemoryError {
                gpa: d.addr,
                len: u64::from(d.len),
            },
        });
    }
    let writable = d.flags & VIRTQ_DESC_F_WRITE != 0;
    if !writable && segments.last().is_some_and(|s| s.writable) {
        return Err(QueueError::ReadableAfterWritable { index });
    }
    segments.push(Segment {
        gpa: d.addr,
        len: d.len,
        writable,
    });
    Ok(())
}
