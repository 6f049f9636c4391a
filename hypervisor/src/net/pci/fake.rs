//! A fake PCI configuration space for host tests: functions with real-looking BARs (size
//! masks, read-only type bits), bridges with secondary bus numbers, all ones for absent
//! functions.

use alloc::collections::BTreeMap;

use super::{Bdf, ConfigSpace, command, reg};

/// What one BAR slot of a fake function implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeBar {
    /// Unimplemented: reads zero, ignores writes.
    None,
    /// 32-bit memory BAR.
    Mem32 {
        address: u32,
        size: u32,
        prefetchable: bool,
    },
    /// 64-bit memory BAR; the next slot must be [`FakeBar::Mem64High`].
    Mem64 {
        address: u64,
        size: u64,
        prefetchable: bool,
    },
    /// High dword of the preceding 64-bit BAR.
    Mem64High,
    /// I/O BAR.
    Io { address: u16, size: u16 },
}

/// One fake function: a 256-byte header plus BAR behaviour.
#[derive(Debug, Clone)]
pub struct FakeFunction {
    /// Raw header dwords (BAR slots are served from `bars` / `bar_regs` instead).
    pub regs: [u32; 64],
    /// BAR behaviour per slot.
    pub bars: [FakeBar; 6],
    bar_regs: [u32; 6],
    bar_regs_initialised: bool,
    /// Set when a BAR was written while memory or I/O decoding was enabled.
    pub bar_written_while_decoding: bool,
}

impl FakeFunction {
    /// A type-0 function with the given IDs and 24-bit class code (class, subclass, prog-if).
    pub fn endpoint(vendor: u16, device: u16, class_code: u32) -> Self {
        let mut regs = [0u32; 64];
        regs[0] = u32::from(vendor) | (u32::from(device) << 16);
        regs[2] = (class_code & 0x00ff_ffff) << 8;
        Self {
            regs,
            bars: [FakeBar::None; 6],
            bar_regs: [0; 6],
            bar_regs_initialised: false,
            bar_written_while_decoding: false,
        }
    }

    /// A PCI-to-PCI bridge forwarding to `secondary..=subordinate`.
    pub fn bridge(primary: u8, secondary: u8, subordinate: u8) -> Self {
        let mut function = Self::endpoint(0x8086, 0x2448, 0x06_04_00);
        function.regs[3] = 0x01 << 16;
        function.regs[6] =
            u32::from(primary) | (u32::from(secondary) << 8) | (u32::from(subordinate) << 16);
        function
    }

    /// Mark the function as part of a multi-function device (header type bit 7).
    pub fn multi_function(mut self) -> Self {
        self.regs[3] |= 0x80 << 16;
        self
    }

    /// Set the command register.
    pub fn set_command(&mut self, bits: u16) {
        self.regs[1] = (self.regs[1] & 0xffff_0000) | u32::from(bits);
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.regs[1] as u16
    }

    fn init_bar_regs(&mut self) {
        if self.bar_regs_initialised {
            return;
        }
        self.bar_regs_initialised = true;
        for slot in 0..6 {
            self.bar_regs[slot] = match self.bars[slot] {
                FakeBar::None => 0,
                FakeBar::Mem64High => self.bar_regs[slot],
                FakeBar::Mem32 { address, .. } => address,
                FakeBar::Io { address, .. } => u32::from(address),
                FakeBar::Mem64 { address, .. } => {
                    if slot + 1 < 6 {
                        self.bar_regs[slot + 1] = (address >> 32) as u32;
                    }
                    address as u32
                }
            };
        }
    }

    fn read_bar(&mut self, slot: usize) -> u32 {
        self.init_bar_regs();
        let value = self.bar_regs[slot];
        match self.bars[slot] {
            FakeBar::None => 0,
            FakeBar::Mem32 {
                size, prefetchable, ..
            } => (value & !(size - 1) & 0xffff_fff0) | (u32::from(prefetchable) << 3),
            FakeBar::Io { size, .. } => (value & !(u32::from(size) - 1) & 0xffff_fffc) | 1,
            FakeBar::Mem64 {
                size, prefetchable, ..
            } => {
                (value & !((size - 1) as u32) & 0xffff_fff0)
                    | 0b100
                    | (u32::from(prefetchable) << 3)
            }
            FakeBar::Mem64High => match slot.checked_sub(1).map(|low| self.bars[low]) {
                Some(FakeBar::Mem64 { size, .. }) => value & !((size - 1) >> 32) as u32,
                _ => 0,
            },
        }
    }
}

/// A fake configuration space keyed by function address.
#[derive(Debug, Default)]
pub struct FakeConfigSpace {
    functions: BTreeMap<Bdf, FakeFunction>,
    /// Number of config reads served (to check enumeration does not scan blindly).
    pub reads: usize,
}

impl FakeConfigSpace {
    /// An empty configuration space (every read returns all ones).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace a function.
    pub fn insert(&mut self, bdf: Bdf, function: FakeFunction) {
        self.functions.insert(bdf, function);
    }

    /// The function at `bdf`.
    pub fn function(&self, bdf: Bdf) -> Option<&FakeFunction> {
        self.functions.get(&bdf)
    }

    /// True unless a BAR of `bdf` was written while decoding was enabled.
    pub fn decode_disabled_during_bar_writes(&self, bdf: Bdf) -> bool {
        self.functions
            .get(&bdf)
            .is_some_and(|f| !f.bar_written_while_decoding)
    }
}

fn bar_slot(function: &FakeFunction, offset: u16) -> Option<usize> {
    let header_type = (function.regs[3] >> 16) & 0x7f;
    let slots = if header_type == 0 { 6 } else { 2 };
    let first = reg::BAR0;
    (offset >= first && offset < first + slots * 4).then(|| usize::from((offset - first) / 4))
}

impl ConfigSpace for FakeConfigSpace {
    fn read32(&mut self, bdf: Bdf, offset: u16) -> u32 {
        self.reads += 1;
        let offset = offset & 0xfc;
        let Some(function) = self.functions.get_mut(&bdf) else {
            return 0xffff_ffff;
        };
        match bar_slot(function, offset) {
            Some(slot) => function.read_bar(slot),
            None => function.regs[usize::from(offset / 4)],
        }
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) {
        let offset = offset & 0xfc;
        let Some(function) = self.functions.get_mut(&bdf) else {
            return;
        };
        if let Some(slot) = bar_slot(function, offset) {
            function.init_bar_regs();
            if function.command() & (command::MEMORY_SPACE | command::IO_SPACE) != 0 {
                function.bar_written_while_decoding = true;
            }
            function.bar_regs[slot] = value;
            return;
        }
        match offset {
            // Vendor/device, class and header type are read-only.
            reg::ID | reg::CLASS_REVISION => {}
            reg::COMMAND_STATUS => function.set_command(value as u16),
            _ => function.regs[usize::from(offset / 4)] = value,
        }
    }
}
