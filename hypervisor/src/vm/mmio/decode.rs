//! Decoding the few instructions guests use to touch device registers.
//!
//! Why so few: MMIO registers are read and written with plain moves (Linux `readl`/
//! `writel`, the heartbeat guest's volatile accesses), so tern decodes exactly MOV r/m<->
//! reg (88/89/8A/8B), MOV r/m,imm (C6 /0, C7 /0) and MOVZX/MOVSX (0F B6/B7/BE/BF), with
//! the prefixes they may carry: operand size (66), address size (67), segment overrides,
//! and REX in 64-bit mode (SDM Vol. 2A §2.1, §2.2.1). Anything else is an
//! [`DecodeError`] naming the bytes, and the VM is stopped with that reason: an emulator
//! that guesses is worse than one that refuses.
//!
//! The memory operand's effective address is *not* computed: the exit already reports the
//! guest-physical address. ModRM, SIB and displacement (RIP-relative included) are parsed
//! only to find the instruction's length and its register or immediate operand
//! (SDM Vol. 2A §2.1.5, Tables 2-1 to 2-3).

use core::fmt;

use super::paging::MAX_INSTRUCTION_LEN;

/// The code size the guest executes in (from EFER.LMA, CS.L and CS.D).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMode {
    /// Real mode, virtual-8086 or a 16-bit code segment.
    Bits16,
    /// A 32-bit code segment (protected or compatibility mode).
    Bits32,
    /// 64-bit mode (IA-32e with CS.L = 1).
    Bits64,
}

impl CpuMode {
    /// The mode from EFER.LMA, CR0.PE and the CS access rights (SDM Vol. 3C §25.4.1:
    /// bit 13 = L, bit 14 = D/B).
    pub fn from_registers(cr0: u64, efer: u64, cs_access_rights: u32) -> Self {
        let lma = efer & (1 << 10) != 0;
        let long = cs_access_rights & (1 << 13) != 0;
        let default_32 = cs_access_rights & (1 << 14) != 0;
        if lma && long {
            Self::Bits64
        } else if cr0 & 1 != 0 && default_32 {
            Self::Bits32
        } else {
            Self::Bits16
        }
    }
}

/// A general-purpose register operand as the instruction names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOperand {
    /// Register `number` (0 = RAX ... 15 = R15, the exit-qualification numbering), the
    /// low `size` bytes of it.
    Low {
        /// Register number 0-15.
        number: u8,
    },
    /// AH, CH, DH or BH: bits 15:8 of register `number` (0-3), only without REX.
    HighByte {
        /// Register number 0-3.
        number: u8,
    },
}

/// How a loaded value is widened into its destination register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// MOV: the destination has the access's size.
    None,
    /// MOVZX: zero-extended to `dest_size` bytes.
    Zero,
    /// MOVSX: sign-extended to `dest_size` bytes.
    Sign,
}

/// What a decoded instruction does with its memory operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioOperation {
    /// Load from memory into a register.
    Read {
        /// The destination.
        dest: RegisterOperand,
        /// The destination's size in bytes (1, 2, 4 or 8).
        dest_size: u8,
        /// How the value is widened.
        extension: Extension,
    },
    /// Store a register.
    WriteRegister {
        /// The source.
        src: RegisterOperand,
    },
    /// Store an immediate (already sign-extended to the access size).
    WriteImmediate {
        /// The value.
        value: u64,
    },
}

/// A decoded MMIO instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioInstruction {
    /// Its length in bytes: what RIP advances by.
    pub len: u8,
    /// The memory access size in bytes (1, 2, 4 or 8).
    pub size: u8,
    /// What it does.
    pub operation: MmioOperation,
}

/// Why the instruction could not be emulated. Carries the bytes so the crash line
/// names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// What is wrong.
    pub kind: DecodeErrorKind,
    /// The bytes fetched at RIP.
    pub bytes: [u8; MAX_INSTRUCTION_LEN],
    /// How many of them are valid.
    pub len: u8,
}

/// The reason of a [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// An opcode tern does not emulate on MMIO.
    UnsupportedOpcode,
    /// A register-only form (ModRM.mod = 3): no memory operand, so it cannot have made
    /// the access.
    RegisterOperand,
    /// C6/C7 with ModRM.reg other than 0, or a LOCK/REP prefix on a move.
    InvalidForm,
    /// The instruction runs past the bytes that could be fetched.
    Truncated,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            DecodeErrorKind::UnsupportedOpcode => "unsupported instruction",
            DecodeErrorKind::RegisterOperand => "instruction without a memory operand",
            DecodeErrorKind::InvalidForm => "invalid instruction form",
            DecodeErrorKind::Truncated => "truncated instruction",
        };
        write!(f, "MMIO access by an {what}: bytes")?;
        for b in &self.bytes[..usize::from(self.len)] {
            write!(f, " {b:02x}")?;
        }
        Ok(())
    }
}

/// A cursor over the instruction bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Result<u8, DecodeErrorKind> {
        let b = self.peek().ok_or(DecodeErrorKind::Truncated)?;
        self.at += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeErrorKind> {
        if self.at + n > self.bytes.len() {
            return Err(DecodeErrorKind::Truncated);
        }
        self.at += n;
        Ok(())
    }

    /// A little-endian immediate of `n` bytes (1, 2 or 4), sign-extended to 64 bits.
    fn immediate(&mut self, n: usize) -> Result<u64, DecodeErrorKind> {
        let mut raw = [0u8; 8];
        for slot in raw.iter_mut().take(n) {
            *slot = self.next()?;
        }
        let value = u64::from_le_bytes(raw);
        let shift = 64 - 8 * n as u32;
        Ok((((value << shift) as i64) >> shift) as u64)
    }
}

/// Prefix state (SDM Vol. 2A §2.1.1).
#[derive(Default)]
struct Prefixes {
    operand_size: bool,
    address_size: bool,
    lock_or_rep: bool,
    /// REX.W, REX.R and whether any REX was present.
    rex_w: bool,
    rex_r: bool,
    rex: bool,
}

/// Decode the instruction at the start of `bytes` executed in `mode`.
pub fn decode(bytes: &[u8], mode: CpuMode) -> Result<MmioInstruction, DecodeError> {
    decode_inner(bytes, mode).map_err(|kind| {
        let mut copy = [0u8; MAX_INSTRUCTION_LEN];
        let len = bytes.len().min(MAX_INSTRUCTION_LEN);
        copy[..len].copy_from_slice(&bytes[..len]);
        DecodeError {
            kind,
            bytes: copy,
            // At most 15.
            len: len as u8,
        }
    })
}

fn decode_inner(bytes: &[u8], mode: CpuMode) -> Result<MmioInstruction, DecodeErrorKind> {
    let bytes = &bytes[..bytes.len().min(MAX_INSTRUCTION_LEN)];
    let mut c = Cursor { bytes, at: 0 };
    let mut p = Prefixes::default();
    loop {
        match c.peek().ok_or(DecodeErrorKind::Truncated)? {
            0x66 => p.operand_size = true,
            0x67 => p.address_size = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            0xf0 | 0xf2 | 0xf3 => p.lock_or_rep = true,
            _ => break,
        }
        c.skip(1)?;
    }
    // REX must immediately precede the opcode, and exists only in 64-bit mode (SDM
    // Vol. 2A §2.2.1); elsewhere 40-4F are INC/DEC.
    if mode == CpuMode::Bits64
        && let Some(rex @ 0x40..=0x4f) = c.peek()
    {
        p.rex = true;
        p.rex_w = rex & 0x8 != 0;
        p.rex_r = rex & 0x4 != 0;
        c.skip(1)?;
    }
    if p.lock_or_rep {
        return Err(DecodeErrorKind::InvalidForm);
    }
    // Operand size of the non-byte forms (SDM Vol. 2A §2.2.1.2, Table 2-4 / §3.6).
    let wide = if p.rex_w {
        8
    } else if (mode == CpuMode::Bits16) != p.operand_size {
        2
    } else {
        4
    };
    let address_16 = match mode {
        CpuMode::Bits16 => !p.address_size,
        CpuMode::Bits32 => p.address_size,
        CpuMode::Bits64 => false,
    };
    let opcode = c.next()?;
    let (size, kind) = match opcode {
        0x88 => (1, Form::Store),
        0x89 => (wide, Form::Store),
        0x8a => (1, Form::Load(Extension::None, 1)),
        0x8b => (wide, Form::Load(Extension::None, wide)),
        0xc6 => (1, Form::StoreImmediate),
        0xc7 => (wide, Form::StoreImmediate),
        0x0f => match c.next()? {
            0xb6 => (1, Form::Load(Extension::Zero, wide)),
            0xb7 => (2, Form::Load(Extension::Zero, wide)),
            0xbe => (1, Form::Load(Extension::Sign, wide)),
            0xbf => (2, Form::Load(Extension::Sign, wide)),
            _ => return Err(DecodeErrorKind::UnsupportedOpcode),
        },
        _ => return Err(DecodeErrorKind::UnsupportedOpcode),
    };
    let modrm = c.next()?;
    let md = modrm >> 6;
    let reg = (modrm >> 3) & 7;
    let rm = modrm & 7;
    if md == 3 {
        return Err(DecodeErrorKind::RegisterOperand);
    }
    skip_memory_operand(&mut c, md, rm, address_16)?;
    let register = |operand_size: u8| {
        if operand_size == 1 && !p.rex && (4..8).contains(&reg) {
            RegisterOperand::HighByte { number: reg - 4 }
        } else {
            RegisterOperand::Low {
                number: reg | (u8::from(p.rex_r) << 3),
            }
        }
    };
    let operation = match kind {
        Form::Store => MmioOperation::WriteRegister {
            src: register(size),
        },
        Form::Load(extension, dest_size) => MmioOperation::Read {
            dest: register(dest_size),
            dest_size,
            extension,
        },
        Form::StoreImmediate => {
            if reg != 0 {
                return Err(DecodeErrorKind::InvalidForm);
            }
            // imm8 for C6, imm16 with a 16-bit operand, else imm32 sign-extended.
            let n = usize::from(size.min(4));
            MmioOperation::WriteImmediate {
                value: c.immediate(n)? & size_mask(size),
            }
        }
    };
    Ok(MmioInstruction {
        // At most 15 bytes were consumed.
        len: c.at as u8,
        size,
        operation,
    })
}

#[derive(Clone, Copy)]
enum Form {
    Store,
    /// The extension and the destination size.
    Load(Extension, u8),
    StoreImmediate,
}

/// Skip SIB and displacement of a memory ModRM (SDM Vol. 2A Tables 2-1, 2-2, 2-3).
fn skip_memory_operand(
    c: &mut Cursor<'_>,
    md: u8,
    rm: u8,
    address_16: bool,
) -> Result<(), DecodeErrorKind> {
    if address_16 {
        let disp = match (md, rm) {
            (0, 6) => 2,
            (0, _) => 0,
            (1, _) => 1,
            _ => 2,
        };
        return c.skip(disp);
    }
    let mut disp = match md {
        0 => 0,
        1 => 1,
        _ => 4,
    };
    if rm == 4 {
        let sib = c.next()?;
        // SIB base 101 with mod 00: disp32 and no base.
        if md == 0 && sib & 7 == 5 {
            disp = 4;
        }
    } else if md == 0 && rm == 5 {
        // disp32 (RIP-relative in 64-bit mode).
        disp = 4;
    }
    c.skip(disp)
}

/// The mask of an access of `size` bytes.
pub fn size_mask(size: u8) -> u64 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}
