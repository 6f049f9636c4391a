//! The guest general-purpose registers the entry/exit assembly saves and restores (RSP and
//! RIP live in the VMCS guest-state area, SDM §25.4.1, so they are not here).

use core::fmt;

/// Guest GPRs, in the order the entry assembly stores them (offsets are part of the
/// assembly's contract: `GuestRegisters::OFFSET_*`).
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestRegisters {
    /// RAX.
    pub rax: u64,
    /// RBX.
    pub rbx: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// RBP.
    pub rbp: u64,
    /// R8.
    pub r8: u64,
    /// R9.
    pub r9: u64,
    /// R10.
    pub r10: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
}

/// A general-purpose register as numbered in exit qualifications (SDM Table 28-3: 0 = RAX,
/// 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, 5 = RBP, 6 = RSI, 7 = RDI, 8-15 = R8-R15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gpr(u8);

impl Gpr {
    /// RSP's number: it lives in the VMCS, not in [`GuestRegisters`].
    pub const RSP: Gpr = Gpr(4);

    /// The register numbered `n & 15`.
    pub fn from_number(n: u64) -> Self {
        // Masked to 4 bits, so the cast cannot truncate.
        Gpr((n & 0xf) as u8)
    }

    /// The register number (0..16).
    pub fn number(self) -> u8 {
        self.0
    }
}

impl GuestRegisters {
    /// Value of `gpr`; `None` for RSP (read it from the VMCS).
    pub fn get(&self, gpr: Gpr) -> Option<u64> {
        Some(match gpr.0 {
            0 => self.rax,
            1 => self.rcx,
            2 => self.rdx,
            3 => self.rbx,
            5 => self.rbp,
            6 => self.rsi,
            7 => self.rdi,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            15 => self.r15,
            _ => return None,
        })
    }

    /// Set `gpr`; returns false for RSP (write it to the VMCS).
    pub fn set(&mut self, gpr: Gpr, value: u64) -> bool {
        let slot = match gpr.0 {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            15 => &mut self.r15,
            _ => return false,
        };
        *slot = value;
        true
    }

    /// EDX:EAX as one 64-bit value (RDMSR/WRMSR/XSETBV operands).
    pub fn edx_eax(&self) -> u64 {
        (self.rdx << 32) | (self.rax & 0xffff_ffff)
    }

    /// Store a 64-bit result in EDX:EAX, clearing the upper halves (as RDMSR does).
    pub fn set_edx_eax(&mut self, value: u64) {
        self.rax = value & 0xffff_ffff;
        self.rdx = value >> 32;
    }
}

impl fmt::Debug for GuestRegisters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x} r8={:#x} \
             r9={:#x} r10={:#x} r11={:#x} r12={:#x} r13={:#x} r14={:#x} r15={:#x}",
            self.rax,
            self.rbx,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.rbp,
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15
        )
    }
}
