//! Protocol versions and capabilities, and the rules that pick the ones a session uses.
//!
//! Versioning rule: an implementation of version N accepts peers speaking N and N-1. The
//! source announces the range it speaks in `Hello`; the destination picks the highest version
//! both ranges contain, or aborts with `UnsupportedVersion`. A version only ever *adds*
//! message types (see `MessageType::since_version`) or capability bits; a change to an
//! existing layout needs a new message type.

use core::fmt;

/// The newest protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 3;

/// The oldest protocol version this crate still accepts (N-1).
pub const OLDEST_SUPPORTED_VERSION: u16 = PROTOCOL_VERSION - 1;

/// A contiguous range of protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionRange {
    /// Oldest version spoken.
    pub min: u16,
    /// Newest version spoken.
    pub max: u16,
}

impl VersionRange {
    /// What this crate speaks: N-1 ..= N.
    pub const SUPPORTED: VersionRange = VersionRange {
        min: OLDEST_SUPPORTED_VERSION,
        max: PROTOCOL_VERSION,
    };

    /// The highest version in both ranges, if any.
    pub fn highest_common(self, peer: VersionRange) -> Option<u16> {
        let max = self.max.min(peer.max);
        let min = self.min.max(peer.min);
        (min <= max && max >= 1).then_some(max)
    }

    /// Whether `v` is in the range.
    pub fn contains(self, v: u16) -> bool {
        self.min <= v && v <= self.max
    }
}

/// Capability bits negotiated in the handshake. Unknown bits offered by a peer are ignored
/// (masked away by the intersection); bits 6..63 are reserved for later features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Capabilities(u64);

impl Capabilities {
    /// No optional feature.
    pub const NONE: Capabilities = Capabilities(0);
    /// All-zero pages are sent as a 2-byte descriptor without data.
    pub const ZERO_PAGES: Capabilities = Capabilities(1 << 0);
    /// Pages may be LZ4 block-compressed when that is smaller.
    pub const LZ4_PAGES: Capabilities = Capabilities(1 << 1);
    /// Frames after the handshake are ChaCha20-Poly1305 encrypted (otherwise only MACed).
    pub const ENCRYPTION: Capabilities = Capabilities(1 << 2);
    /// Pages sent again may go as the LZ4 block of their XOR with the copy sent before
    /// (version 3; the destination must decode into guest memory).
    pub const DELTA_PAGES: Capabilities = Capabilities(1 << 3);
    /// Reserved: post-copy page requests from the destination (not implemented yet).
    pub const POST_COPY: Capabilities = Capabilities(1 << 4);
    /// Retired: offered by builds before storage migration existed, which accepted
    /// `DiskBlocks` with no rule about them. Never negotiated any more (a peer offering it
    /// alone gets no disk migration); see [`Capabilities::DISK_MIGRATION`].
    pub const DISK_BLOCKS: Capabilities = Capabilities(1 << 5);
    /// Storage migration (version 3): `DiskManifest` before the `Offer`, `DiskBlocks`
    /// of the disks it names, a `DiskDigest` per disk before `Commit`
    /// (docs/migration-protocol.md section 4b).
    pub const DISK_MIGRATION: Capabilities = Capabilities(1 << 6);

    /// The capabilities this crate implements.
    pub const IMPLEMENTED: Capabilities = Capabilities(
        Self::ZERO_PAGES.0
            | Self::LZ4_PAGES.0
            | Self::ENCRYPTION.0
            | Self::DELTA_PAGES.0
            | Self::DISK_MIGRATION.0,
    );

    /// From raw bits (unknown bits kept; intersect with `IMPLEMENTED` to drop them).
    pub const fn from_bits(bits: u64) -> Self {
        Capabilities(bits)
    }

    /// Raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Union.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Intersection.
    pub const fn intersection(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & other.0)
    }

    /// Bits of `self` not in `other`.
    pub const fn difference(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & !other.0)
    }

    /// Whether all bits of `other` are set.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Capabilities, &str); 7] = [
            (Capabilities::ZERO_PAGES, "zero-pages"),
            (Capabilities::LZ4_PAGES, "lz4-pages"),
            (Capabilities::ENCRYPTION, "encryption"),
            (Capabilities::DELTA_PAGES, "delta-pages"),
            (Capabilities::POST_COPY, "post-copy"),
            (Capabilities::DISK_BLOCKS, "disk-blocks"),
            (Capabilities::DISK_MIGRATION, "disk-migration"),
        ];
        let mut first = true;
        let mut rest = self.0;
        for (cap, name) in NAMES {
            if self.contains(cap) {
                write!(f, "{}{name}", if first { "" } else { "," })?;
                first = false;
                rest &= !cap.0;
            }
        }
        if rest != 0 {
            write!(f, "{}bits({rest:#x})", if first { "" } else { "," })?;
        } else if first {
            write!(f, "none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_and_n_minus_one_are_accepted() {
        let us = VersionRange::SUPPORTED;
        let old = VersionRange {
            min: PROTOCOL_VERSION - 2,
            max: PROTOCOL_VERSION - 1,
        };
        assert_eq!(us.highest_common(old), Some(PROTOCOL_VERSION - 1));
        let new = VersionRange {
            min: PROTOCOL_VERSION,
            max: PROTOCOL_VERSION + 1,
        };
        assert_eq!(us.highest_common(new), Some(PROTOCOL_VERSION));
        let far = VersionRange {
            min: PROTOCOL_VERSION + 1,
            max: PROTOCOL_VERSION + 2,
        };
        assert_eq!(us.highest_common(far), None);
        let ancient = VersionRange {
            min: 0,
            max: PROTOCOL_VERSION - 2,
        };
        assert_eq!(us.highest_common(ancient), None);
    }

    #[test]
    fn capabilities_display_names_bits() {
        let c = Capabilities::ZERO_PAGES.union(Capabilities::from_bits(1 << 40));
        assert_eq!(format!("{c}"), "zero-pages,bits(0x10000000000)");
        assert_eq!(format!("{}", Capabilities::NONE), "none");
    }
}
