//! A guest's x87/SSE/AVX register state, kept in memory while the host runs.
//!
//! Why: VMX switches neither the x87/SSE/AVX registers nor CR2 (SDM Vol. 3C §27.3, §28.3:
//! only the guest-state area is loaded and saved). Until now a guest's registers survived
//! only because the soft-float hypervisor never touched them, and two VMs on one host
//! shared one register file. Each vCPU now has an XSAVE area: the machine saves the
//! guest's state into it with XSAVE (XSAVEOPT when offered) when a slice ends, and loads
//! it with XRSTOR before the next one (SDM Vol. 1 ch. 13), so the registers are the VM's
//! own, can travel with it when it migrates, and the host is free to use them between
//! slices.
//!
//! The area is in the **standard format** (SDM Vol. 1 §13.4: the 512-byte legacy region in
//! FXSAVE layout, the 64-byte header, then each extended component at the offset CPUID
//! leaf 0xD reports), never compacted, so that it is the protocol's format as it is
//! (docs/migration-protocol.md, `xsave`). What a peer sends is checked by [`validate`]
//! before anything loads it: XRSTOR faults (#GP) on a bad header, on components this
//! host does not enable, or on reserved MXCSR bits (SDM Vol. 1 §13.8.1), and a fault in
//! the host is a crash, so a bad area must be refused as a message instead.
//!
//! Portable and host-tested; the instructions themselves are in `arch::xsave`.

use alloc::vec::Vec;
use core::fmt;

use super::cpuid::CpuidResult;

/// The legacy region (FXSAVE layout, SDM Vol. 1 §10.5.1, Table 10-2).
pub const LEGACY_LEN: usize = 512;
/// The legacy region plus the XSAVE header: the smallest standard-format area.
pub const MIN_LEN: usize = LEGACY_LEN + 64;
/// MXCSR (bytes 27:24 of the legacy region) and MXCSR_MASK (31:28).
const MXCSR: usize = 24;
const MXCSR_MASK: usize = 28;
/// The header (SDM Vol. 1 §13.4.2): XSTATE_BV, XCOMP_BV, then 48 reserved bytes.
const XSTATE_BV: usize = LEGACY_LEN;
const XCOMP_BV: usize = LEGACY_LEN + 8;
/// MXCSR at power-up and reset: all exceptions masked (SDM Vol. 1 §10.2.3.1).
pub const MXCSR_AT_RESET: u32 = 0x1f80;
/// The MXCSR bits that may be set when the CPU reports MXCSR_MASK as 0: all but DAZ
/// (SDM Vol. 1 §11.6.6).
pub const MXCSR_MASK_DEFAULT: u32 = 0xffbf;
/// Components 0 (x87) and 1 (SSE) live in the legacy region; 2 and up are extended.
const FIRST_EXTENDED: u32 = 2;
/// XSTATE_BV / XCR0 bits of the two legacy components.
const X87_SSE: u64 = 0b11;
/// x87 FPU control word at initialisation (FNINIT / XRSTOR of an initial x87 component,
/// SDM Vol. 1 §8.1.5, §13.6): all exceptions masked, 64-bit precision, round to nearest.
pub const FCW_AT_INIT: u16 = 0x037f;
/// Legacy-region bytes of the x87 component (FCW..FDP, ST0-ST7) and of the SSE
/// component's XMM0-XMM15 (SDM Vol. 1 Table 10-2); MXCSR (24..32) belongs to neither
/// here, as XRSTOR loads it whatever XSTATE_BV says.
const X87_HEADER_BYTES: core::ops::Range<usize> = 0..24;
const X87_REGISTERS: core::ops::Range<usize> = 32..160;
const XMM_REGISTERS: core::ops::Range<usize> = 160..416;
/// Extended components tern can describe (bits 2..=18 cover everything up to AMX).
const MAX_COMPONENT: u32 = 18;
const SLOTS: usize = (MAX_COMPONENT - FIRST_EXTENDED + 1) as usize;

/// Where a host keeps each state component in the standard format, and which components
/// it switches (the XCR0 it uses for XSAVE/XRSTOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XsaveLayout {
    /// The components saved and restored: what the host supports of what tern offers
    /// guests. 0 when the host has no XSAVE (nothing is switched).
    pub mask: u64,
    /// (offset, size) of extended component `FIRST_EXTENDED + i` (CPUID.(0xD,i):EBX/EAX).
    extended: [(u32, u32); SLOTS],
    /// The bytes an area needs: at least [`MIN_LEN`] and the end of every component in
    /// `mask`. (CPUID.(0xD,0):EBX gives the same for the XCR0 loaded at the time of the
    /// CPUID, ECX for every component the CPU has; the components' own offsets and sizes
    /// give it for the mask tern switches, whatever XCR0 holds now.)
    pub area_len: usize,
    /// The MXCSR bits this host's XRSTOR accepts.
    pub mxcsr_mask: u32,
    /// A host without XSAVE (every x86-64 CPU has FXSR): x87 and SSE (`mask` 0b11) are
    /// switched with FXSAVE/FXRSTOR, which use only the legacy region (SDM Vol. 1
    /// §10.5.1); the header is kept by software ([`XsaveArea::after_fxsave`],
    /// [`XsaveArea::prepare_fxrstor`]) so the area is still the protocol's standard format.
    /// XCR0 cannot be changed on such a host: it stays x87 only.
    pub fxsr_only: bool,
}

impl XsaveLayout {
    /// The layout for switching `wanted` (clipped to what CPUID.(0xD,0):EDX:EAX reports)
    /// read from CPUID leaf 0xD, with the host's `mxcsr_mask` (0: the default).
    pub fn from_cpuid(
        wanted: u64,
        mxcsr_mask: u32,
        cpuid: impl Fn(u32, u32) -> CpuidResult,
    ) -> Self {
        let root = cpuid(0xd, 0);
        let supported = u64::from(root.eax) | (u64::from(root.edx) << 32);
        // x87 is always part of a valid XCR0 (SDM Vol. 1 §13.3).
        let mut mask = (wanted & supported) | 1;
        let mut extended = [(0, 0); SLOTS];
        for bit in FIRST_EXTENDED..=MAX_COMPONENT {
            if mask & (1 << bit) != 0 {
                let r = cpuid(0xd, bit);
                extended[(bit - FIRST_EXTENDED) as usize] = (r.ebx, r.eax);
            }
        }
        mask &= (1 << (MAX_COMPONENT + 1)) - 1;
        let mut layout = Self {
            mask,
            extended,
            area_len: MIN_LEN,
            mxcsr_mask: if mxcsr_mask == 0 {
                MXCSR_MASK_DEFAULT
            } else {
                mxcsr_mask
            },
            fxsr_only: false,
        };
        layout.area_len = layout.standard_len(mask);
        layout
    }

    /// Nothing is switched and any incoming area is refused (a layout for tests and for a
    /// host whose state tern does not manage).
    pub const fn none() -> Self {
        Self {
            mask: 0,
            extended: [(0, 0); SLOTS],
            area_len: MIN_LEN,
            mxcsr_mask: MXCSR_MASK_DEFAULT,
            fxsr_only: false,
        }
    }

    /// A host without XSAVE: x87 and SSE switched with FXSAVE/FXRSTOR in the legacy region
    /// of a [`MIN_LEN`] area, with the host's `mxcsr_mask` (0: the default). It accepts
    /// what an XSAVE host sends of x87/SSE state and refuses AVX state by the usual rules.
    pub const fn legacy(mxcsr_mask: u32) -> Self {
        Self {
            mask: X87_SSE,
            extended: [(0, 0); SLOTS],
            area_len: MIN_LEN,
            mxcsr_mask: if mxcsr_mask == 0 {
                MXCSR_MASK_DEFAULT
            } else {
                mxcsr_mask
            },
            fxsr_only: true,
        }
    }

    /// The XCR0 values a guest may hold on this host: the switched components, or x87
    /// alone where XCR0 cannot be written (no XSAVE).
    pub fn loadable_xcr0(&self) -> u64 {
        if self.fxsr_only || self.mask == 0 {
            1
        } else {
            self.mask | 1
        }
    }

    /// (offset, size) of component `bit` in the standard format, for components 2 and up
    /// that this layout knows.
    pub fn component(&self, bit: u32) -> Option<(usize, usize)> {
        if !(FIRST_EXTENDED..=MAX_COMPONENT).contains(&bit) || self.mask & (1 << bit) == 0 {
            return None;
        }
        let (offset, size) = self.extended[(bit - FIRST_EXTENDED) as usize];
        Some((offset as usize, size as usize))
    }

    /// The bytes of a standard-format area holding the components in `mask`: what is sent
    /// (components beyond it are in their initial state, XSTATE_BV says so).
    pub fn standard_len(&self, mask: u64) -> usize {
        (FIRST_EXTENDED..=MAX_COMPONENT)
            .filter(|bit| mask & (1 << bit) != 0)
            .filter_map(|bit| self.component(bit))
            .map(|(offset, size)| offset.saturating_add(size))
            .fold(MIN_LEN, usize::max)
    }
}

/// Why an incoming XSAVE area is refused (each would make this host's XRSTOR fault or
/// load something other than what was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsaveRefusal {
    /// This host does not switch x87/SSE/AVX state at all, so it cannot load any.
    NotSwitched,
    /// Shorter than the legacy region plus the header.
    TooShort,
    /// Longer than this host's area.
    TooLong,
    /// XCOMP_BV is not 0: the compacted format, which tern never sends.
    Compacted,
    /// Reserved header bytes (23:16 .. 63:16) are not 0.
    ReservedHeader,
    /// XSTATE_BV names a component this host does not enable.
    UnsupportedComponent,
    /// A component XSTATE_BV names lies past the end of the area.
    ComponentPastEnd,
    /// MXCSR has a bit set that this host's MXCSR_MASK does not allow.
    ReservedMxcsr,
}

impl XsaveRefusal {
    /// The rule broken, as one static message (for `GuestStateError`).
    pub fn rule(self) -> &'static str {
        match self {
            Self::NotSwitched => {
                "this host does not switch FPU/SSE/AVX state and cannot load any (must be empty)"
            }
            Self::TooShort => "shorter than the legacy region and header (576 bytes)",
            Self::TooLong => "longer than this host's XSAVE area",
            Self::Compacted => "XCOMP_BV is not 0 (only the standard format is accepted)",
            Self::ReservedHeader => "reserved bytes of the XSAVE header are not 0",
            Self::UnsupportedComponent => {
                "XSTATE_BV has a state component this host does not support (compare CPUID 0xD)"
            }
            Self::ComponentPastEnd => "a component in XSTATE_BV lies past the end of the area",
            Self::ReservedMxcsr => "MXCSR sets a bit this host's MXCSR_MASK reserves",
        }
    }
}

impl fmt::Display for XsaveRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XSAVE area: {}", self.rule())
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Whether `area` (from a peer) can be loaded by XRSTOR on a host with `layout` without a
/// fault, in the standard form with XCR0 = `layout.mask` (SDM Vol. 1 §13.8.1: #GP if
/// XCOMP_BV or the reserved header bytes are not 0, if XSTATE_BV sets a bit XCR0 lacks, or
/// if MXCSR sets a reserved bit; MXCSR is loaded whenever SSE or AVX is requested, so it
/// is checked whatever XSTATE_BV says).
pub fn validate(area: &[u8], layout: &XsaveLayout) -> Result<(), XsaveRefusal> {
    if layout.mask == 0 {
        return Err(XsaveRefusal::NotSwitched);
    }
    if area.len() < MIN_LEN {
        return Err(XsaveRefusal::TooShort);
    }
    if u64_at(area, XCOMP_BV) != 0 {
        return Err(XsaveRefusal::Compacted);
    }
    if area[XCOMP_BV + 8..MIN_LEN].iter().any(|&b| b != 0) {
        return Err(XsaveRefusal::ReservedHeader);
    }
    // Before the length: AVX state arriving at a host without AVX is refused for what it
    // is, not for being longer than this host's area.
    let xstate_bv = u64_at(area, XSTATE_BV);
    if xstate_bv & !layout.mask != 0 {
        return Err(XsaveRefusal::UnsupportedComponent);
    }
    if area.len() > layout.area_len {
        return Err(XsaveRefusal::TooLong);
    }
    if layout.standard_len(xstate_bv) > area.len() {
        return Err(XsaveRefusal::ComponentPastEnd);
    }
    if u32_at(area, MXCSR) & !layout.mxcsr_mask != 0 {
        return Err(XsaveRefusal::ReservedMxcsr);
    }
    Ok(())
}

/// One 64-byte block: the alignment XSAVE/XRSTOR require of the area (SDM Vol. 1 §13.4).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// A vCPU's XSAVE area: 64-byte aligned, `layout.area_len` bytes rounded up to blocks.
pub struct XsaveArea {
    blocks: Vec<Block>,
}

/// The heap had no room for an XSAVE area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XsaveAllocError;

impl fmt::Display for XsaveAllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no heap memory for the vCPU's XSAVE area")
    }
}

impl XsaveArea {
    /// An area in the reset state for `layout`: every component initial (XSTATE_BV 0) and
    /// MXCSR at its reset value (standard-form XRSTOR loads MXCSR from memory even for an
    /// initial SSE component, SDM Vol. 1 §13.8.1).
    pub fn at_reset(layout: &XsaveLayout) -> Result<Self, XsaveAllocError> {
        let count = layout.area_len.div_ceil(64);
        let mut blocks = Vec::new();
        blocks
            .try_reserve_exact(count)
            .map_err(|_| XsaveAllocError)?;
        blocks.resize(count, Block([0; 64]));
        let mut area = Self { blocks };
        area.reset();
        Ok(area)
    }

    /// Back to the reset state (a VM reboot).
    pub fn reset(&mut self) {
        self.bytes_mut().fill(0);
        self.bytes_mut()[MXCSR..MXCSR + 4].copy_from_slice(&MXCSR_AT_RESET.to_le_bytes());
    }

    /// The whole area.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `Block` is `repr(C)` around `[u8; 64]` with no padding (64 bytes, align
        // 64), so `blocks` is `64 * len` initialised bytes, borrowed immutably with `self`.
        unsafe { core::slice::from_raw_parts(self.blocks.as_ptr().cast(), self.blocks.len() * 64) }
    }

    /// The whole area, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; the borrow is exclusive with `&mut self`.
        unsafe {
            core::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast(), self.blocks.len() * 64)
        }
    }

    /// The start of the area, 64-byte aligned, for XSAVE/XRSTOR.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.blocks.as_mut_ptr().cast()
    }

    /// The MXCSR_MASK field XSAVE stored (0 until a save of SSE/AVX state).
    pub fn mxcsr_mask(&self) -> u32 {
        u32_at(self.bytes(), MXCSR_MASK)
    }

    /// After FXSAVE64 into the legacy region (a host without XSAVE): mark x87 and SSE as
    /// saved and clear the rest of the header, so the area is a standard-format area
    /// holding exactly what FXSAVE wrote.
    pub fn after_fxsave(&mut self) {
        let bytes = self.bytes_mut();
        bytes[LEGACY_LEN..MIN_LEN].fill(0);
        bytes[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&X87_SSE.to_le_bytes());
    }

    /// Before FXRSTOR64 (a host without XSAVE): FXRSTOR ignores XSTATE_BV and loads the
    /// legacy region as it is, so a component the header marks initial (as XSAVEOPT on a
    /// peer, or the reset state, leave it) is written out in its initial form first
    /// (x87: FCW 0x037F and zeros; SSE: XMM registers zero; MXCSR as stored), which is what
    /// XRSTOR would have loaded (SDM Vol. 1 §13.6). Both are then marked saved.
    pub fn prepare_fxrstor(&mut self) {
        let bytes = self.bytes_mut();
        let xstate_bv = u64_at(bytes, XSTATE_BV);
        if xstate_bv & 1 == 0 {
            bytes[X87_HEADER_BYTES].fill(0);
            bytes[0..2].copy_from_slice(&FCW_AT_INIT.to_le_bytes());
            bytes[X87_REGISTERS].fill(0);
        }
        if xstate_bv & 0b10 == 0 {
            bytes[XMM_REGISTERS].fill(0);
        }
        let marked = xstate_bv | X87_SSE;
        bytes[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&marked.to_le_bytes());
    }

    /// What travels in the vCPU state: the standard-format area up to the last component
    /// XSTATE_BV marks as saved (later components are initial and need no bytes).
    pub fn export(&self, layout: &XsaveLayout) -> Vec<u8> {
        let bytes = self.bytes();
        let xstate_bv = u64_at(bytes, XSTATE_BV) & layout.mask;
        let len = layout.standard_len(xstate_bv).min(bytes.len());
        bytes[..len].to_vec()
    }

    /// Load an area from a peer after [`validate`] accepted it for this area's layout:
    /// copied in, the rest cleared (components past it are initial: XSTATE_BV says so).
    pub fn import(&mut self, area: &[u8], layout: &XsaveLayout) -> Result<(), XsaveRefusal> {
        validate(area, layout)?;
        let bytes = self.bytes_mut();
        if area.len() > bytes.len() {
            return Err(XsaveRefusal::TooLong);
        }
        bytes[..area.len()].copy_from_slice(area);
        bytes[area.len()..].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
