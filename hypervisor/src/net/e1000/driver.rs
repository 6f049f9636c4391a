//! The e1000 (8254x, modelled on the 82540EM that QEMU and Bochs emulate) polled driver.
//!
//! Initialisation follows SDM section 14 ("General Initialization and Reset Operation"):
//! mask interrupts, global reset, set link up, read the MAC, clear the multicast table,
//! set up the receive ring (14.4) and the transmit ring (14.5). There are no interrupts:
//! the main loop polls [`Nic::receive`], and transmit completions are reclaimed lazily.

use core::fmt;
use core::sync::atomic::{Ordering, fence};

use super::frame_size::FrameSize;
use super::hal::{DmaError, DmaMemory, RegisterAccess};
use super::regs::{self, ctrl, eerd, rctl, status, tctl};
use super::rings::{RxOutcome, RxRing, TxRing};
use super::stats::HwStats;
use crate::net::nic::{MAX_MTU, MIN_FRAME_LEN, MIN_MTU, Nic, NicCounters, STANDARD_MTU, TxError};

/// How many register reads we allow for a reset or an EEPROM read to complete. Each read is
/// an uncached MMIO access (hundreds of nanoseconds on hardware, a VM exit or emulator
/// round trip otherwise), so this bounds the wait at well over the SDM's microseconds.
const SPIN_LIMIT: u32 = 100_000;

/// Ring sizes; each must be a multiple of 8 (RDLEN/TDLEN are multiples of 128 bytes,
/// SDM 13.4.27 / 13.4.40) and at least 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E1000Config {
    /// Receive descriptors.
    pub rx_ring_len: usize,
    /// Transmit descriptors.
    pub tx_ring_len: usize,
    /// Station address to use instead of the EEPROM's (config `[net] mac`); must be unicast.
    pub mac_override: Option<[u8; 6]>,
    /// MTU (config `[net] mtu`), [`MIN_MTU`]..=[`MAX_MTU`]: sets the buffer sizes and, above
    /// 1500, long-packet reception (see `frame_size`).
    pub mtu: usize,
}

impl Default for E1000Config {
    fn default() -> Self {
        Self {
            rx_ring_len: 128,
            tx_ring_len: 128,
            mac_override: None,
            mtu: STANDARD_MTU,
        }
    }
}

/// Why the driver could not bring the NIC up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum E1000Error {
    /// CTRL.RST did not self-clear.
    ResetTimeout,
    /// Ring or buffer memory could not be allocated.
    Dma(DmaError),
    /// A ring length is not a multiple of 8 in 8..=4096.
    InvalidRingLength(usize),
    /// Neither the EEPROM nor RAL0/RAH0 held a usable unicast MAC address.
    NoValidMac,
    /// The configured MAC override is multicast, all zeros or all ones.
    InvalidMac([u8; 6]),
    /// The configured MTU is outside [`MIN_MTU`]..=[`MAX_MTU`].
    InvalidMtu(usize),
}

impl fmt::Display for E1000Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ResetTimeout => write!(f, "e1000: device reset did not complete"),
            Self::Dma(error) => write!(f, "e1000: {error}"),
            Self::InvalidRingLength(len) => {
                write!(
                    f,
                    "e1000: ring length {len} is not a multiple of 8 in 8..=4096"
                )
            }
            Self::NoValidMac => write!(f, "e1000: no valid MAC address in EEPROM or RAL/RAH"),
            Self::InvalidMac(m) => write!(
                f,
                "e1000: configured MAC {} is not a unicast address",
                crate::net::nic::MacAddr(*m)
            ),
            Self::InvalidMtu(mtu) => {
                write!(f, "e1000: MTU {mtu} is outside {MIN_MTU}..={MAX_MTU}")
            }
        }
    }
}

impl From<DmaError> for E1000Error {
    fn from(error: DmaError) -> Self {
        Self::Dma(error)
    }
}

/// Where the MAC address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacSource {
    /// EEPROM words 0-2 read through EERD.
    Eeprom,
    /// Receive address slot 0, as left by reset/firmware.
    ReceiveAddress,
    /// The configuration's override.
    Config,
}

/// A running e1000.
pub struct E1000<R: RegisterAccess, D: DmaMemory> {
    regs: R,
    _dma: D,
    mac: [u8; 6],
    mac_source: MacSource,
    rx: RxRing,
    tx: TxRing,
    mtu: usize,
    max_frame_len: usize,
    link: bool,
    /// Recycled receive descriptors not yet handed back through RDT (see [`RDT_BATCH`]).
    rx_recycled: Option<usize>,
    rx_unreported: usize,
    counters: NicCounters,
    hw: HwStats,
}

/// Receive descriptors recycled before RDT is written. Every register access is a trap into
/// the emulator (and a VM exit under nested virtualisation), so the tail goes back in batches,
/// and at the latest when the ring is found empty; the device keeps the rest of the ring.
const RDT_BATCH: usize = 16;

fn valid_unicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 0 && mac.iter().any(|&b| b != 0) && mac.iter().any(|&b| b != 0xff)
}

fn ring_len_ok(len: usize) -> bool {
    (8..=4096).contains(&len) && len.is_multiple_of(8)
}

impl<R: RegisterAccess, D: DmaMemory> E1000<R, D> {
    /// Reset and initialise the NIC; on success it receives and transmits.
    pub fn new(mut regs: R, mut dma: D, config: E1000Config) -> Result<Self, E1000Error> {
        for len in [config.rx_ring_len, config.tx_ring_len] {
            if !ring_len_ok(len) {
                return Err(E1000Error::InvalidRingLength(len));
            }
        }
        let frame_size = Some(config.mtu)
            .filter(|mtu| (MIN_MTU..=MAX_MTU).contains(mtu))
            .and_then(FrameSize::for_mtu)
            .ok_or(E1000Error::InvalidMtu(config.mtu))?;

        // 14.3: mask interrupts before and after the global reset.
        regs.write(regs::IMC, 0xffff_ffff);
        let control = regs.read(regs::CTRL);
        regs.write(regs::CTRL, control | ctrl::RST);
        if !(0..SPIN_LIMIT).any(|_| regs.read(regs::CTRL) & ctrl::RST == 0) {
            return Err(E1000Error::ResetTimeout);
        }
        regs.write(regs::IMC, 0xffff_ffff);
        regs.read(regs::ICR);

        // 14.3: set link up, let the MAC resolve speed from the PHY; no VLANs, no resets.
        let control = regs.read(regs::CTRL);
        let control = (control | ctrl::SLU | ctrl::ASDE)
            & !(ctrl::LRST | ctrl::PHY_RST | ctrl::ILOS | ctrl::VME);
        regs.write(regs::CTRL, control);
        // 14.3: no flow control, so its registers are zeroed.
        for flow_control in [regs::FCAL, regs::FCAH, regs::FCT, regs::FCTTV] {
            regs.write(flow_control, 0);
        }

        let (mac, mac_source) = match config.mac_override {
            Some(mac) if valid_unicast(&mac) => (mac, MacSource::Config),
            Some(mac) => return Err(E1000Error::InvalidMac(mac)),
            None => read_mac(&mut regs)?,
        };
        let ral = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
        let rah = u32::from(u16::from_le_bytes([mac[4], mac[5]])) | (1 << 31);
        regs.write(regs::RAL0, ral);
        regs.write(regs::RAH0, rah);
        for i in 0..regs::MTA_LEN {
            regs.write(regs::MTA + i * 4, 0);
        }
        let mut hw = HwStats::default();
        hw.clear(&mut regs);

        // 14.4: receive ring, buffers that hold the largest frame (long-packet reception above
        // the standard MTU, 13.4.22), broadcast accepted, CRC stripped.
        let rx = RxRing::new(&mut dma, config.rx_ring_len, frame_size.rx_buffer.bytes())?;
        regs.write(regs::RDBAL, rx.phys() as u32);
        regs.write(regs::RDBAH, (rx.phys() >> 32) as u32);
        regs.write(regs::RDLEN, rx.byte_len() as u32);
        regs.write(regs::RDH, 0);
        regs.write(regs::RDT, rx.initial_tail() as u32);
        regs.write(regs::RDTR, 0);
        regs.write(
            regs::RCTL,
            rctl::EN | rctl::BAM | rctl::SECRC | rctl::RDMTS_HALF | frame_size.rctl_bits(),
        );

        // 14.5: transmit ring, pad short frames, full-duplex collision distance.
        let tx = TxRing::new(&mut dma, config.tx_ring_len, frame_size.tx_buffer_len)?;
        regs.write(regs::TDBAL, tx.phys() as u32);
        regs.write(regs::TDBAH, (tx.phys() >> 32) as u32);
        regs.write(regs::TDLEN, tx.byte_len() as u32);
        regs.write(regs::TDH, 0);
        regs.write(regs::TDT, 0);
        regs.write(
            regs::TCTL,
            tctl::EN | tctl::PSP | (0x0f << tctl::CT_SHIFT) | (0x40 << tctl::COLD_SHIFT),
        );
        regs.write(regs::TIPG, regs::TIPG_COPPER);

        let link = regs.read(regs::STATUS) & status::LU != 0;
        Ok(Self {
            regs,
            _dma: dma,
            mac,
            mac_source,
            rx,
            tx,
            mtu: config.mtu,
            max_frame_len: frame_size.max_frame_len,
            link,
            rx_recycled: None,
            rx_unreported: 0,
            counters: NicCounters::default(),
            hw,
        })
    }

    /// Hand recycled receive descriptors back to the device.
    fn return_rx_descriptors(&mut self) {
        if let Some(tail) = self.rx_recycled.take() {
            // The frames have been copied out (or discarded) before the buffers go back.
            fence(Ordering::SeqCst);
            self.regs.write(regs::RDT, tail as u32);
        }
        self.rx_unreported = 0;
    }

    /// Where the MAC address came from.
    pub fn mac_source(&self) -> MacSource {
        self.mac_source
    }

    /// Link speed in Mb/s as reported by STATUS (meaningful only with link up).
    pub fn speed_mbps(&mut self) -> u32 {
        match (self.regs.read(regs::STATUS) >> status::SPEED_SHIFT) & 0b11 {
            0b00 => 10,
            0b01 => 100,
            _ => 1000,
        }
    }

    /// Accumulated hardware statistics registers.
    pub fn hw_stats(&mut self) -> HwStats {
        self.hw.accumulate(&mut self.regs);
        self.hw
    }

    /// Frames queued for transmission and not yet completed by the device.
    pub fn tx_in_flight(&mut self) -> usize {
        self.tx.in_flight()
    }
}

/// Read one EEPROM word through EERD (82540EM layout, see [`eerd`]).
fn eeprom_word<R: RegisterAccess>(regs: &mut R, word: u8) -> Option<u16> {
    regs.write(
        regs::EERD,
        eerd::START | (u32::from(word) << eerd::ADDR_SHIFT),
    );
    (0..SPIN_LIMIT).find_map(|_| {
        let value = regs.read(regs::EERD);
        (value & eerd::DONE != 0).then_some((value >> eerd::DATA_SHIFT) as u16)
    })
}

/// The MAC from EEPROM words 0-2 (SDM 5.6.1), else from RAL0/RAH0.
fn read_mac<R: RegisterAccess>(regs: &mut R) -> Result<([u8; 6], MacSource), E1000Error> {
    let mut mac = [0u8; 6];
    let from_eeprom = (0..3u8).all(|word| match eeprom_word(regs, word) {
        Some(value) => {
            let i = usize::from(word) * 2;
            mac[i..i + 2].copy_from_slice(&value.to_le_bytes());
            true
        }
        None => false,
    });
    if from_eeprom && valid_unicast(&mac) {
        return Ok((mac, MacSource::Eeprom));
    }
    let ral = regs.read(regs::RAL0).to_le_bytes();
    let rah = regs.read(regs::RAH0).to_le_bytes();
    let mac = [ral[0], ral[1], ral[2], ral[3], rah[0], rah[1]];
    if valid_unicast(&mac) {
        Ok((mac, MacSource::ReceiveAddress))
    } else {
        Err(E1000Error::NoValidMac)
    }
}

impl<R: RegisterAccess, D: DmaMemory> Nic for E1000<R, D> {
    fn name(&self) -> &str {
        "e1000 (82540EM)"
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn link_up(&mut self) -> bool {
        self.link = self.regs.read(regs::STATUS) & status::LU != 0;
        self.link
    }

    fn can_transmit(&mut self) -> bool {
        // The link state cached by the last `link_up` (the stack samples it every 100 ms):
        // a STATUS read here would cost a register trap per transmitted frame.
        self.link && self.tx.has_space()
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        let result = if frame.len() > self.max_frame_len {
            Err(TxError::FrameTooLarge {
                len: frame.len(),
                max: self.max_frame_len,
            })
        } else if frame.len() < MIN_FRAME_LEN {
            Err(TxError::FrameTooShort(frame.len()))
        } else if !self.link {
            // `link` is refreshed by `link_up`/`can_transmit`, which callers poll.
            Err(TxError::LinkDown)
        } else {
            match self.tx.push(frame) {
                Some(tail) => {
                    // Descriptor and buffer stores must be visible before the device sees
                    // the new tail (SDM 3.4: the device fetches up to TDT).
                    fence(Ordering::SeqCst);
                    self.regs.write(regs::TDT, tail as u32);
                    Ok(())
                }
                None => Err(TxError::QueueFull),
            }
        };
        match result {
            Ok(()) => {
                self.counters.tx_packets += 1;
                self.counters.tx_bytes += frame.len() as u64;
            }
            Err(_) => self.counters.tx_dropped += 1,
        }
        result
    }

    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        // Bounded: at most one full ring of bad frames per call keeps the main loop moving.
        for _ in 0..self.rx.initial_tail() + 1 {
            let Some((outcome, recycled)) = self.rx.take(buf) else {
                self.return_rx_descriptors();
                return None;
            };
            self.rx_recycled = Some(recycled);
            self.rx_unreported += 1;
            if self.rx_unreported >= RDT_BATCH {
                self.return_rx_descriptors();
            }
            match outcome {
                RxOutcome::Delivered(len) => {
                    self.counters.rx_packets += 1;
                    self.counters.rx_bytes += len as u64;
                    return Some(len);
                }
                RxOutcome::Errored => {
                    self.counters.rx_errors += 1;
                    self.counters.rx_dropped += 1;
                }
                RxOutcome::Dropped => self.counters.rx_dropped += 1,
                RxOutcome::Fragment => {}
            }
        }
        None
    }

    fn counters(&mut self) -> NicCounters {
        self.hw.accumulate(&mut self.regs);
        let mut counters = self.counters;
        counters.rx_errors += self.hw.rx_errors();
        counters.rx_dropped += self.hw.rx_errors() + self.hw.rx_missed();
        counters
    }
}
