//! The guest's memory-type range registers (SDM Vol. 3A §11.11): stored, validated on write
//! and returned, never enforced.
//!
//! Why model them at all if EPT memory types decide (tern maps guest RAM write-back and
//! ignores guest PAT/MTRR in the EPT entries): Linux reads MTRRCAP and the ranges at boot,
//! prints "MTRRs disabled" or rebuilds PAT-only mode when they look wrong, and writes them
//! back (`mtrr_bp_init`, `cache_cpu_init`); a firmware-like guest programs them before
//! enabling caches. What matters is that the values a guest writes are checked like the
//! CPU checks them (#GP on reserved bits or an invalid type) and read back unchanged, on
//! this host and after migration (they travel in the vCPU state's MSR list).
//!
//! Offered: 8 variable ranges, the 11 fixed-range MSRs and write-combining (MTRRCAP =
//! 0x508: VCNT=8, FIX, WC; no SMRR).

/// IA32_MTRRCAP.
pub const MTRRCAP: u32 = 0xfe;
/// IA32_MTRR_DEF_TYPE.
pub const DEF_TYPE: u32 = 0x2ff;
/// IA32_MTRR_PHYSBASE0; PHYSMASKn is PHYSBASEn + 1, range n at 0x200 + 2n.
pub const PHYSBASE0: u32 = 0x200;
/// Number of variable ranges offered.
pub const VARIABLE_RANGES: usize = 8;
/// The fixed-range MTRRs (SDM Table 11-9): FIX64K_00000, FIX16K_80000, FIX16K_A0000,
/// FIX4K_C0000 .. FIX4K_F8000.
pub const FIXED: [u32; 11] = [
    0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
];
/// IA32_MTRRCAP as the guest reads it (SDM Figure 11-5).
pub const MTRRCAP_VALUE: u64 = VARIABLE_RANGES as u64 | (1 << 8) | (1 << 10);

/// DEF_TYPE: type in 7:0, FE (fixed enable) bit 10, E (enable) bit 11 (SDM Figure 11-6).
const DEF_TYPE_WRITABLE: u64 = 0xff | (1 << 10) | (1 << 11);

/// Whether `t` is a memory type an MTRR may hold: UC 0, WC 1, WT 4, WP 5, WB 6 (SDM
/// Table 11-8; 2, 3 and 7 and above are reserved and #GP).
pub fn is_mtrr_type(t: u64) -> bool {
    matches!(t, 0 | 1 | 4 | 5 | 6)
}

/// The guest's MTRRs (DEF_TYPE, fixed and variable ranges), all zero at reset (SDM §11.11.5:
/// MTRRs disabled, everything UC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mtrrs {
    /// IA32_MTRR_DEF_TYPE.
    pub def_type: u64,
    /// The fixed-range MSRs in [`FIXED`] order.
    pub fixed: [u64; FIXED.len()],
    /// (PHYSBASEn, PHYSMASKn).
    pub variable: [(u64, u64); VARIABLE_RANGES],
}

/// Where an MTRR MSR's value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    DefType,
    Fixed(usize),
    Base(usize),
    Mask(usize),
}

fn slot(msr: u32) -> Option<Slot> {
    if msr == DEF_TYPE {
        return Some(Slot::DefType);
    }
    if let Some(i) = FIXED.iter().position(|&m| m == msr) {
        return Some(Slot::Fixed(i));
    }
    let offset = msr.checked_sub(PHYSBASE0)? as usize;
    let n = offset / 2;
    (n < VARIABLE_RANGES).then_some(if offset.is_multiple_of(2) {
        Slot::Base(n)
    } else {
        Slot::Mask(n)
    })
}

/// Whether `msr` is a stored MTRR (not MTRRCAP, which is read-only).
pub fn is_mtrr(msr: u32) -> bool {
    slot(msr).is_some()
}

/// Whether WRMSR `msr` <- `value` is accepted by a CPU with `phys_bits` of physical address
/// (MAXPHYADDR): no reserved bit set, every type field a valid MTRR type (SDM §11.11.2.1-3).
/// False for an MSR that is not a stored MTRR.
pub fn write_valid(msr: u32, value: u64, phys_bits: u32) -> bool {
    let above_phys = if phys_bits >= 64 {
        0
    } else {
        u64::MAX << phys_bits
    };
    match slot(msr) {
        None => false,
        Some(Slot::DefType) => value & !DEF_TYPE_WRITABLE == 0 && is_mtrr_type(value & 0xff),
        Some(Slot::Fixed(_)) => value.to_le_bytes().iter().all(|&t| is_mtrr_type(t.into())),
        // Type 7:0, reserved 11:8, base from 12 up to MAXPHYADDR.
        Some(Slot::Base(_)) => value & (0xf00 | above_phys) == 0 && is_mtrr_type(value & 0xff),
        // Reserved 10:0, V (valid) at 11, mask from 12 up to MAXPHYADDR (SDM Figure 11-7).
        Some(Slot::Mask(_)) => value & (0x7ff | above_phys) == 0,
    }
}

impl Mtrrs {
    /// RDMSR of an MTRR (`None`: not one).
    pub fn read(&self, msr: u32) -> Option<u64> {
        if msr == MTRRCAP {
            return Some(MTRRCAP_VALUE);
        }
        Some(match slot(msr)? {
            Slot::DefType => self.def_type,
            Slot::Fixed(i) => self.fixed[i],
            Slot::Base(n) => self.variable[n].0,
            Slot::Mask(n) => self.variable[n].1,
        })
    }

    /// Stores a value [`write_valid`] accepted; returns false (and stores nothing) for a
    /// value it refuses or an MSR that is not a stored MTRR.
    pub fn write(&mut self, msr: u32, value: u64, phys_bits: u32) -> bool {
        if !write_valid(msr, value, phys_bits) {
            return false;
        }
        match slot(msr) {
            Some(Slot::DefType) => self.def_type = value,
            Some(Slot::Fixed(i)) => self.fixed[i] = value,
            Some(Slot::Base(n)) => self.variable[n].0 = value,
            Some(Slot::Mask(n)) => self.variable[n].1 = value,
            None => return false,
        }
        true
    }

    /// Every stored MTRR but DEF_TYPE (which the vCPU state has carried since version 1):
    /// the fixed ranges, then PHYSBASEn/PHYSMASKn, as (MSR, value).
    pub fn ranges(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        let fixed = FIXED.iter().copied().zip(self.fixed.iter().copied());
        let variable = self.variable.iter().enumerate().flat_map(|(n, &(b, m))| {
            let base = PHYSBASE0 + 2 * n as u32;
            [(base, b), (base + 1, m)]
        });
        fixed.chain(variable)
    }
}

/// How many MSRs [`Mtrrs::ranges`] yields.
pub const RANGE_MSR_COUNT: usize = FIXED.len() + 2 * VARIABLE_RANGES;

/// The MSR numbers [`Mtrrs::ranges`] yields, in its order.
pub fn range_msrs() -> [u32; RANGE_MSR_COUNT] {
    let mut out = [0; RANGE_MSR_COUNT];
    out[..FIXED.len()].copy_from_slice(&FIXED);
    for (i, slot) in out[FIXED.len()..].iter_mut().enumerate() {
        *slot = PHYSBASE0 + i as u32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_and_reset_values() {
        let m = Mtrrs::default();
        assert_eq!(m.read(MTRRCAP), Some(0x508));
        assert_eq!(m.read(DEF_TYPE), Some(0));
        assert_eq!(m.read(0x20f), Some(0), "PHYSMASK7");
        assert_eq!(m.read(0x210), None, "only 8 variable ranges");
        assert_eq!(m.read(0x251), None, "a hole between the fixed MSRs");
        assert!(!is_mtrr(MTRRCAP), "MTRRCAP is read-only");
    }

    #[test]
    fn writes_are_checked_like_the_cpu_checks_them() {
        let mut m = Mtrrs::default();
        // DEF_TYPE: E|FE|WB accepted; UC- (7) and reserved bits refused.
        assert!(m.write(DEF_TYPE, 0xc06, 39));
        assert!(!m.write(DEF_TYPE, 0xc07, 39), "type 7 is PAT-only");
        assert!(!m.write(DEF_TYPE, 0x1006, 39), "bit 12 reserved");
        assert!(!m.write(DEF_TYPE, 0x302, 39), "type 2 reserved");
        assert_eq!(
            m.read(DEF_TYPE),
            Some(0xc06),
            "refused writes change nothing"
        );
        // Fixed: every byte a type.
        assert!(m.write(0x250, 0x0606_0606_0606_0606, 39));
        assert!(!m.write(0x258, 0x0606_0606_0606_0603, 39));
        // Variable: base 3 GiB UC, mask 1 GiB valid, within 39 bits.
        assert!(m.write(0x200, 0xc000_0000, 39));
        assert!(m.write(0x201, 0x7f_c000_0800, 39));
        assert!(
            !m.write(0x201, 0xff_c000_0800, 39),
            "bit 39 above MAXPHYADDR"
        );
        assert!(!m.write(0x201, 0x7f_c000_0801, 39), "bits 10:0 reserved");
        assert!(!m.write(0x202, 0x1_0000_0100, 39), "bits 11:8 reserved");
        assert!(!m.write(0x202, 0x1_0000_0003, 39), "type 3 reserved");
        assert!(m.write(0x202, 0xff_0000_0006, 40));
        assert!(!m.write(MTRRCAP, 0, 39), "read-only");
        assert_eq!(m.read(0x201), Some(0x7f_c000_0800));
        assert_eq!(m.variable[1].0, 0xff_0000_0006);
    }

    #[test]
    fn ranges_cover_every_stored_mtrr_but_def_type_once() {
        let msrs = range_msrs();
        let ranged: alloc::vec::Vec<u32> = Mtrrs::default().ranges().map(|(m, _)| m).collect();
        assert_eq!(ranged, msrs, "ranges() in range_msrs() order");
        assert_eq!(msrs.len(), 27);
        assert_eq!(msrs[0], 0x250);
        assert_eq!(msrs[11], 0x200);
        assert_eq!(msrs[26], 0x20f);
        for (i, a) in msrs.iter().enumerate() {
            assert!(is_mtrr(*a));
            assert!(!msrs[i + 1..].contains(a));
        }
        assert!(!msrs.contains(&DEF_TYPE));
    }
}
