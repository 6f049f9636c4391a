//! VMCS field encodings used by tern (SDM Vol. 3C Appendix B "Field Encoding in VMCS").

#![allow(missing_docs)]

use super::{Field16, Field32, Field64, FieldNatural};

/// Virtual-processor identifier.
pub const VPID: Field16 = Field16(0x0000);

/// Guest-state area (SDM §25.4).
pub mod guest {
    use super::*;
    pub const ES_SELECTOR: Field16 = Field16(0x0800);
    pub const CS_SELECTOR: Field16 = Field16(0x0802);
    pub const SS_SELECTOR: Field16 = Field16(0x0804);
    pub const DS_SELECTOR: Field16 = Field16(0x0806);
    pub const FS_SELECTOR: Field16 = Field16(0x0808);
    pub const GS_SELECTOR: Field16 = Field16(0x080a);
    pub const LDTR_SELECTOR: Field16 = Field16(0x080c);
    pub const TR_SELECTOR: Field16 = Field16(0x080e);
    pub const VMCS_LINK_POINTER: Field64 = Field64(0x2800);
    pub const IA32_DEBUGCTL: Field64 = Field64(0x2802);
    pub const IA32_PAT: Field64 = Field64(0x2804);
    pub const IA32_EFER: Field64 = Field64(0x2806);
    pub const ES_LIMIT: Field32 = Field32(0x4800);
    pub const CS_LIMIT: Field32 = Field32(0x4802);
    pub const SS_LIMIT: Field32 = Field32(0x4804);
    pub const DS_LIMIT: Field32 = Field32(0x4806);
    pub const FS_LIMIT: Field32 = Field32(0x4808);
    pub const GS_LIMIT: Field32 = Field32(0x480a);
    pub const LDTR_LIMIT: Field32 = Field32(0x480c);
    pub const TR_LIMIT: Field32 = Field32(0x480e);
    pub const GDTR_LIMIT: Field32 = Field32(0x4810);
    pub const IDTR_LIMIT: Field32 = Field32(0x4812);
    pub const ES_ACCESS_RIGHTS: Field32 = Field32(0x4814);
    pub const CS_ACCESS_RIGHTS: Field32 = Field32(0x4816);
    pub const SS_ACCESS_RIGHTS: Field32 = Field32(0x4818);
    pub const DS_ACCESS_RIGHTS: Field32 = Field32(0x481a);
    pub const FS_ACCESS_RIGHTS: Field32 = Field32(0x481c);
    pub const GS_ACCESS_RIGHTS: Field32 = Field32(0x481e);
    pub const LDTR_ACCESS_RIGHTS: Field32 = Field32(0x4820);
    pub const TR_ACCESS_RIGHTS: Field32 = Field32(0x4822);
    pub const INTERRUPTIBILITY_STATE: Field32 = Field32(0x4824);
    pub const ACTIVITY_STATE: Field32 = Field32(0x4826);
    pub const IA32_SYSENTER_CS: Field32 = Field32(0x482a);
    pub const PREEMPTION_TIMER_VALUE: Field32 = Field32(0x482e);
    pub const CR0: FieldNatural = FieldNatural(0x6800);
    pub const CR3: FieldNatural = FieldNatural(0x6802);
    pub const CR4: FieldNatural = FieldNatural(0x6804);
    pub const ES_BASE: FieldNatural = FieldNatural(0x6806);
    pub const CS_BASE: FieldNatural = FieldNatural(0x6808);
    pub const SS_BASE: FieldNatural = FieldNatural(0x680a);
    pub const DS_BASE: FieldNatural = FieldNatural(0x680c);
    pub const FS_BASE: FieldNatural = FieldNatural(0x680e);
    pub const GS_BASE: FieldNatural = FieldNatural(0x6810);
    pub const LDTR_BASE: FieldNatural = FieldNatural(0x6812);
    pub const TR_BASE: FieldNatural = FieldNatural(0x6814);
    pub const GDTR_BASE: FieldNatural = FieldNatural(0x6816);
    pub const IDTR_BASE: FieldNatural = FieldNatural(0x6818);
    pub const DR7: FieldNatural = FieldNatural(0x681a);
    pub const RSP: FieldNatural = FieldNatural(0x681c);
    pub const RIP: FieldNatural = FieldNatural(0x681e);
    pub const RFLAGS: FieldNatural = FieldNatural(0x6820);
    pub const PENDING_DEBUG_EXCEPTIONS: FieldNatural = FieldNatural(0x6822);
    pub const IA32_SYSENTER_ESP: FieldNatural = FieldNatural(0x6824);
    pub const IA32_SYSENTER_EIP: FieldNatural = FieldNatural(0x6826);
}

/// Host-state area (SDM §25.5).
pub mod host {
    use super::*;
    pub const ES_SELECTOR: Field16 = Field16(0x0c00);
    pub const CS_SELECTOR: Field16 = Field16(0x0c02);
    pub const SS_SELECTOR: Field16 = Field16(0x0c04);
    pub const DS_SELECTOR: Field16 = Field16(0x0c06);
    pub const FS_SELECTOR: Field16 = Field16(0x0c08);
    pub const GS_SELECTOR: Field16 = Field16(0x0c0a);
    pub const TR_SELECTOR: Field16 = Field16(0x0c0c);
    pub const IA32_PAT: Field64 = Field64(0x2c00);
    pub const IA32_EFER: Field64 = Field64(0x2c02);
    pub const IA32_SYSENTER_CS: Field32 = Field32(0x4c00);
    pub const CR0: FieldNatural = FieldNatural(0x6c00);
    pub const CR3: FieldNatural = FieldNatural(0x6c02);
    pub const CR4: FieldNatural = FieldNatural(0x6c04);
    pub const FS_BASE: FieldNatural = FieldNatural(0x6c06);
    pub const GS_BASE: FieldNatural = FieldNatural(0x6c08);
    pub const TR_BASE: FieldNatural = FieldNatural(0x6c0a);
    pub const GDTR_BASE: FieldNatural = FieldNatural(0x6c0c);
    pub const IDTR_BASE: FieldNatural = FieldNatural(0x6c0e);
    pub const IA32_SYSENTER_ESP: FieldNatural = FieldNatural(0x6c10);
    pub const IA32_SYSENTER_EIP: FieldNatural = FieldNatural(0x6c12);
    pub const RSP: FieldNatural = FieldNatural(0x6c14);
    pub const RIP: FieldNatural = FieldNatural(0x6c16);
}

/// VM-execution, exit and entry control fields (SDM §25.6-25.8).
pub mod control {
    use super::*;
    pub const IO_BITMAP_A: Field64 = Field64(0x2000);
    pub const IO_BITMAP_B: Field64 = Field64(0x2002);
    pub const MSR_BITMAP: Field64 = Field64(0x2004);
    pub const EXIT_MSR_STORE_ADDR: Field64 = Field64(0x2006);
    pub const EXIT_MSR_LOAD_ADDR: Field64 = Field64(0x2008);
    pub const ENTRY_MSR_LOAD_ADDR: Field64 = Field64(0x200a);
    pub const PML_ADDRESS: Field64 = Field64(0x200e);
    pub const TSC_OFFSET: Field64 = Field64(0x2010);
    pub const EPT_POINTER: Field64 = Field64(0x201a);
    pub const PIN_BASED: Field32 = Field32(0x4000);
    pub const PRIMARY_PROC_BASED: Field32 = Field32(0x4002);
    pub const EXCEPTION_BITMAP: Field32 = Field32(0x4004);
    pub const PAGE_FAULT_ERROR_MASK: Field32 = Field32(0x4006);
    pub const PAGE_FAULT_ERROR_MATCH: Field32 = Field32(0x4008);
    pub const CR3_TARGET_COUNT: Field32 = Field32(0x400a);
    pub const EXIT_CONTROLS: Field32 = Field32(0x400c);
    pub const EXIT_MSR_STORE_COUNT: Field32 = Field32(0x400e);
    pub const EXIT_MSR_LOAD_COUNT: Field32 = Field32(0x4010);
    pub const ENTRY_CONTROLS: Field32 = Field32(0x4012);
    pub const ENTRY_MSR_LOAD_COUNT: Field32 = Field32(0x4014);
    pub const ENTRY_INTERRUPTION_INFO: Field32 = Field32(0x4016);
    pub const ENTRY_EXCEPTION_ERROR_CODE: Field32 = Field32(0x4018);
    pub const ENTRY_INSTRUCTION_LENGTH: Field32 = Field32(0x401a);
    pub const SECONDARY_PROC_BASED: Field32 = Field32(0x401e);
    pub const CR0_GUEST_HOST_MASK: FieldNatural = FieldNatural(0x6000);
    pub const CR4_GUEST_HOST_MASK: FieldNatural = FieldNatural(0x6002);
    pub const CR0_READ_SHADOW: FieldNatural = FieldNatural(0x6004);
    pub const CR4_READ_SHADOW: FieldNatural = FieldNatural(0x6006);
}

/// Read-only VM-exit information fields (SDM §25.9).
pub mod exit_info {
    use super::*;
    pub const GUEST_PHYSICAL_ADDRESS: Field64 = Field64(0x2400);
    pub const VM_INSTRUCTION_ERROR: Field32 = Field32(0x4400);
    pub const EXIT_REASON: Field32 = Field32(0x4402);
    pub const INTERRUPTION_INFO: Field32 = Field32(0x4404);
    pub const INTERRUPTION_ERROR_CODE: Field32 = Field32(0x4406);
    pub const IDT_VECTORING_INFO: Field32 = Field32(0x4408);
    pub const IDT_VECTORING_ERROR_CODE: Field32 = Field32(0x440a);
    pub const INSTRUCTION_LENGTH: Field32 = Field32(0x440c);
    pub const INSTRUCTION_INFO: Field32 = Field32(0x440e);
    pub const QUALIFICATION: FieldNatural = FieldNatural(0x6400);
    pub const GUEST_LINEAR_ADDRESS: FieldNatural = FieldNatural(0x640a);
}

/// Every encoding above, for the fake VMCS and the width test.
pub const ALL: &[u32] = &[
    VPID.0,
    guest::ES_SELECTOR.0,
    guest::CS_SELECTOR.0,
    guest::SS_SELECTOR.0,
    guest::DS_SELECTOR.0,
    guest::FS_SELECTOR.0,
    guest::GS_SELECTOR.0,
    guest::LDTR_SELECTOR.0,
    guest::TR_SELECTOR.0,
    guest::VMCS_LINK_POINTER.0,
    guest::IA32_DEBUGCTL.0,
    guest::IA32_PAT.0,
    guest::IA32_EFER.0,
    guest::ES_LIMIT.0,
    guest::CS_LIMIT.0,
    guest::SS_LIMIT.0,
    guest::DS_LIMIT.0,
    guest::FS_LIMIT.0,
    guest::GS_LIMIT.0,
    guest::LDTR_LIMIT.0,
    guest::TR_LIMIT.0,
    guest::GDTR_LIMIT.0,
    guest::IDTR_LIMIT.0,
    guest::ES_ACCESS_RIGHTS.0,
    guest::CS_ACCESS_RIGHTS.0,
    guest::SS_ACCESS_RIGHTS.0,
    guest::DS_ACCESS_RIGHTS.0,
    guest::FS_ACCESS_RIGHTS.0,
    guest::GS_ACCESS_RIGHTS.0,
    guest::LDTR_ACCESS_RIGHTS.0,
    guest::TR_ACCESS_RIGHTS.0,
    guest::INTERRUPTIBILITY_STATE.0,
    guest::ACTIVITY_STATE.0,
    guest::IA32_SYSENTER_CS.0,
    guest::PREEMPTION_TIMER_VALUE.0,
    guest::CR0.0,
    guest::CR3.0,
    guest::CR4.0,
    guest::ES_BASE.0,
    guest::CS_BASE.0,
    guest::SS_BASE.0,
    guest::DS_BASE.0,
    guest::FS_BASE.0,
    guest::GS_BASE.0,
    guest::LDTR_BASE.0,
    guest::TR_BASE.0,
    guest::GDTR_BASE.0,
    guest::IDTR_BASE.0,
    guest::DR7.0,
    guest::RSP.0,
    guest::RIP.0,
    guest::RFLAGS.0,
    guest::PENDING_DEBUG_EXCEPTIONS.0,
    guest::IA32_SYSENTER_ESP.0,
    guest::IA32_SYSENTER_EIP.0,
    host::ES_SELECTOR.0,
    host::CS_SELECTOR.0,
    host::SS_SELECTOR.0,
    host::DS_SELECTOR.0,
    host::FS_SELECTOR.0,
    host::GS_SELECTOR.0,
    host::TR_SELECTOR.0,
    host::IA32_PAT.0,
    host::IA32_EFER.0,
    host::IA32_SYSENTER_CS.0,
    host::CR0.0,
    host::CR3.0,
    host::CR4.0,
    host::FS_BASE.0,
    host::GS_BASE.0,
    host::TR_BASE.0,
    host::GDTR_BASE.0,
    host::IDTR_BASE.0,
    host::IA32_SYSENTER_ESP.0,
    host::IA32_SYSENTER_EIP.0,
    host::RSP.0,
    host::RIP.0,
    control::IO_BITMAP_A.0,
    control::IO_BITMAP_B.0,
    control::MSR_BITMAP.0,
    control::EXIT_MSR_STORE_ADDR.0,
    control::EXIT_MSR_LOAD_ADDR.0,
    control::ENTRY_MSR_LOAD_ADDR.0,
    control::PML_ADDRESS.0,
    control::TSC_OFFSET.0,
    control::EPT_POINTER.0,
    control::PIN_BASED.0,
    control::PRIMARY_PROC_BASED.0,
    control::EXCEPTION_BITMAP.0,
    control::PAGE_FAULT_ERROR_MASK.0,
    control::PAGE_FAULT_ERROR_MATCH.0,
    control::CR3_TARGET_COUNT.0,
    control::EXIT_CONTROLS.0,
    control::EXIT_MSR_STORE_COUNT.0,
    control::EXIT_MSR_LOAD_COUNT.0,
    control::ENTRY_CONTROLS.0,
    control::ENTRY_MSR_LOAD_COUNT.0,
    control::ENTRY_INTERRUPTION_INFO.0,
    control::ENTRY_EXCEPTION_ERROR_CODE.0,
    control::ENTRY_INSTRUCTION_LENGTH.0,
    control::SECONDARY_PROC_BASED.0,
    control::CR0_GUEST_HOST_MASK.0,
    control::CR4_GUEST_HOST_MASK.0,
    control::CR0_READ_SHADOW.0,
    control::CR4_READ_SHADOW.0,
    exit_info::GUEST_PHYSICAL_ADDRESS.0,
    exit_info::VM_INSTRUCTION_ERROR.0,
    exit_info::EXIT_REASON.0,
    exit_info::INTERRUPTION_INFO.0,
    exit_info::INTERRUPTION_ERROR_CODE.0,
    exit_info::IDT_VECTORING_INFO.0,
    exit_info::IDT_VECTORING_ERROR_CODE.0,
    exit_info::INSTRUCTION_LENGTH.0,
    exit_info::INSTRUCTION_INFO.0,
    exit_info::QUALIFICATION.0,
    exit_info::GUEST_LINEAR_ADDRESS.0,
];

#[cfg(test)]
mod tests {
    use super::super::encoding_width;
    use super::*;

    /// The Rust type of every constant agrees with the width bits of its encoding.
    #[test]
    fn declared_types_match_encoding_widths() {
        macro_rules! check {
            ($width:expr, $($f:expr),+ $(,)?) => { $( assert_eq!(encoding_width($f.0), $width, "{:#x}", $f.0); )+ };
        }
        check!(
            0,
            VPID,
            guest::CS_SELECTOR,
            guest::TR_SELECTOR,
            host::TR_SELECTOR
        );
        check!(
            1,
            guest::VMCS_LINK_POINTER,
            guest::IA32_EFER,
            host::IA32_PAT,
            control::EPT_POINTER,
            control::MSR_BITMAP,
            exit_info::GUEST_PHYSICAL_ADDRESS
        );
        check!(
            2,
            guest::CS_ACCESS_RIGHTS,
            guest::PREEMPTION_TIMER_VALUE,
            control::PIN_BASED,
            control::SECONDARY_PROC_BASED,
            exit_info::EXIT_REASON,
            host::IA32_SYSENTER_CS
        );
        check!(
            3,
            guest::RIP,
            guest::CR0,
            host::RIP,
            control::CR4_READ_SHADOW,
            exit_info::QUALIFICATION
        );
        // Every 64-bit encoding is the "full" access type (bit 0 clear).
        for e in ALL {
            if encoding_width(*e) == 1 {
                assert_eq!(e & 1, 0, "{e:#x}");
            }
        }
        let mut sorted = ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALL.len(), "no encoding listed twice");
    }
}
