//! 8254x register offsets and bit fields used by the driver.
//!
//! Source: Intel PCI/PCI-X Family of Gigabit Ethernet Controllers Software Developer's Manual
//! (8254x SDM, rev. 4.0), section 13 ("Register Descriptions"), table 13-2 for the offsets.
//! Only what the driver (and its fake) uses is named here.

/// Device Control (13.4.1).
pub const CTRL: u32 = 0x0000;
/// Device Status (13.4.2), read-only.
pub const STATUS: u32 = 0x0008;
/// EEPROM/Flash Control (13.4.3).
pub const EECD: u32 = 0x0010;
/// EEPROM Read (13.4.4).
pub const EERD: u32 = 0x0014;
/// Extended Device Control (13.4.6).
pub const CTRL_EXT: u32 = 0x0018;
/// Flow Control Address Low/High, Type, Transmit Timer Value (13.4.7-13.4.10, 13.4.13).
pub const FCAL: u32 = 0x0028;
/// See [`FCAL`].
pub const FCAH: u32 = 0x002c;
/// See [`FCAL`].
pub const FCT: u32 = 0x0030;
/// See [`FCAL`].
pub const FCTTV: u32 = 0x0170;
/// Interrupt Cause Read (13.4.17), clear on read.
pub const ICR: u32 = 0x00c0;
/// Interrupt Mask Set/Read (13.4.20).
pub const IMS: u32 = 0x00d0;
/// Interrupt Mask Clear (13.4.21).
pub const IMC: u32 = 0x00d8;
/// Receive Control (13.4.22).
pub const RCTL: u32 = 0x0100;
/// Transmit Control (13.4.33).
pub const TCTL: u32 = 0x0400;
/// Transmit Inter-Packet Gap (13.4.34).
pub const TIPG: u32 = 0x0410;
/// Receive Descriptor Base Address Low/High, Length, Head, Tail (13.4.25-13.4.29).
pub const RDBAL: u32 = 0x2800;
/// See [`RDBAL`].
pub const RDBAH: u32 = 0x2804;
/// See [`RDBAL`].
pub const RDLEN: u32 = 0x2808;
/// See [`RDBAL`].
pub const RDH: u32 = 0x2810;
/// See [`RDBAL`].
pub const RDT: u32 = 0x2818;
/// Receive Delay Timer (13.4.30).
pub const RDTR: u32 = 0x2820;
/// Transmit Descriptor Base Address Low/High, Length, Head, Tail (13.4.38-13.4.42).
pub const TDBAL: u32 = 0x3800;
/// See [`TDBAL`].
pub const TDBAH: u32 = 0x3804;
/// See [`TDBAL`].
pub const TDLEN: u32 = 0x3808;
/// See [`TDBAL`].
pub const TDH: u32 = 0x3810;
/// See [`TDBAL`].
pub const TDT: u32 = 0x3818;
/// Multicast Table Array, 128 dwords (13.4.47).
pub const MTA: u32 = 0x5200;
/// Number of MTA entries.
pub const MTA_LEN: u32 = 128;
/// Receive Address Low/High for slot 0 (13.4.48-13.4.49).
pub const RAL0: u32 = 0x5400;
/// See [`RAL0`].
pub const RAH0: u32 = 0x5404;

/// CTRL bits.
pub mod ctrl {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link reset.
    pub const LRST: u32 = 1 << 3;
    /// Auto-speed detection enable.
    pub const ASDE: u32 = 1 << 5;
    /// Set link up.
    pub const SLU: u32 = 1 << 6;
    /// Invert loss-of-signal.
    pub const ILOS: u32 = 1 << 7;
    /// Device reset (self-clearing).
    pub const RST: u32 = 1 << 26;
    /// VLAN mode enable.
    pub const VME: u32 = 1 << 30;
    /// PHY reset.
    pub const PHY_RST: u32 = 1 << 31;
}

/// STATUS bits.
pub mod status {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link up.
    pub const LU: u32 = 1 << 1;
    /// Speed field shift (00 = 10, 01 = 100, 1x = 1000 Mb/s).
    pub const SPEED_SHIFT: u32 = 6;
}

/// EERD layout of the 82540EM/82545EM (13.4.4): start bit 0, done bit 4, word address in
/// bits 15:8, data in bits 31:16. Later parts (82541+, 8257x) moved done to bit 1 and the
/// address to bits 15:2; QEMU and Bochs model the 82540EM layout.
pub mod eerd {
    /// Start a read.
    pub const START: u32 = 1 << 0;
    /// Read complete.
    pub const DONE: u32 = 1 << 4;
    /// Word address shift.
    pub const ADDR_SHIFT: u32 = 8;
    /// Data shift.
    pub const DATA_SHIFT: u32 = 16;
}

/// RCTL bits.
pub mod rctl {
    /// Receiver enable.
    pub const EN: u32 = 1 << 1;
    /// Store bad packets.
    pub const SBP: u32 = 1 << 2;
    /// Unicast promiscuous.
    pub const UPE: u32 = 1 << 3;
    /// Multicast promiscuous.
    pub const MPE: u32 = 1 << 4;
    /// Long packet enable: accept frames up to 16384 bytes instead of 1522 (13.4.22).
    pub const LPE: u32 = 1 << 5;
    /// Descriptor minimum threshold: interrupt at 1/2 of the ring free.
    pub const RDMTS_HALF: u32 = 0b00 << 8;
    /// Broadcast accept mode.
    pub const BAM: u32 = 1 << 15;
    /// Receive buffer size field (bits 17:16); its meaning depends on [`BSEX`] (table 13-67).
    pub const BSIZE_SHIFT: u32 = 16;
    /// Buffer size 2048 bytes (BSIZE = 00 with BSEX = 0).
    pub const BSIZE_2048: u32 = 0b00 << BSIZE_SHIFT;
    /// Buffer size extension: BSIZE 01/10/11 mean 16384/8192/4096 bytes.
    pub const BSEX: u32 = 1 << 25;
    /// Strip the Ethernet CRC from received frames.
    pub const SECRC: u32 = 1 << 26;
}

/// TCTL bits.
pub mod tctl {
    /// Transmitter enable.
    pub const EN: u32 = 1 << 1;
    /// Pad short packets.
    pub const PSP: u32 = 1 << 3;
    /// Collision threshold shift (recommended value 0x0f).
    pub const CT_SHIFT: u32 = 4;
    /// Collision distance shift (0x40 for full duplex).
    pub const COLD_SHIFT: u32 = 12;
}

/// TIPG for the 82540EM on copper (13.4.34, table 13-77): IPGT 10, IPGR1 8, IPGR2 6.
pub const TIPG_COPPER: u32 = 10 | (8 << 10) | (6 << 20);

/// Statistics registers (13.7), all clear-on-read.
pub mod stats {
    /// CRC error count.
    pub const CRCERRS: u32 = 0x4000;
    /// Alignment error count.
    pub const ALGNERRC: u32 = 0x4004;
    /// Symbol error count.
    pub const SYMERRS: u32 = 0x4008;
    /// Receive error count.
    pub const RXERRC: u32 = 0x400c;
    /// Missed packets count (no receive buffer / FIFO overrun).
    pub const MPC: u32 = 0x4010;
    /// Collision count.
    pub const COLC: u32 = 0x4028;
    /// Good packets received.
    pub const GPRC: u32 = 0x4074;
    /// Good packets transmitted.
    pub const GPTC: u32 = 0x4080;
    /// Good octets received, low dword (the high dword read clears both).
    pub const GORCL: u32 = 0x4088;
    /// Good octets received, high dword.
    pub const GORCH: u32 = 0x408c;
    /// Good octets transmitted, low dword.
    pub const GOTCL: u32 = 0x4090;
    /// Good octets transmitted, high dword.
    pub const GOTCH: u32 = 0x4094;
    /// Receive no buffers count.
    pub const RNBC: u32 = 0x40a0;
    /// Receive undersize count.
    pub const RUC: u32 = 0x40a4;
    /// Receive oversize count.
    pub const ROC: u32 = 0x40ac;
    /// Total packets received.
    pub const TPR: u32 = 0x40d0;
    /// Total packets transmitted.
    pub const TPT: u32 = 0x40d4;
}
