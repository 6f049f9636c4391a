//! Legacy receive and transmit descriptors (8254x SDM 3.2.3 and 3.3.3).
//!
//! Both are 16 bytes: a 64-bit buffer address and a second quadword of fields. The driver
//! moves whole quadwords with volatile accesses so the device never sees a half-written
//! descriptor field it cares about (the address is written before the control word).

use super::hal::DmaRegion;

/// Size of one descriptor in bytes.
pub const DESC_LEN: usize = 16;

/// Receive descriptor status bits (SDM 3.2.3.1).
pub mod rx_status {
    /// Descriptor done: the device has written this descriptor back.
    pub const DD: u8 = 1 << 0;
    /// End of packet: last descriptor of a frame.
    pub const EOP: u8 = 1 << 1;
}

/// Receive descriptor error bits (SDM 3.2.3.2).
pub mod rx_errors {
    /// CRC or alignment error.
    pub const CE: u8 = 1 << 0;
    /// Symbol error.
    pub const SE: u8 = 1 << 1;
    /// Sequence error.
    pub const SEQ: u8 = 1 << 2;
    /// Carrier extension error.
    pub const CXE: u8 = 1 << 4;
    /// TCP/UDP checksum error.
    pub const TCPE: u8 = 1 << 5;
    /// IP checksum error.
    pub const IPE: u8 = 1 << 6;
    /// RX data error.
    pub const RXE: u8 = 1 << 7;
    /// Errors that mean the frame itself is damaged. Checksum-offload errors (TCPE/IPE) are
    /// left to the IP stack, which verifies checksums itself.
    pub const FRAME_DAMAGED: u8 = CE | SE | SEQ | CXE | RXE;
}

/// Transmit descriptor command bits (SDM 3.3.3.1).
pub mod tx_cmd {
    /// End of packet.
    pub const EOP: u8 = 1 << 0;
    /// Insert FCS.
    pub const IFCS: u8 = 1 << 1;
    /// Report status: write back DD when done.
    pub const RS: u8 = 1 << 3;
}

/// Transmit descriptor status bits (SDM 3.3.3.2).
pub mod tx_status {
    /// Descriptor done.
    pub const DD: u8 = 1 << 0;
}

/// A decoded receive descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxDesc {
    /// Buffer physical address.
    pub addr: u64,
    /// Bytes written to the buffer.
    pub length: u16,
    /// Status bits ([`rx_status`]).
    pub status: u8,
    /// Error bits ([`rx_errors`]).
    pub errors: u8,
}

impl RxDesc {
    /// Decode the two quadwords.
    pub fn decode(addr: u64, control: u64) -> Self {
        Self {
            addr,
            length: control as u16,
            status: (control >> 32) as u8,
            errors: (control >> 40) as u8,
        }
    }

    /// Encode the second quadword (checksum and special fields zero).
    pub fn control(&self) -> u64 {
        u64::from(self.length) | (u64::from(self.status) << 32) | (u64::from(self.errors) << 40)
    }
}

/// A decoded transmit descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxDesc {
    /// Buffer physical address.
    pub addr: u64,
    /// Bytes to send from the buffer.
    pub length: u16,
    /// Command bits ([`tx_cmd`]).
    pub cmd: u8,
    /// Status bits ([`tx_status`]).
    pub status: u8,
}

impl TxDesc {
    /// Decode the two quadwords.
    pub fn decode(addr: u64, control: u64) -> Self {
        Self {
            addr,
            length: control as u16,
            cmd: (control >> 24) as u8,
            status: (control >> 32) as u8,
        }
    }

    /// Encode the second quadword (CSO, CSS and special zero).
    pub fn control(&self) -> u64 {
        u64::from(self.length) | (u64::from(self.cmd) << 24) | (u64::from(self.status) << 32)
    }
}

/// Read receive descriptor `index` from a ring region.
pub fn read_rx(ring: &DmaRegion, index: usize) -> RxDesc {
    let base = index * DESC_LEN;
    let control = ring.read_u64(base + 8);
    RxDesc::decode(ring.read_u64(base), control)
}

/// Write receive descriptor `index`: address first, then the control word.
pub fn write_rx(ring: &DmaRegion, index: usize, desc: RxDesc) {
    let base = index * DESC_LEN;
    ring.write_u64(base, desc.addr);
    ring.write_u64(base + 8, desc.control());
}

/// Read transmit descriptor `index` from a ring region.
pub fn read_tx(ring: &DmaRegion, index: usize) -> TxDesc {
    let base = index * DESC_LEN;
    let control = ring.read_u64(base + 8);
    TxDesc::decode(ring.read_u64(base), control)
}

/// Write transmit descriptor `index`: address first, then the control word.
pub fn write_tx(ring: &DmaRegion, index: usize, desc: TxDesc) {
    let base = index * DESC_LEN;
    ring.write_u64(base, desc.addr);
    ring.write_u64(base + 8, desc.control());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_layout_matches_the_sdm() {
        // length at bytes 8-9, status at byte 12, errors at byte 13.
        let control = u64::from_le_bytes([0xea, 0x05, 0xaa, 0xbb, 0x03, 0x01, 0, 0]);
        let desc = RxDesc::decode(0x1234_5000, control);
        assert_eq!(desc.length, 0x05ea);
        assert_eq!(desc.status, rx_status::DD | rx_status::EOP);
        assert_eq!(desc.errors, rx_errors::CE);
    }

    #[test]
    fn tx_layout_matches_the_sdm() {
        let desc = TxDesc {
            addr: 0x2000,
            length: 60,
            cmd: tx_cmd::EOP | tx_cmd::IFCS | tx_cmd::RS,
            status: 0,
        };
        // length at bytes 8-9, CSO byte 10, CMD byte 11, STA byte 12.
        assert_eq!(desc.control().to_le_bytes(), [60, 0, 0, 0x0b, 0, 0, 0, 0]);
        assert_eq!(TxDesc::decode(0x2000, desc.control()), desc);
    }
}
