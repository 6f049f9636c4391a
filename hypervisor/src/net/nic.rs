//! The network interface card abstraction the rest of the stack is written against.
//!
//! Why: smoltcp glue, the console's `net` command and the raw benchmark only need to move
//! whole Ethernet frames and read counters. Keeping that surface small means virtio-net (or
//! any other NIC) can be added beside the e1000 without touching anything above this trait.
//! Drivers poll: there are no interrupts anywhere in this interface.

use core::fmt;

/// Bytes of an Ethernet II header (destination, source, EtherType); no VLAN tag.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// The standard Ethernet MTU (IP packet bytes per frame), the default of `[net] mtu`.
pub const STANDARD_MTU: usize = 1500;
/// Smallest MTU a NIC is configured with: the IPv4 minimum every host must accept
/// (RFC 791), and the bottom of the config's range.
pub const MIN_MTU: usize = 576;
/// Largest MTU a NIC is configured with ("jumbo" frames, the top of the config's range).
pub const MAX_MTU: usize = 9000;

/// Largest frame (header + IP packet, without the 4-byte FCS) a NIC with `mtu` sends.
pub const fn frame_len_for_mtu(mtu: usize) -> usize {
    ETHERNET_HEADER_LEN + mtu
}
/// Smallest frame a driver accepts for transmission: an Ethernet header. The NIC pads
/// short frames to the 60-byte minimum.
pub const MIN_FRAME_LEN: usize = 14;

/// Why a frame could not be handed to the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxError {
    /// The transmit ring is full; try again after the NIC has drained some frames.
    QueueFull,
    /// The link is down: the frame was dropped.
    LinkDown,
    /// The frame is larger than the NIC's [`Nic::max_frame_len`].
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The NIC's largest frame.
        max: usize,
    },
    /// The frame is shorter than an Ethernet header.
    FrameTooShort(usize),
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::QueueFull => write!(f, "transmit queue full"),
            Self::LinkDown => write!(f, "link is down"),
            Self::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the {max}-byte maximum")
            }
            Self::FrameTooShort(len) => write!(f, "frame of {len} bytes is shorter than a header"),
        }
    }
}

/// Frame and byte counters, cumulative since the driver started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NicCounters {
    /// Frames delivered to the stack.
    pub rx_packets: u64,
    /// Bytes delivered to the stack.
    pub rx_bytes: u64,
    /// Received frames dropped by the driver or the NIC (no buffer, oversized, errored,
    /// caller's buffer too small).
    pub rx_dropped: u64,
    /// Received frames the NIC flagged as errored (CRC, symbol, sequence, ...).
    pub rx_errors: u64,
    /// Frames handed to the NIC for transmission.
    pub tx_packets: u64,
    /// Bytes handed to the NIC for transmission.
    pub tx_bytes: u64,
    /// Frames refused for transmission (queue full, link down, bad size).
    pub tx_dropped: u64,
}

/// A polled Ethernet NIC.
pub trait Nic {
    /// Short driver/model name for the console, e.g. `e1000 (82540EM)`.
    fn name(&self) -> &str;
    /// The station MAC address.
    fn mac(&self) -> [u8; 6];
    /// The MTU the NIC was configured for: the largest IP packet it sends in one frame, and
    /// the largest it is set up to receive.
    fn mtu(&self) -> usize;
    /// The largest frame [`Nic::transmit`] accepts (header + MTU, no FCS).
    fn max_frame_len(&self) -> usize {
        frame_len_for_mtu(self.mtu())
    }
    /// Whether the PHY reports link.
    fn link_up(&mut self) -> bool;
    /// Whether [`Nic::transmit`] would accept a frame right now: ring space, and the link
    /// state as last sampled by [`Nic::link_up`] (reading the PHY per frame is too costly).
    fn can_transmit(&mut self) -> bool;
    /// Queue one frame (destination MAC first, no FCS) for transmission.
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError>;
    /// Copy the next good received frame into `buf` and return its length. Bad frames met on
    /// the way are dropped and counted. `None` when nothing is pending.
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Current counters (may fold in hardware statistics registers, hence `&mut`).
    fn counters(&mut self) -> NicCounters;
}

/// Display a MAC address as `52:54:00:12:34:56`.
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}
