//! The host state a VM exit loads (SDM Vol. 3C §25.5, checked by §27.2.3 and loaded by
//! §28.5): the hypervisor's own control registers, segments, descriptor tables and MSRs,
//! captured on bare metal and written here.

use crate::vmx::error::VmxError;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::host;

/// Host register values for the host-state area.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostState {
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CS selector (non-zero).
    pub cs: u16,
    /// SS selector.
    pub ss: u16,
    /// DS selector.
    pub ds: u16,
    /// ES selector.
    pub es: u16,
    /// FS selector.
    pub fs: u16,
    /// GS selector.
    pub gs: u16,
    /// TR selector (non-zero).
    pub tr: u16,
    /// IA32_FS_BASE.
    pub fs_base: u64,
    /// IA32_GS_BASE.
    pub gs_base: u64,
    /// Base of the TSS TR selects.
    pub tr_base: u64,
    /// GDTR base.
    pub gdtr_base: u64,
    /// IDTR base.
    pub idtr_base: u64,
    /// IA32_SYSENTER_CS.
    pub sysenter_cs: u32,
    /// IA32_SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// IA32_SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// IA32_PAT.
    pub pat: u64,
    /// Where execution continues after a VM exit (the exit landing of the entry assembly).
    pub rip: u64,
}

/// Why host state cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStateError {
    /// A selector has RPL or TI set (SDM §27.2.3: both must be 0).
    SelectorRplTi(u16),
    /// CS or TR is 0 (§27.2.3).
    NullSelector(&'static str),
}

impl core::fmt::Display for HostStateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::SelectorRplTi(s) => write!(f, "host selector {s:#x} has RPL/TI bits set"),
            Self::NullSelector(which) => write!(f, "host {which} selector is null"),
        }
    }
}

/// The base address of a 64-bit TSS descriptor (SDM Vol. 3A §8.2.3, Figure 8-4) given its
/// two 8-byte halves as read from the GDT.
pub fn tss_base(low: u64, high: u64) -> u64 {
    ((low >> 16) & 0xff_ffff) | (((low >> 56) & 0xff) << 24) | ((high & 0xffff_ffff) << 32)
}

impl HostState {
    /// Check the selector rules of SDM §27.2.3.
    pub fn validate(&self) -> Result<(), HostStateError> {
        for s in [
            self.cs, self.ss, self.ds, self.es, self.fs, self.gs, self.tr,
        ] {
            if s & 0x7 != 0 {
                return Err(HostStateError::SelectorRplTi(s));
            }
        }
        if self.cs == 0 {
            return Err(HostStateError::NullSelector("CS"));
        }
        if self.tr == 0 {
            return Err(HostStateError::NullSelector("TR"));
        }
        Ok(())
    }
}

/// Write the host-state area (HOST_RSP is written by the entry assembly before every entry).
pub fn write_host_state(vmcs: &mut impl VmcsAccess, h: &HostState) -> Result<(), VmxError> {
    h.validate()?;
    vmcs.write_natural(host::CR0, h.cr0)?;
    vmcs.write_natural(host::CR3, h.cr3)?;
    vmcs.write_natural(host::CR4, h.cr4)?;
    vmcs.write16(host::CS_SELECTOR, h.cs)?;
    vmcs.write16(host::SS_SELECTOR, h.ss)?;
    vmcs.write16(host::DS_SELECTOR, h.ds)?;
    vmcs.write16(host::ES_SELECTOR, h.es)?;
    vmcs.write16(host::FS_SELECTOR, h.fs)?;
    vmcs.write16(host::GS_SELECTOR, h.gs)?;
    vmcs.write16(host::TR_SELECTOR, h.tr)?;
    vmcs.write_natural(host::FS_BASE, h.fs_base)?;
    vmcs.write_natural(host::GS_BASE, h.gs_base)?;
    vmcs.write_natural(host::TR_BASE, h.tr_base)?;
    vmcs.write_natural(host::GDTR_BASE, h.gdtr_base)?;
    vmcs.write_natural(host::IDTR_BASE, h.idtr_base)?;
    vmcs.write32(host::IA32_SYSENTER_CS, h.sysenter_cs)?;
    vmcs.write_natural(host::IA32_SYSENTER_ESP, h.sysenter_esp)?;
    vmcs.write_natural(host::IA32_SYSENTER_EIP, h.sysenter_eip)?;
    vmcs.write64(host::IA32_EFER, h.efer)?;
    vmcs.write64(host::IA32_PAT, h.pat)?;
    vmcs.write_natural(host::RIP, h.rip)
}
