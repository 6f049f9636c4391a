//! Names of the CPUID feature bits a tern guest may be shown, so that a refusal says
//! "avx2, bmi2" instead of "leaf 0x7 EBX bits 0x00000120".
//!
//! Why here, in the protocol crate: the names are what both ends of a migration print about
//! the same [`CpuDescriptor`](super::CpuDescriptor), and the hypervisor's CPU models
//! (`vm::cpu_model`) are defined as sets of these names. The names are Linux's
//! `/proc/cpuinfo` flags (arch/x86/include/asm/cpufeatures.h), which operators already know;
//! bit positions are from the SDM Vol. 2A, CPUID, Tables 3-8, 3-10, 3-11 and leaf
//! 8000_0001H.
//!
//! The table is an allow-list: a bit that is not here is never shown to a guest.

use super::CpuidRegister;

/// One named CPUID feature bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFeature {
    /// Linux's name for it.
    pub name: &'static str,
    /// CPUID leaf.
    pub leaf: u32,
    /// CPUID subleaf.
    pub subleaf: u32,
    /// Output register.
    pub register: CpuidRegister,
    /// Bit number in the register.
    pub bit: u8,
}

impl CpuFeature {
    /// The bit as a mask.
    pub const fn mask(&self) -> u32 {
        1 << self.bit
    }
}

const fn f(name: &'static str, leaf: u32, register: CpuidRegister, bit: u8) -> CpuFeature {
    CpuFeature {
        name,
        leaf,
        subleaf: 0,
        register,
        bit,
    }
}

use CpuidRegister::{Ebx, Ecx, Edx};

/// Every feature bit tern can show a guest. What is missing on purpose: VMX/SMX (no nested
/// virtualization), MONITOR/MWAIT, performance monitoring (PDCM, DS, PT), TSX (HLE, RTM),
/// SGX, MPX, PKU, PCID/INVPCID, AVX-512 and AMX (their XSAVE components are not switched),
/// machine check (MCE/MCA), thermal and power management, TSC_ADJUST, and the speculation
/// control bits (IA32_SPEC_CTRL / ARCH_CAPABILITIES are not modelled).
pub const FEATURES: &[CpuFeature] = &[
    // Leaf 1 EDX (Table 3-11).
    f("fpu", 1, Edx, 0),
    f("de", 1, Edx, 2),
    f("pse", 1, Edx, 3),
    f("tsc", 1, Edx, 4),
    f("msr", 1, Edx, 5),
    f("pae", 1, Edx, 6),
    f("cx8", 1, Edx, 8),
    f("apic", 1, Edx, 9),
    f("sep", 1, Edx, 11),
    f("mtrr", 1, Edx, 12),
    f("pge", 1, Edx, 13),
    f("cmov", 1, Edx, 15),
    f("pat", 1, Edx, 16),
    f("pse36", 1, Edx, 17),
    f("clflush", 1, Edx, 19),
    f("mmx", 1, Edx, 23),
    f("fxsr", 1, Edx, 24),
    f("sse", 1, Edx, 25),
    f("sse2", 1, Edx, 26),
    // Leaf 1 ECX (Table 3-10). OSXSAVE mirrors the guest's CR4 and HYPERVISOR is always
    // set: neither is a feature of a model.
    f("pni", 1, Ecx, 0),
    f("pclmulqdq", 1, Ecx, 1),
    f("ssse3", 1, Ecx, 9),
    f("fma", 1, Ecx, 12),
    f("cx16", 1, Ecx, 13),
    f("sse4_1", 1, Ecx, 19),
    f("sse4_2", 1, Ecx, 20),
    f("x2apic", 1, Ecx, 21),
    f("movbe", 1, Ecx, 22),
    f("popcnt", 1, Ecx, 23),
    f("tsc_deadline_timer", 1, Ecx, 24),
    f("aes", 1, Ecx, 25),
    f("xsave", 1, Ecx, 26),
    f("avx", 1, Ecx, 28),
    f("f16c", 1, Ecx, 29),
    f("rdrand", 1, Ecx, 30),
    // Leaf 7 subleaf 0 EBX/ECX/EDX (Table 3-8).
    f("fsgsbase", 7, Ebx, 0),
    f("tsc_adjust", 7, Ebx, 1),
    f("bmi1", 7, Ebx, 3),
    f("avx2", 7, Ebx, 5),
    f("smep", 7, Ebx, 7),
    f("bmi2", 7, Ebx, 8),
    f("erms", 7, Ebx, 9),
    f("rdseed", 7, Ebx, 18),
    f("adx", 7, Ebx, 19),
    f("smap", 7, Ebx, 20),
    f("clflushopt", 7, Ebx, 23),
    f("clwb", 7, Ebx, 24),
    f("sha_ni", 7, Ebx, 29),
    f("gfni", 7, Ecx, 8),
    f("vaes", 7, Ecx, 9),
    f("vpclmulqdq", 7, Ecx, 10),
    f("rdpid", 7, Ecx, 22),
    f("movdiri", 7, Ecx, 27),
    f("movdir64b", 7, Ecx, 28),
    f("fsrm", 7, Edx, 4),
    f("md_clear", 7, Edx, 10),
    f("serialize", 7, Edx, 14),
    // Leaf 8000_0001H ECX/EDX.
    f("lahf_lm", 0x8000_0001, Ecx, 0),
    f("abm", 0x8000_0001, Ecx, 5),
    f("3dnowprefetch", 0x8000_0001, Ecx, 8),
    f("syscall", 0x8000_0001, Edx, 11),
    f("nx", 0x8000_0001, Edx, 20),
    f("pdpe1gb", 0x8000_0001, Edx, 26),
    f("rdtscp", 0x8000_0001, Edx, 27),
    f("lm", 0x8000_0001, Edx, 29),
];

/// The feature called `name`.
pub fn by_name(name: &str) -> Option<&'static CpuFeature> {
    FEATURES.iter().find(|f| f.name == name)
}

/// The mask of every allowed feature bit of one register.
pub fn allowed_mask(leaf: u32, subleaf: u32, register: CpuidRegister) -> u32 {
    FEATURES
        .iter()
        .filter(|f| f.leaf == leaf && f.subleaf == subleaf && f.register == register)
        .fold(0, |m, f| m | f.mask())
}

/// The named features among `bits` of one register, in table order.
pub fn named(
    leaf: u32,
    subleaf: u32,
    register: CpuidRegister,
    bits: u32,
) -> impl Iterator<Item = &'static str> {
    FEATURES
        .iter()
        .filter(move |f| {
            f.leaf == leaf && f.subleaf == subleaf && f.register == register && bits & f.mask() != 0
        })
        .map(|f| f.name)
}

/// XSAVE state components by XCR0 bit (SDM Vol. 1 §13.1).
pub const XCR0_COMPONENTS: &[(u8, &str)] = &[
    (0, "x87"),
    (1, "sse"),
    (2, "avx"),
    (3, "bndregs"),
    (4, "bndcsr"),
    (5, "opmask"),
    (6, "zmm_hi256"),
    (7, "hi16_zmm"),
    (9, "pkru"),
    (17, "xtilecfg"),
    (18, "xtiledata"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_positions_are_unique() {
        for (i, a) in FEATURES.iter().enumerate() {
            for b in &FEATURES[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(
                    (a.leaf, a.subleaf, a.register, a.bit)
                        != (b.leaf, b.subleaf, b.register, b.bit),
                    "{} and {} share a bit",
                    a.name,
                    b.name
                );
            }
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(by_name("avx2").map(|f| (f.leaf, f.bit)), Some((7, 5)));
        assert!(by_name("vmx").is_none(), "nested VMX is never offered");
        assert!(by_name("rtm").is_none(), "TSX is never offered");
        assert_eq!(allowed_mask(1, 0, Ecx) & (1 << 5), 0, "VMX");
        assert_eq!(allowed_mask(1, 0, Ecx) & (1 << 3), 0, "MONITOR");
        assert_ne!(allowed_mask(1, 0, Ecx) & (1 << 21), 0, "x2APIC");
        let names: alloc::vec::Vec<_> = named(7, 0, Ebx, (1 << 5) | (1 << 8) | (1 << 16)).collect();
        assert_eq!(
            names,
            ["avx2", "bmi2"],
            "AVX-512F (bit 16) has no name here"
        );
    }
}
