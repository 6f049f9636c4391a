//! How large the e1000's frames are: receive buffer size (RCTL.BSIZE/BSEX) and long-packet
//! reception (RCTL.LPE) chosen from the configured MTU.
//!
//! Why one buffer per frame: the 82540EM can spread a long frame over several receive
//! descriptors, but then the driver has to reassemble it, and a frame that finds too few
//! free descriptors is cut. Choosing the smallest buffer size that holds the largest frame
//! keeps the ring logic "one descriptor, one frame" at every MTU; the cost is memory (128
//! receive buffers of 16 KiB at MTU 9000, 2 MiB), which a hypervisor host has.
//!
//! Sources (8254x SDM rev. 4.0): 13.4.22 (RCTL: LPE bit 5, BSIZE bits 17:16, BSEX bit 25,
//! table 13-67 for the size encodings; without LPE the MAC discards frames longer than 1522
//! bytes including the VLAN tag and FCS, with LPE it accepts up to 16384).

use super::regs::rctl;
use crate::net::nic::{STANDARD_MTU, frame_len_for_mtu};

/// Bytes of the frame check sequence the MAC counts against the buffer (it is stripped
/// with RCTL.SECRC, but sizing for it keeps the choice right either way).
const FCS_LEN: usize = 4;

/// A receive buffer size the 82540EM supports with BSEX, in bytes, as RCTL bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxBufferSize {
    /// BSIZE = 00, BSEX = 0.
    B2048,
    /// BSIZE = 11, BSEX = 1.
    B4096,
    /// BSIZE = 10, BSEX = 1.
    B8192,
    /// BSIZE = 01, BSEX = 1.
    B16384,
}

impl RxBufferSize {
    /// The smallest size that holds a frame of `max_frame_len` bytes (no FCS) plus its FCS;
    /// `None` if even 16 KiB does not.
    pub fn for_frame(max_frame_len: usize) -> Option<Self> {
        let needed = max_frame_len.checked_add(FCS_LEN)?;
        [Self::B2048, Self::B4096, Self::B8192, Self::B16384]
            .into_iter()
            .find(|size| size.bytes() >= needed)
    }

    /// The size in bytes.
    pub fn bytes(self) -> usize {
        match self {
            Self::B2048 => 2048,
            Self::B4096 => 4096,
            Self::B8192 => 8192,
            Self::B16384 => 16384,
        }
    }

    /// The RCTL bits (BSIZE, BSEX) that select this size.
    pub fn rctl_bits(self) -> u32 {
        match self {
            Self::B2048 => rctl::BSIZE_2048,
            Self::B4096 => rctl::BSEX | (0b11 << rctl::BSIZE_SHIFT),
            Self::B8192 => rctl::BSEX | (0b10 << rctl::BSIZE_SHIFT),
            Self::B16384 => rctl::BSEX | (0b01 << rctl::BSIZE_SHIFT),
        }
    }
}

/// The frame geometry of one MTU: what RCTL gets and how large the buffers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSize {
    /// The largest frame sent or accepted, header included, FCS excluded.
    pub max_frame_len: usize,
    /// Receive buffer size.
    pub rx_buffer: RxBufferSize,
    /// Bytes per transmit buffer: the largest frame rounded up to 16 bytes (the transmit
    /// side has no size encoding; any buffer that holds the frame will do).
    pub tx_buffer_len: usize,
    /// Whether RCTL.LPE must be set: frames above the standard size are otherwise
    /// discarded by the MAC.
    pub long_packets: bool,
}

impl FrameSize {
    /// The geometry for `mtu`; `None` if no receive buffer holds such a frame.
    pub fn for_mtu(mtu: usize) -> Option<Self> {
        let max_frame_len = frame_len_for_mtu(mtu);
        Some(Self {
            max_frame_len,
            rx_buffer: RxBufferSize::for_frame(max_frame_len)?,
            tx_buffer_len: max_frame_len.next_multiple_of(16),
            long_packets: mtu > STANDARD_MTU,
        })
    }

    /// The RCTL bits this geometry contributes (buffer size, LPE).
    pub fn rctl_bits(&self) -> u32 {
        let lpe = if self.long_packets { rctl::LPE } else { 0 };
        self.rx_buffer.rctl_bits() | lpe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_mtu_keeps_2_kib_buffers_without_lpe() {
        let size = FrameSize::for_mtu(1500).unwrap();
        assert_eq!(size.max_frame_len, 1514);
        assert_eq!(size.rx_buffer, RxBufferSize::B2048);
        assert!(!size.long_packets);
        assert_eq!(size.rctl_bits(), 0);
        assert_eq!(size.tx_buffer_len, 1520);
    }

    #[test]
    fn jumbo_mtu_takes_the_smallest_buffer_that_fits_with_lpe() {
        let cases = [
            (576, RxBufferSize::B2048, false),
            (2030, RxBufferSize::B2048, true),
            (2031, RxBufferSize::B4096, true),
            (4078, RxBufferSize::B4096, true),
            (4079, RxBufferSize::B8192, true),
            (8174, RxBufferSize::B8192, true),
            (8175, RxBufferSize::B16384, true),
            (9000, RxBufferSize::B16384, true),
        ];
        for (mtu, buffer, lpe) in cases {
            let size = FrameSize::for_mtu(mtu).unwrap();
            assert_eq!((size.rx_buffer, size.long_packets), (buffer, lpe), "{mtu}");
            assert!(
                size.rx_buffer.bytes() >= size.max_frame_len + FCS_LEN,
                "{mtu}"
            );
            assert!(size.tx_buffer_len >= size.max_frame_len, "{mtu}");
        }
        assert_eq!(FrameSize::for_mtu(16_367), None);
        assert_eq!(RxBufferSize::for_frame(usize::MAX), None);
    }

    #[test]
    fn buffer_size_bits_match_table_13_67() {
        // BSEX is bit 25, BSIZE bits 17:16.
        assert_eq!(RxBufferSize::B2048.rctl_bits(), 0);
        assert_eq!(RxBufferSize::B4096.rctl_bits(), 0x0203_0000);
        assert_eq!(RxBufferSize::B8192.rctl_bits(), 0x0202_0000);
        assert_eq!(RxBufferSize::B16384.rctl_bits(), 0x0201_0000);
        assert_eq!(
            FrameSize::for_mtu(9000).unwrap().rctl_bits(),
            0x0201_0000 | (1 << 5)
        );
    }
}
