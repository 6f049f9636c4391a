//! Guest CR0/CR4 under VMX: which bits the hypervisor owns and how a guest write becomes
//! the real value, the read shadow and EFER.LMA.
//!
//! VMX forces some CR bits (SDM A.7/A.8: CR0.NE, CR4.VMXE, and CR0.PE/PG unless "unrestricted
//! guest", §27.3.1.1). Those bits and CR0.PG/CR4.PAE are "owned" by the hypervisor through
//! the guest/host masks (SDM §25.6.6): guest reads of owned bits return the read shadow, and
//! guest writes that change an owned bit exit, so [`guest_cr0_write`]/[`guest_cr4_write`]
//! can keep the forced bits set behind the guest's back and switch long mode: when the guest
//! sets CR0.PG with EFER.LME, EFER.LMA and the "IA-32e mode guest" entry control must be
//! set by the hypervisor (SDM Vol. 3A §10.8.5 on LMA; §27.3.1.1 on the entry control).

use crate::vmx::caps::{CR0_PE, CR0_PG};

/// CR0.ET: hard-wired to 1 on modern processors.
pub const CR0_ET: u64 = 1 << 4;
/// CR0.NE.
pub const CR0_NE: u64 = 1 << 5;
/// CR0.NW.
pub const CR0_NW: u64 = 1 << 29;
/// CR0.CD.
pub const CR0_CD: u64 = 1 << 30;
/// CR4.PAE.
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.VMXE.
pub const CR4_VMXE: u64 = 1 << 13;
/// IA32_EFER.LME.
pub const EFER_LME: u64 = 1 << 8;
/// IA32_EFER.LMA.
pub const EFER_LMA: u64 = 1 << 10;

/// CR0 bits the hypervisor owns: forced bits (except PE/PG with unrestricted guest), bits
/// that must stay 0, and PG for the long-mode switch.
pub fn cr0_host_mask(fixed0: u64, fixed1: u64) -> u64 {
    ((fixed0 & !(CR0_PE | CR0_PG)) | (!fixed1 & 0xffff_ffff) | CR0_PG) & 0xffff_ffff
}

/// CR4 bits the hypervisor owns: forced bits (VMXE), bits that must stay 0, and PAE.
pub fn cr4_host_mask(fixed0: u64, fixed1: u64) -> u64 {
    (fixed0 | (!fixed1 & 0xffff_ffff) | CR4_PAE) & 0xffff_ffff
}

/// The CR0 value the CPU runs the guest with when the guest asked for `value`: forced bits
/// set (PE/PG exempt under unrestricted guest), ET set, unsupported bits cleared.
pub fn real_cr0(value: u64, fixed0: u64, fixed1: u64) -> u64 {
    (value | (fixed0 & !(CR0_PE | CR0_PG)) | CR0_ET) & fixed1
}

/// The result of a guest CR0 write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cr0Update {
    /// Value for the guest CR0 field.
    pub cr0: u64,
    /// Value for the CR0 read shadow (what the guest believes).
    pub shadow: u64,
    /// Value for the guest IA32_EFER field.
    pub efer: u64,
    /// Whether "IA-32e mode guest" must be set on the next entry.
    pub ia32e_mode: bool,
}

/// A guest write of `value` to CR0 (MOV to CR0 or CLTS/LMSW turned into a value), with the
/// guest's current CR4 *shadow* and EFER. `None` = inject #GP (SDM Vol. 3A §2.5 and the
/// MOV CR reference: reserved bits 63:32, NW without CD, PG without PE, PG with LME but
/// without PAE).
pub fn guest_cr0_write(
    value: u64,
    cr4_shadow: u64,
    efer: u64,
    fixed0: u64,
    fixed1: u64,
) -> Option<Cr0Update> {
    if value >> 32 != 0
        || (value & CR0_NW != 0 && value & CR0_CD == 0)
        || (value & CR0_PG != 0 && value & CR0_PE == 0)
        || (value & CR0_PG != 0 && efer & EFER_LME != 0 && cr4_shadow & CR4_PAE == 0)
    {
        return None;
    }
    let cr0 = real_cr0(value, fixed0, fixed1);
    let long_mode = value & CR0_PG != 0 && efer & EFER_LME != 0;
    let efer = if long_mode {
        efer | EFER_LMA
    } else {
        efer & !EFER_LMA
    };
    Some(Cr0Update {
        cr0,
        shadow: value | CR0_ET,
        efer,
        ia32e_mode: long_mode,
    })
}

/// A guest write of `value` to CR4. Returns `(real CR4, read shadow)` or `None` = inject
/// #GP: VMXE (VMX is hidden from guests), bits the CPU does not support, clearing PAE in
/// long mode.
pub fn guest_cr4_write(value: u64, efer: u64, fixed0: u64, fixed1: u64) -> Option<(u64, u64)> {
    if value & CR4_VMXE != 0 || value & !fixed1 & !CR4_VMXE != 0 {
        return None;
    }
    if efer & EFER_LMA != 0 && value & CR4_PAE == 0 {
        return None;
    }
    Some(((value | fixed0) & fixed1, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Typical values: CR0 FIXED0 = PE|NE|PG, FIXED1 = low 32 bits; CR4 FIXED0 = VMXE,
    // FIXED1 = 0x3727ff.
    const CR0_F0: u64 = 0x8000_0021;
    const CR0_F1: u64 = 0xffff_ffff;
    const CR4_F0: u64 = 0x2000;
    const CR4_F1: u64 = 0x37_27ff;

    #[test]
    fn masks_own_forced_bits_and_paging_switches() {
        assert_eq!(cr0_host_mask(CR0_F0, CR0_F1), CR0_NE | CR0_PG);
        let m4 = cr4_host_mask(CR4_F0, CR4_F1);
        assert_ne!(m4 & CR4_VMXE, 0);
        assert_ne!(m4 & CR4_PAE, 0);
        assert_ne!(m4 & (1 << 14), 0, "unsupported bit 14 owned");
        assert_eq!(m4 & (1 << 7), 0, "PGE left to the guest");
    }

    #[test]
    fn cr0_write_enters_and_leaves_long_mode() {
        // PVH entry: protected mode, paging off.
        let u = guest_cr0_write(CR0_PE, 0, 0, CR0_F0, CR0_F1).unwrap();
        assert_eq!(u.cr0, CR0_PE | CR0_ET | CR0_NE);
        assert_eq!(u.shadow, CR0_PE | CR0_ET);
        assert!(!u.ia32e_mode);
        // Paging on with LME and PAE: long mode.
        let u = guest_cr0_write(CR0_PE | CR0_PG, CR4_PAE, EFER_LME, CR0_F0, CR0_F1).unwrap();
        assert_eq!(u.efer, EFER_LME | EFER_LMA);
        assert!(u.ia32e_mode);
        // Paging off again: LMA clears.
        let u = guest_cr0_write(CR0_PE, CR4_PAE, EFER_LME | EFER_LMA, CR0_F0, CR0_F1).unwrap();
        assert_eq!(u.efer, EFER_LME);
        assert!(!u.ia32e_mode);
    }

    #[test]
    fn cr0_write_faults() {
        assert_eq!(guest_cr0_write(1 << 32, 0, 0, CR0_F0, CR0_F1), None);
        assert_eq!(guest_cr0_write(CR0_NW | CR0_PE, 0, 0, CR0_F0, CR0_F1), None);
        assert_eq!(guest_cr0_write(CR0_PG, 0, 0, CR0_F0, CR0_F1), None);
        assert_eq!(
            guest_cr0_write(CR0_PG | CR0_PE, 0, EFER_LME, CR0_F0, CR0_F1),
            None
        );
    }

    #[test]
    fn cr4_write_rules() {
        assert_eq!(
            guest_cr4_write(CR4_PAE, 0, CR4_F0, CR4_F1),
            Some((CR4_PAE | CR4_VMXE, CR4_PAE))
        );
        assert_eq!(guest_cr4_write(CR4_VMXE, 0, CR4_F0, CR4_F1), None);
        assert_eq!(guest_cr4_write(1 << 14, 0, CR4_F0, CR4_F1), None);
        assert_eq!(guest_cr4_write(0, EFER_LMA, CR4_F0, CR4_F1), None);
    }
}
