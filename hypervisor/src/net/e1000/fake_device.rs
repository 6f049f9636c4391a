//! A fake 82540EM for host tests: a register file plus the descriptor processing the real
//! device does, reading and writing [`FakeDma`] by physical address.
//!
//! It models what the driver relies on: self-clearing reset, EERD reads, link status,
//! clear-on-read statistics, transmit (TDH chases TDT, frames recorded, DD written back when
//! RS is set, short frames padded), receive (frames written at RDH up to RDT, DD/EOP set,
//! spread over as many descriptors as RCTL's buffer size needs, oversize/undersize/no-buffer
//! drops counted like the hardware does; "oversize" depends on RCTL.LPE, 13.4.22).

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::desc::{self, RxDesc, rx_status, tx_cmd, tx_status};
use super::fake_dma::FakeDma;
use super::hal::RegisterAccess;
use super::regs::{self, ctrl, eerd, rctl, stats, status, tctl};

/// What happened to a frame offered to the fake's receive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written into a posted buffer.
    Stored,
    /// Receiver disabled or link down: the frame never arrived.
    NotReceiving,
    /// No free descriptor (MPC counted).
    NoBuffer,
    /// Longer than 1518 bytes without FCS, or than 16384 with RCTL.LPE (ROC counted).
    Oversize,
    /// Shorter than 60 bytes (RUC counted).
    Undersize,
}

/// Device state behind a [`FakeE1000`] handle.
pub struct FakeState {
    regs: BTreeMap<u32, u32>,
    /// EEPROM contents (words 0-2 are the MAC).
    pub eeprom: [u16; 64],
    /// Whether EERD completes reads (false models a part with a different EERD layout).
    pub eerd_works: bool,
    /// Whether CTRL.RST ever self-clears.
    pub reset_completes: bool,
    /// PHY link.
    pub link_up: bool,
    /// When set, transmit descriptors are not processed (a stalled or slow device).
    pub tx_paused: bool,
    /// Frames the device put on the wire, in order.
    pub sent: Vec<Vec<u8>>,
    /// DMA accesses outside any allocation (a driver bug if ever non-zero).
    pub dma_faults: usize,
    mac: [u8; 6],
    memory: FakeDma,
    partial_tx: Vec<u8>,
}

/// A handle to the fake device; clones share it. Implements [`RegisterAccess`].
#[derive(Clone)]
pub struct FakeE1000 {
    state: Rc<RefCell<FakeState>>,
}

const RX_MAX_NO_FCS: usize = 1518;
/// With RCTL.LPE the MAC takes frames up to 16384 bytes (13.4.22; QEMU's model too).
const RX_MAX_LONG: usize = 16384;
const RX_MIN_NO_FCS: usize = 60;

impl FakeE1000 {
    /// A device with `mac` in EEPROM and RAL/RAH, link up, using `memory` for DMA.
    pub fn new(mac: [u8; 6], memory: FakeDma) -> Self {
        let mut eeprom = [0u16; 64];
        for (word, pair) in mac.chunks(2).enumerate() {
            eeprom[word] = u16::from_le_bytes([pair[0], pair[1]]);
        }
        let mut state = FakeState {
            regs: BTreeMap::new(),
            eeprom,
            eerd_works: true,
            reset_completes: true,
            link_up: true,
            tx_paused: false,
            sent: Vec::new(),
            dma_faults: 0,
            mac,
            memory,
            partial_tx: Vec::new(),
        };
        state.reset();
        Self {
            state: Rc::new(RefCell::new(state)),
        }
    }

    /// Inspect or change the device state.
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.borrow_mut())
    }

    /// Take the frames sent so far.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.state.borrow_mut().sent)
    }

    /// Offer a received frame (without FCS) to the device.
    pub fn deliver(&self, frame: &[u8]) -> Delivery {
        self.state.borrow_mut().deliver(frame, 0, 1)
    }

    /// Store a frame with error bits set, as the device does with RCTL.SBP.
    pub fn deliver_errored(&self, frame: &[u8], errors: u8) -> Delivery {
        self.state.borrow_mut().deliver(frame, errors, 1)
    }

    /// Store a frame spread over at least `pieces` descriptors (EOP only on the last), as
    /// the device does for frames longer than one buffer.
    pub fn deliver_fragmented(&self, frame: &[u8], pieces: usize) -> Delivery {
        self.state.borrow_mut().deliver(frame, 0, pieces)
    }

    /// Resume a paused transmitter and process what is queued.
    pub fn resume_tx(&self) {
        let mut state = self.state.borrow_mut();
        state.tx_paused = false;
        state.process_tx();
    }

    /// Current register value without read side effects.
    pub fn peek(&self, offset: u32) -> u32 {
        self.state.borrow().reg(offset)
    }
}

impl FakeState {
    fn reg(&self, offset: u32) -> u32 {
        self.regs.get(&offset).copied().unwrap_or(0)
    }

    fn set(&mut self, offset: u32, value: u32) {
        self.regs.insert(offset, value);
    }

    fn bump(&mut self, offset: u32, by: u32) {
        let value = self.reg(offset).saturating_add(by);
        self.set(offset, value);
    }

    fn reset(&mut self) {
        self.regs.clear();
        let m = self.mac;
        self.set(regs::RAL0, u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        self.set(
            regs::RAH0,
            u32::from(u16::from_le_bytes([m[4], m[5]])) | (1 << 31),
        );
        self.partial_tx.clear();
    }

    /// Receive buffer size selected by RCTL.BSIZE/BSEX (table 13-67).
    fn rx_buffer_len(&self) -> usize {
        let rctl = self.reg(regs::RCTL);
        let bsize = (rctl >> rctl::BSIZE_SHIFT) & 0b11;
        match (rctl & rctl::BSEX != 0, bsize) {
            (false, 0b00) => 2048,
            (false, 0b01) => 1024,
            (false, 0b10) => 512,
            (false, _) => 256,
            (true, 0b01) => 16384,
            (true, 0b10) => 8192,
            (true, 0b11) => 4096,
            // BSEX with BSIZE 00 is reserved; the device behaves as 2048.
            (true, _) => 2048,
        }
    }

    fn ring_len(&self, len_reg: u32) -> u32 {
        self.reg(len_reg) / desc::DESC_LEN as u32
    }

    fn base(&self, low: u32, high: u32) -> u64 {
        u64::from(self.reg(low)) | (u64::from(self.reg(high)) << 32)
    }

    fn read_u64(&mut self, phys: u64) -> u64 {
        let mut bytes = [0u8; 8];
        if !self.memory.read(phys, &mut bytes) {
            self.dma_faults += 1;
        }
        u64::from_le_bytes(bytes)
    }

    fn write_u64(&mut self, phys: u64, value: u64) {
        if !self.memory.write(phys, &value.to_le_bytes()) {
            self.dma_faults += 1;
        }
    }

    fn process_tx(&mut self) {
        if self.tx_paused || self.reg(regs::TCTL) & tctl::EN == 0 {
            return;
        }
        let len = self.ring_len(regs::TDLEN);
        if len == 0 {
            return;
        }
        let base = self.base(regs::TDBAL, regs::TDBAH);
        while self.reg(regs::TDH) != self.reg(regs::TDT) {
            let head = self.reg(regs::TDH);
            let at = base + u64::from(head) * desc::DESC_LEN as u64;
            let mut d = desc::TxDesc::decode(self.read_u64(at), self.read_u64(at + 8));
            let mut data = vec![0u8; usize::from(d.length)];
            if !self.memory.read(d.addr, &mut data) {
                self.dma_faults += 1;
            }
            self.partial_tx.extend_from_slice(&data);
            if d.cmd & tx_cmd::EOP != 0 {
                let mut frame = core::mem::take(&mut self.partial_tx);
                if self.reg(regs::TCTL) & tctl::PSP != 0 && frame.len() < RX_MIN_NO_FCS {
                    frame.resize(RX_MIN_NO_FCS, 0);
                }
                if self.link_up {
                    self.bump(stats::GPTC, 1);
                    self.bump(stats::GOTCL, frame.len() as u32);
                    self.sent.push(frame);
                }
            }
            if d.cmd & tx_cmd::RS != 0 {
                d.status |= tx_status::DD;
                self.write_u64(at + 8, d.control());
            }
            self.set(regs::TDH, (head + 1) % len);
        }
    }

    fn deliver(&mut self, frame: &[u8], errors: u8, pieces: usize) -> Delivery {
        if self.reg(regs::RCTL) & rctl::EN == 0 || !self.link_up {
            return Delivery::NotReceiving;
        }
        let max = if self.reg(regs::RCTL) & rctl::LPE != 0 {
            RX_MAX_LONG
        } else {
            RX_MAX_NO_FCS
        };
        if frame.len() > max {
            self.bump(stats::ROC, 1);
            return Delivery::Oversize;
        }
        if frame.len() < RX_MIN_NO_FCS {
            self.bump(stats::RUC, 1);
            return Delivery::Undersize;
        }
        let pieces = pieces.max(frame.len().div_ceil(self.rx_buffer_len()));
        let len = self.ring_len(regs::RDLEN);
        let free = match len {
            0 => 0,
            _ => (self.reg(regs::RDT) + len - self.reg(regs::RDH) % len) % len,
        };
        if (free as usize) < pieces {
            self.bump(stats::MPC, 1);
            return Delivery::NoBuffer;
        }
        let base = self.base(regs::RDBAL, regs::RDBAH);
        let chunk = frame.len().div_ceil(pieces.max(1));
        let mut chunks = frame.chunks(chunk).peekable();
        while let Some(piece) = chunks.next() {
            let head = self.reg(regs::RDH);
            let at = base + u64::from(head) * desc::DESC_LEN as u64;
            let addr = self.read_u64(at);
            if !self.memory.write(addr, piece) {
                self.dma_faults += 1;
            }
            let last = chunks.peek().is_none();
            let written = RxDesc {
                addr,
                length: piece.len() as u16,
                status: rx_status::DD | if last { rx_status::EOP } else { 0 },
                errors: if last { errors } else { 0 },
            };
            self.write_u64(at + 8, written.control());
            self.set(regs::RDH, (head + 1) % len);
        }
        self.bump(stats::GPRC, 1);
        self.bump(stats::GORCL, frame.len() as u32);
        Delivery::Stored
    }
}

impl RegisterAccess for FakeE1000 {
    fn read(&mut self, offset: u32) -> u32 {
        let mut state = self.state.borrow_mut();
        match offset {
            regs::STATUS => {
                let link = if state.link_up { status::LU } else { 0 };
                link | status::FD | (0b10 << status::SPEED_SHIFT)
            }
            regs::ICR => state.regs.remove(&offset).unwrap_or(0),
            0x4000..=0x40ff => state.regs.remove(&offset).unwrap_or(0),
            _ => state.reg(offset),
        }
    }

    fn write(&mut self, offset: u32, value: u32) {
        let mut state = self.state.borrow_mut();
        match offset {
            regs::CTRL if value & ctrl::RST != 0 => {
                state.reset();
                let kept = if state.reset_completes {
                    value & !ctrl::RST
                } else {
                    value
                };
                state.set(regs::CTRL, kept);
            }
            regs::EERD if value & eerd::START != 0 => {
                if state.eerd_works {
                    let word = (value >> eerd::ADDR_SHIFT) & 0xff;
                    let data = state.eeprom.get(word as usize).copied().unwrap_or(0xffff);
                    let done = eerd::DONE
                        | (word << eerd::ADDR_SHIFT)
                        | (u32::from(data) << eerd::DATA_SHIFT);
                    state.set(regs::EERD, done);
                } else {
                    state.set(regs::EERD, value);
                }
            }
            regs::TDT => {
                state.set(regs::TDT, value);
                state.process_tx();
            }
            regs::TCTL => {
                state.set(regs::TCTL, value);
                state.process_tx();
            }
            regs::IMC => {
                let masked = state.reg(regs::IMS) & !value;
                state.set(regs::IMS, masked);
            }
            _ => state.set(offset, value),
        }
    }
}
