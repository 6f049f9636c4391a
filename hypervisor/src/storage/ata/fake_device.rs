//! A fake ATA channel for host tests: the register model the driver relies on, with the
//! two-deep LBA48 register FIFOs (ATA8-AAM: writing a register moves its "current" value
//! to "previous"), PIO data phases sector by sector, IDENTIFY built from the disk's size,
//! and faults to inject: no drive, an ATAPI signature, a drive that stays busy, a failing
//! sector.

use alloc::vec;
use alloc::vec::Vec;

use super::ports::AtaPorts;
use super::regs::{command, reg, status};

/// What the data port is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Words the host reads, then (if more sectors follow) the next sector is loaded.
    ReadOut {
        words: Vec<u16>,
        pos: usize,
        next_lba: u64,
        left: u32,
    },
    /// Sector being written by the host.
    WriteIn {
        words: Vec<u16>,
        lba: u64,
        left: u32,
    },
}

/// One fake drive.
#[derive(Debug, Clone)]
pub struct FakeDrive {
    /// Its contents, a whole number of sectors.
    pub data: Vec<u8>,
    /// Report ATAPI's signature instead of a disk's.
    pub atapi: bool,
    /// Report no LBA48 support.
    pub no_lba48: bool,
    /// Never clear BSY after a command.
    pub stuck_busy: bool,
    /// Fail any command touching this LBA (ERR with UNC, error 0x40).
    pub bad_lba: Option<u64>,
    /// Flushes seen.
    pub flushes: u32,
}

impl FakeDrive {
    /// A drive of `sectors` zeroed sectors.
    pub fn new(sectors: usize) -> Self {
        Self {
            data: vec![0; sectors * 512],
            atapi: false,
            no_lba48: false,
            stuck_busy: false,
            bad_lba: None,
            flushes: 0,
        }
    }

    fn sectors(&self) -> u64 {
        (self.data.len() / 512) as u64
    }

    fn identify(&self) -> Vec<u16> {
        let mut w = vec![0u16; 256];
        if !self.no_lba48 {
            w[83] = 1 << 10;
        }
        let model = b"TERN FAKE DISK                          ";
        for (i, pair) in model.chunks(2).enumerate() {
            w[27 + i] = u16::from(pair[0]) << 8 | u16::from(pair[1]);
        }
        let s = self.sectors();
        for i in 0..4 {
            w[100 + i] = (s >> (16 * i)) as u16;
        }
        w
    }
}

/// A channel with up to two drives.
#[derive(Debug)]
pub struct FakeChannel {
    /// Master and slave.
    pub drives: [Option<FakeDrive>; 2],
    selected: usize,
    /// Current and previous value of registers 1..=5.
    regs: [[u8; 2]; 6],
    status: u8,
    error: u8,
    phase: Phase,
    /// Every command written, for assertions.
    pub commands: Vec<u8>,
    /// Alternate Status reads (the driver's waits and settle delays).
    pub alt_reads: u64,
}

impl FakeChannel {
    /// A channel with these drives.
    pub fn new(master: Option<FakeDrive>, slave: Option<FakeDrive>) -> Self {
        Self {
            drives: [master, slave],
            selected: 0,
            regs: [[0; 2]; 6],
            status: status::DRDY,
            error: 0,
            phase: Phase::Idle,
            commands: Vec::new(),
            alt_reads: 0,
        }
    }

    fn lba48(&self) -> u64 {
        let cur = |r: u16| u64::from(self.regs[r as usize][0]);
        let prev = |r: u16| u64::from(self.regs[r as usize][1]);
        cur(reg::LBA_LOW)
            | cur(reg::LBA_MID) << 8
            | cur(reg::LBA_HIGH) << 16
            | prev(reg::LBA_LOW) << 24
            | prev(reg::LBA_MID) << 32
            | prev(reg::LBA_HIGH) << 40
    }

    fn count48(&self) -> u32 {
        let c = u32::from(self.regs[reg::SECTOR_COUNT as usize][0])
            | u32::from(self.regs[reg::SECTOR_COUNT as usize][1]) << 8;
        if c == 0 { 65536 } else { c }
    }

    fn fail(&mut self, error: u8) {
        self.error = error;
        self.status = status::DRDY | status::ERR;
        self.phase = Phase::Idle;
    }

    fn load_sector(&mut self, lba: u64, left: u32) {
        let Some(drive) = self.drives[self.selected].as_ref() else {
            return;
        };
        if lba >= drive.sectors() || drive.bad_lba == Some(lba) {
            self.fail(0x40);
            return;
        }
        let start = lba as usize * 512;
        let words = drive.data[start..start + 512]
            .chunks(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect();
        self.phase = Phase::ReadOut {
            words,
            pos: 0,
            next_lba: lba + 1,
            left: left - 1,
        };
        self.status = status::DRDY | status::DRQ;
    }

    fn run(&mut self, cmd: u8) {
        self.commands.push(cmd);
        let (lba, count) = (self.lba48(), self.count48());
        let Some(drive) = self.drives[self.selected].as_mut() else {
            return;
        };
        if drive.stuck_busy {
            self.status = status::BSY;
            return;
        }
        self.error = 0;
        match cmd {
            command::IDENTIFY => {
                if drive.atapi {
                    self.regs[reg::LBA_MID as usize][0] = 0x14;
                    self.regs[reg::LBA_HIGH as usize][0] = 0xeb;
                    self.fail(0x04);
                    return;
                }
                let words = drive.identify();
                self.phase = Phase::ReadOut {
                    words,
                    pos: 0,
                    next_lba: 0,
                    left: 0,
                };
                self.status = status::DRDY | status::DRQ;
            }
            command::READ_SECTORS_EXT => {
                self.load_sector(lba, count);
            }
            command::WRITE_SECTORS_EXT => {
                if lba + u64::from(count) > drive.sectors() {
                    self.fail(0x10);
                    return;
                }
                self.phase = Phase::WriteIn {
                    words: Vec::new(),
                    lba,
                    left: count,
                };
                self.status = status::DRDY | status::DRQ;
            }
            command::FLUSH_CACHE_EXT => {
                drive.flushes += 1;
                self.status = status::DRDY;
            }
            _ => self.fail(0x04),
        }
    }
}

impl AtaPorts for FakeChannel {
    fn read_reg(&mut self, offset: u16) -> u8 {
        if self.drives[self.selected].is_none() {
            // Nobody drives the bus (ATA8-AAM: pulled-up data lines read as all ones).
            return 0xff;
        }
        match offset {
            reg::STATUS => self.status,
            reg::ERROR => self.error,
            2..=5 => self.regs[offset as usize][0],
            reg::DEVICE => 0xe0 | (self.selected as u8) << 4,
            _ => 0xff,
        }
    }

    fn write_reg(&mut self, offset: u16, value: u8) {
        match offset {
            reg::DEVICE => self.selected = usize::from(value & 0x10 != 0),
            reg::STATUS => self.run(value),
            1..=5 => {
                let r = &mut self.regs[offset as usize];
                r[1] = r[0];
                r[0] = value;
            }
            _ => {}
        }
    }

    fn read_data(&mut self) -> u16 {
        let Phase::ReadOut {
            words,
            pos,
            next_lba,
            left,
        } = &mut self.phase
        else {
            return 0xffff;
        };
        let w = words[*pos];
        *pos += 1;
        if *pos == words.len() {
            let (next, left) = (*next_lba, *left);
            self.phase = Phase::Idle;
            self.status = status::DRDY;
            if left > 0 {
                self.load_sector(next, left);
            }
        }
        w
    }

    fn write_data(&mut self, value: u16) {
        let Phase::WriteIn { words, lba, left } = &mut self.phase else {
            return;
        };
        words.push(value);
        if words.len() < 256 {
            return;
        }
        let (at, left_after) = (*lba, *left - 1);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let Some(drive) = self.drives[self.selected].as_mut() else {
            return;
        };
        if drive.bad_lba == Some(at) {
            self.fail(0x40);
            return;
        }
        let start = at as usize * 512;
        drive.data[start..start + 512].copy_from_slice(&bytes);
        if left_after == 0 {
            self.phase = Phase::Idle;
            self.status = status::DRDY;
        } else {
            self.phase = Phase::WriteIn {
                words: Vec::new(),
                lba: at + 1,
                left: left_after,
            };
        }
    }

    fn read_alt_status(&mut self) -> u8 {
        self.alt_reads += 1;
        if self.drives[self.selected].is_none() {
            return 0xff;
        }
        self.status
    }

    fn write_control(&mut self, _value: u8) {}
}
