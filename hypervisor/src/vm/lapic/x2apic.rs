//! The x2APIC MSR view of the register file (SDM Vol. 3A 11.12.1, Table 11-6).
//!
//! Why a separate view: x2APIC mode is stricter than the MMIO page. Where the xAPIC page
//! silently ignores a bad access, RDMSR/WRMSR raise #GP (11.12.1.2, 11.12.1.3): the range
//! only exists in x2APIC mode, write-only registers (EOI, SELF IPI) fault on read, read-only
//! ones fault on write, reserved bits fault, and a non-zero EOI or ESR write faults. The ICR
//! is one 64-bit MSR with a 32-bit destination, the ID is the full 32-bit x2APIC ID and LDR
//! is derived from it (11.12.10.2). Each fault is a value the exit handler turns into #GP(0).

use super::registers::{DIVIDE_WRITABLE, RegisterFault, SVR_WRITABLE, index};
use super::{ApicMode, ESR_SEND_ILLEGAL_VECTOR, LVT_WRITABLE, Lapic, LapicOutput};
use crate::vm::interrupts::message::TriggerMode;

/// First and last MSR of the x2APIC range.
pub const X2APIC_MSR_FIRST: u32 = 0x800;
/// Last MSR of the x2APIC range.
pub const X2APIC_MSR_LAST: u32 = 0x8ff;

/// Why an x2APIC MSR access faults; every variant means "inject #GP(0)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum X2ApicFault {
    /// The APIC is not in x2APIC mode (the MSR range does not exist).
    NotX2ApicMode,
    /// The MSR is outside 0x800-0x8FF or is not an implemented register.
    Unimplemented(u32),
    /// RDMSR of a write-only register (EOI, SELF IPI).
    WriteOnly(u32),
    /// WRMSR of a read-only register.
    ReadOnly(u32),
    /// WRMSR with reserved bits set.
    ReservedBits {
        /// The MSR.
        msr: u32,
        /// The value written.
        value: u64,
    },
}

/// The logical x2APIC ID derived from the x2APIC ID (SDM 11.12.10.2): cluster in bits
/// 31:16, one-hot position in the cluster in bits 15:0.
pub(crate) fn logical_id(x2apic_id: u32) -> u32 {
    ((x2apic_id >> 4) << 16) | (1 << (x2apic_id & 0xf))
}

/// ICR bits software may write in x2APIC mode: the low-half fields plus the destination.
const ICR_WRITABLE: u64 = 0xffff_ffff_000c_cfff;

impl Lapic {
    fn x2apic_index(&self, msr: u32) -> Result<u32, X2ApicFault> {
        if self.mode() != ApicMode::X2Apic {
            return Err(X2ApicFault::NotX2ApicMode);
        }
        if !(X2APIC_MSR_FIRST..=X2APIC_MSR_LAST).contains(&msr) {
            return Err(X2ApicFault::Unimplemented(msr));
        }
        Ok(msr - X2APIC_MSR_FIRST)
    }

    /// RDMSR of an x2APIC register.
    pub fn msr_read(&self, msr: u32, now: u64) -> Result<u64, X2ApicFault> {
        let idx = self.x2apic_index(msr)?;
        match idx {
            index::EOI | index::SELF_IPI => Err(X2ApicFault::WriteOnly(msr)),
            index::ICR_LOW => Ok(self.regs.icr),
            _ => self
                .read_register(idx, now)
                .map(u64::from)
                .ok_or(X2ApicFault::Unimplemented(msr)),
        }
    }

    /// WRMSR of an x2APIC register.
    pub fn msr_write(
        &mut self,
        msr: u32,
        value: u64,
        now: u64,
    ) -> Result<Option<LapicOutput>, X2ApicFault> {
        let idx = self.x2apic_index(msr)?;
        let reserved = |mask: u64| {
            if value & !mask != 0 {
                Err(X2ApicFault::ReservedBits { msr, value })
            } else {
                Ok(())
            }
        };
        match idx {
            index::ICR_LOW => {
                reserved(ICR_WRITABLE)?;
                self.regs.icr = value;
                return Ok(self.send_ipi());
            }
            index::SELF_IPI => {
                reserved(0xff)?;
                let vector = value as u8;
                if vector < 16 {
                    self.record_error(ESR_SEND_ILLEGAL_VECTOR);
                } else {
                    self.accept(vector, TriggerMode::Edge);
                }
                return Ok(None);
            }
            index::EOI | index::ESR => reserved(0)?,
            index::TPR => reserved(0xff)?,
            index::SVR => reserved(u64::from(SVR_WRITABLE))?,
            i @ index::LVT_TIMER..=index::LVT_ERROR => {
                reserved(u64::from(LVT_WRITABLE[(i - index::LVT_TIMER) as usize]))?;
            }
            index::TIMER_DIVIDE => reserved(u64::from(DIVIDE_WRITABLE))?,
            index::TIMER_INITIAL => reserved(0xffff_ffff)?,
            index::ID | index::LDR => return Err(X2ApicFault::ReadOnly(msr)),
            _ => {}
        }
        // The checks above leave only 32-bit values.
        let value = value as u32;
        self.write_common_register(idx, value, now)
            .map_err(|fault| match fault {
                RegisterFault::ReadOnly => X2ApicFault::ReadOnly(msr),
                RegisterFault::Unimplemented => X2ApicFault::Unimplemented(msr),
            })
    }
}
