//! Why a snapshot file was refused. Each variant's message is what the operator reads.

use std::fmt;

use migration_proto::wire::DecodeError;

/// A snapshot file that cannot be used, and why.
#[derive(Debug)]
pub enum FormatError {
    /// The file could not be read or written.
    Io(std::io::Error),
    /// The file does not start with the snapshot magic: it is not a tern snapshot.
    NotASnapshot,
    /// The file is a tern snapshot of a format this program does not read.
    UnsupportedVersion(u16),
    /// Preamble flag bits this program does not know.
    UnknownFlags(u16),
    /// The file ends before its end record: cut short (copy interrupted, disk full, writer
    /// killed) or not a finished snapshot.
    Truncated {
        /// Size of the file.
        len: u64,
    },
    /// The digest in the end record does not match the file's contents.
    DigestMismatch,
    /// A record is malformed (the digest matched, so the writer produced it this way).
    BadRecord {
        /// Byte offset of the record.
        offset: usize,
        /// What is wrong.
        why: String,
    },
    /// The guest memory decoded from the file does not have the digest its header records.
    MemoryDigestMismatch,
    /// A disk decoded from the file does not have the content digest its header records.
    DiskDigestMismatch {
        /// The disk's name.
        disk: String,
    },
    /// The snapshot's disks are larger than this program accepts.
    DisksTooLarge {
        /// Their total size in the header.
        bytes: u64,
        /// Largest accepted.
        max: u64,
    },
    /// The snapshot is larger than this program accepts.
    TooLarge {
        /// Guest memory size in the header.
        memory_bytes: u64,
        /// Largest accepted.
        max: u64,
    },
    /// Memory for the guest's RAM could not be allocated.
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Io(e) => write!(f, "{e}"),
            FormatError::NotASnapshot => write!(f, "not a tern snapshot (bad magic)"),
            FormatError::UnsupportedVersion(v) => write!(
                f,
                "snapshot format version {v} is not supported (this program reads versions \
                 {}..={})",
                super::OLDEST_FORMAT_VERSION,
                super::FORMAT_VERSION
            ),
            FormatError::UnknownFlags(bits) => {
                write!(
                    f,
                    "unknown snapshot flags {bits:#06x} (written by a newer program?)"
                )
            }
            FormatError::Truncated { len } => write!(
                f,
                "snapshot is truncated: no end record in its {len} bytes (the copy was cut \
                 short or the writer did not finish); refusing it"
            ),
            FormatError::DigestMismatch => write!(
                f,
                "snapshot digest mismatch: the file was altered or corrupted after it was \
                 written; refusing it"
            ),
            FormatError::BadRecord { offset, why } => {
                write!(f, "malformed snapshot record at byte {offset}: {why}")
            }
            FormatError::MemoryDigestMismatch => write!(
                f,
                "the guest memory in the snapshot does not match the memory digest in its header"
            ),
            FormatError::DiskDigestMismatch { disk } => write!(
                f,
                "disk {disk} in the snapshot does not match the content digest in its header"
            ),
            FormatError::DisksTooLarge { bytes, max } => write!(
                f,
                "snapshot holds {bytes} bytes of disks, more than the {max} accepted"
            ),
            FormatError::TooLarge { memory_bytes, max } => write!(
                f,
                "snapshot holds {memory_bytes} bytes of guest memory, more than the {max} \
                 accepted"
            ),
            FormatError::OutOfMemory { bytes } => {
                write!(f, "cannot allocate {bytes} bytes for the guest memory")
            }
        }
    }
}

impl std::error::Error for FormatError {}

impl From<std::io::Error> for FormatError {
    fn from(e: std::io::Error) -> Self {
        FormatError::Io(e)
    }
}

pub(crate) fn bad_record(offset: usize, why: impl fmt::Display) -> FormatError {
    FormatError::BadRecord {
        offset,
        why: why.to_string(),
    }
}

pub(crate) fn bad_decode(offset: usize, e: DecodeError) -> FormatError {
    bad_record(offset, e)
}
