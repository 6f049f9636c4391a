//! What a guest sees from CPUID: the host's answer filtered through an explicit policy.
//!
//! Why a policy and not pass-through: a guest must not see features the hypervisor does
//! not virtualize (VMX itself — no nested virtualization —, SMX, performance monitoring,
//! the local APIC until it is modelled, MONITOR/MWAIT, ...) or it will use them and fault,
//! and a VM that migrates must see the same CPU on both hosts. Leaves outside the allow-list
//! read as zero. The function is pure: host values in, guest values out.
//!
//! **Timing leaf.** A guest cannot calibrate its TSC reliably under a hypervisor (its timers
//! are virtual, its slices are interrupted), so tern tells it the rate the way VMware and
//! KVM/QEMU (`vmware-cpuid-freq`) do: leaf 0x4000_0000 EAX names the highest hypervisor leaf
//! (0x4000_0010), and leaf 0x4000_0010 EAX is the TSC frequency in kHz, EBX the local-APIC
//! timer (bus) frequency in kHz: 0, as tern models no local APIC yet. The rate is a fact of
//! the VM ([`VcpuView::tsc_khz`]), not of the host it happens to run on: a migrated VM keeps
//! the value it was shown at boot (it travels in the vCPU state).

/// The four output registers of CPUID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// Hypervisor signature in leaf 0x4000_0000 (EBX, ECX, EDX).
pub const HYPERVISOR_SIGNATURE: &[u8; 12] = b"ternterntern";
/// Highest hypervisor leaf: the timing leaf.
pub const HYPERVISOR_MAX_LEAF: u32 = TIMING_LEAF;
/// The timing leaf: EAX = TSC kHz, EBX = LAPIC timer kHz (the VMware convention, also
/// KVM/QEMU's `vmware-cpuid-freq`).
pub const TIMING_LEAF: u32 = 0x4000_0010;
/// Highest basic leaf the guest is told about.
const MAX_BASIC_LEAF: u32 = 0xd;
/// Highest extended leaf the guest is told about.
const MAX_EXTENDED_LEAF: u32 = 0x8000_0008;

mod bits {
    // CPUID.1:ECX (SDM Vol. 2A, Table 3-10).
    pub const ECX_MONITOR: u32 = 1 << 3;
    pub const ECX_DS_CPL: u32 = 1 << 4;
    pub const ECX_VMX: u32 = 1 << 5;
    pub const ECX_SMX: u32 = 1 << 6;
    pub const ECX_EST: u32 = 1 << 7;
    pub const ECX_TM2: u32 = 1 << 8;
    pub const ECX_SDBG: u32 = 1 << 11;
    pub const ECX_XTPR: u32 = 1 << 14;
    pub const ECX_PDCM: u32 = 1 << 15;
    pub const ECX_PCID: u32 = 1 << 17;
    pub const ECX_DCA: u32 = 1 << 18;
    pub const ECX_X2APIC: u32 = 1 << 21;
    pub const ECX_TSC_DEADLINE: u32 = 1 << 24;
    pub const ECX_OSXSAVE: u32 = 1 << 27;
    pub const ECX_HYPERVISOR: u32 = 1 << 31;
    // CPUID.1:EDX (Table 3-11).
    pub const EDX_VME: u32 = 1 << 1;
    pub const EDX_MCE: u32 = 1 << 7;
    pub const EDX_APIC: u32 = 1 << 9;
    pub const EDX_MTRR: u32 = 1 << 12;
    pub const EDX_MCA: u32 = 1 << 14;
    pub const EDX_PSN: u32 = 1 << 18;
    pub const EDX_DS: u32 = 1 << 21;
    pub const EDX_ACPI: u32 = 1 << 22;
    pub const EDX_HTT: u32 = 1 << 28;
    pub const EDX_TM: u32 = 1 << 29;
    pub const EDX_PBE: u32 = 1 << 31;
    // CPUID.(7,0):EBX/ECX/EDX (Table 3-8).
    pub const L7_EBX_SGX: u32 = 1 << 2;
    pub const L7_EBX_HLE: u32 = 1 << 4;
    pub const L7_EBX_INVPCID: u32 = 1 << 10;
    pub const L7_EBX_RTM: u32 = 1 << 11;
    pub const L7_EBX_RDT_M: u32 = 1 << 12;
    pub const L7_EBX_MPX: u32 = 1 << 14;
    pub const L7_EBX_RDT_A: u32 = 1 << 15;
    pub const L7_EBX_PT: u32 = 1 << 25;
    pub const L7_ECX_WAITPKG: u32 = 1 << 5;
    pub const L7_ECX_PKU: u32 = 1 << 3;
    pub const L7_ECX_OSPKE: u32 = 1 << 4;
    pub const L7_ECX_TME: u32 = 1 << 13;
    pub const L7_ECX_SGX_LC: u32 = 1 << 30;
    pub const L7_EDX_ARCH_CAPS_AND_SPEC: u32 = (1 << 26) | (1 << 27) | (1 << 29) | (1 << 31);
}

/// ECX bits of leaf 1 hidden from guests.
const LEAF1_ECX_HIDDEN: u32 = bits::ECX_MONITOR
    | bits::ECX_DS_CPL
    | bits::ECX_VMX
    | bits::ECX_SMX
    | bits::ECX_EST
    | bits::ECX_TM2
    | bits::ECX_SDBG
    | bits::ECX_XTPR
    | bits::ECX_PDCM
    | bits::ECX_PCID
    | bits::ECX_DCA
    | bits::ECX_X2APIC
    | bits::ECX_TSC_DEADLINE
    | bits::ECX_OSXSAVE;
/// EDX bits of leaf 1 hidden from guests (no APIC/MTRR/machine-check models yet).
const LEAF1_EDX_HIDDEN: u32 = bits::EDX_VME
    | bits::EDX_MCE
    | bits::EDX_APIC
    | bits::EDX_MTRR
    | bits::EDX_MCA
    | bits::EDX_PSN
    | bits::EDX_DS
    | bits::EDX_ACPI
    | bits::EDX_HTT
    | bits::EDX_TM
    | bits::EDX_PBE;
const LEAF7_EBX_HIDDEN: u32 = bits::L7_EBX_SGX
    | bits::L7_EBX_HLE
    | bits::L7_EBX_INVPCID
    | bits::L7_EBX_RTM
    | bits::L7_EBX_RDT_M
    | bits::L7_EBX_MPX
    | bits::L7_EBX_RDT_A
    | bits::L7_EBX_PT;
const LEAF7_ECX_HIDDEN: u32 = bits::L7_ECX_WAITPKG
    | bits::L7_ECX_PKU
    | bits::L7_ECX_OSPKE
    | bits::L7_ECX_TME
    | bits::L7_ECX_SGX_LC;
/// XCR0 components offered: x87, SSE, AVX (see [`crate::vm::msr::xcr0_valid`]).
pub const XCR0_OFFERED: u64 = 0b111;

/// Facts about the vCPU that CPUID reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuView {
    /// Initial APIC ID (CPUID.1:EBX bits 31:24).
    pub apic_id: u8,
    /// Guest CR4.OSXSAVE: CPUID.1:ECX.OSXSAVE mirrors it (SDM Vol. 2A CPUID).
    pub cr4_osxsave: bool,
    /// The TSC frequency this VM is shown, in kHz (the timing leaf's EAX; 0 = unknown).
    pub tsc_khz: u32,
}

/// Relative TSC rate differences below this (parts per million) are calibration noise: two
/// hosts measuring the same kind of crystal against their PITs.
const TSC_RATE_TOLERANCE_PPM: u64 = 5_000;

/// The TSC rate a migrated VM shows its guest on the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscRateOnArrival {
    /// kHz for the timing leaf.
    pub khz: u32,
    /// When the destination's TSC runs at a noticeably different rate: the guest's clock
    /// speed relative to real time, in permille (tern does not use TSC scaling, SDM Vol. 3C
    /// §26.3, so the guest's TSC now ticks at the destination's rate).
    pub guest_clock_permille: Option<u64>,
}

/// A migrated VM keeps the rate it was shown at boot (`incoming_khz`), so that its clock
/// arithmetic stays consistent; an older sender that did not say (0) gets this host's rate.
pub fn arriving_tsc_khz(incoming_khz: u32, host_khz: u32) -> TscRateOnArrival {
    if incoming_khz == 0 {
        return TscRateOnArrival {
            khz: host_khz,
            guest_clock_permille: None,
        };
    }
    let (shown, real) = (u64::from(incoming_khz), u64::from(host_khz));
    let noticeable = shown.abs_diff(real) * 1_000_000 > TSC_RATE_TOLERANCE_PPM * shown;
    TscRateOnArrival {
        khz: incoming_khz,
        guest_clock_permille: noticeable.then(|| real * 1000 / shown),
    }
}

/// The guest's answer to CPUID(`leaf`, `subleaf`) given the host's answer `host` to the
/// same query.
pub fn guest_cpuid(leaf: u32, subleaf: u32, host: CpuidResult, vcpu: VcpuView) -> CpuidResult {
    let zero = CpuidResult::default();
    match leaf {
        0 => CpuidResult {
            eax: host.eax.min(MAX_BASIC_LEAF),
            ..host
        },
        1 => {
            let mut ecx = (host.ecx & !LEAF1_ECX_HIDDEN) | bits::ECX_HYPERVISOR;
            if vcpu.cr4_osxsave && host.ecx & bits::ECX_OSXSAVE != 0 {
                ecx |= bits::ECX_OSXSAVE;
            }
            CpuidResult {
                eax: host.eax,
                // Keep brand index and CLFLUSH size (15:0); one logical processor (23:16);
                // our APIC ID (31:24).
                ebx: (host.ebx & 0xffff) | (1 << 16) | (u32::from(vcpu.apic_id) << 24),
                ecx,
                edx: host.edx & !LEAF1_EDX_HIDDEN,
            }
        }
        2 => host,
        // Deterministic cache parameters: one core per package and one thread per cache
        // (EAX[31:26] and EAX[25:14] cleared).
        4 => CpuidResult {
            eax: host.eax & 0x3fff,
            ..host
        },
        7 if subleaf == 0 => CpuidResult {
            eax: 0, // no further subleaves
            ebx: host.ebx & !LEAF7_EBX_HIDDEN,
            ecx: host.ecx & !LEAF7_ECX_HIDDEN,
            edx: host.edx & !bits::L7_EDX_ARCH_CAPS_AND_SPEC,
        },
        0xd if subleaf == 0 => CpuidResult {
            eax: host.eax & (XCR0_OFFERED as u32),
            edx: 0,
            ..host
        },
        0xd if subleaf == 1 => zero, // no XSAVEOPT/XSAVEC/XSAVES/XFD offered
        0xd if subleaf == 2 && host.eax != 0 => host, // AVX state size/offset
        0x4000_0000 => {
            let sig = HYPERVISOR_SIGNATURE;
            let word = |i: usize| u32::from_le_bytes([sig[i], sig[i + 1], sig[i + 2], sig[i + 3]]);
            CpuidResult {
                eax: HYPERVISOR_MAX_LEAF,
                ebx: word(0),
                ecx: word(4),
                edx: word(8),
            }
        }
        // Local-APIC timer frequency (EBX) stays 0 until a local APIC is modelled.
        TIMING_LEAF => CpuidResult {
            eax: vcpu.tsc_khz,
            ..zero
        },
        0x8000_0000 => CpuidResult {
            eax: host.eax.min(MAX_EXTENDED_LEAF),
            ..host
        },
        0x8000_0001..=MAX_EXTENDED_LEAF => host,
        _ => zero,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEW: VcpuView = VcpuView {
        apic_id: 0,
        cr4_osxsave: false,
        tsc_khz: 0,
    };
    const ALL: CpuidResult = CpuidResult {
        eax: u32::MAX,
        ebx: u32::MAX,
        ecx: u32::MAX,
        edx: u32::MAX,
    };

    #[test]
    fn leaf1_hides_vmx_and_sets_hypervisor_bit() {
        let r = guest_cpuid(1, 0, ALL, VIEW);
        assert_eq!(r.ecx & (1 << 5), 0, "VMX hidden");
        assert_eq!(r.ecx & (1 << 27), 0, "OSXSAVE follows guest CR4");
        assert_ne!(r.ecx & (1 << 31), 0, "hypervisor present");
        assert_eq!(r.edx & (1 << 9), 0, "no APIC model yet");
        assert_eq!(r.ebx >> 16, 0x0001, "APIC ID 0, one logical CPU");
        let r = guest_cpuid(
            1,
            0,
            ALL,
            VcpuView {
                apic_id: 3,
                cr4_osxsave: true,
                tsc_khz: 0,
            },
        );
        assert_ne!(r.ecx & (1 << 27), 0);
        assert_eq!(r.ebx >> 24, 3);
        // Bits the host does not have are never invented.
        let r = guest_cpuid(
            1,
            0,
            CpuidResult::default(),
            VcpuView {
                apic_id: 0,
                cr4_osxsave: true,
                tsc_khz: 0,
            },
        );
        assert_eq!(r.ecx, 1 << 31);
    }

    #[test]
    fn hypervisor_leaf_and_unknown_leaves() {
        let r = guest_cpuid(0x4000_0000, 0, ALL, VIEW);
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
        assert_eq!(&sig, HYPERVISOR_SIGNATURE);
        assert_eq!(r.eax, 0x4000_0010);
        assert_eq!(
            guest_cpuid(0x4000_0001, 0, ALL, VIEW),
            CpuidResult::default()
        );
        assert_eq!(
            guest_cpuid(0x4000_0011, 0, ALL, VIEW),
            CpuidResult::default()
        );
        assert_eq!(guest_cpuid(0x14, 0, ALL, VIEW), CpuidResult::default());
        assert_eq!(
            guest_cpuid(0x8000_0020, 0, ALL, VIEW),
            CpuidResult::default()
        );
        assert_eq!(guest_cpuid(0, 0, ALL, VIEW).eax, MAX_BASIC_LEAF);
        assert_eq!(
            guest_cpuid(0x8000_0000, 0, ALL, VIEW).eax,
            MAX_EXTENDED_LEAF
        );
    }

    #[test]
    fn leaf7_and_xsave_are_filtered() {
        let r = guest_cpuid(7, 0, ALL, VIEW);
        assert_eq!(r.eax, 0);
        assert_eq!(r.ebx & (1 << 2), 0, "SGX hidden");
        assert_eq!(r.ecx & (1 << 5), 0, "WAITPKG hidden");
        assert_eq!(guest_cpuid(7, 1, ALL, VIEW), CpuidResult::default());
        assert_eq!(guest_cpuid(0xd, 0, ALL, VIEW).eax, 0b111);
        assert_eq!(guest_cpuid(0xd, 1, ALL, VIEW), CpuidResult::default());
    }

    #[test]
    fn timing_leaf_reports_the_vms_tsc_rate_not_the_hosts() {
        let view = VcpuView {
            tsc_khz: 2_400_000,
            ..VIEW
        };
        // Whatever the host answers for the leaf (real CPUs repeat the highest basic leaf
        // for out-of-range queries), the guest sees its own rate and no LAPIC rate.
        let r = guest_cpuid(TIMING_LEAF, 0, ALL, view);
        assert_eq!(
            r,
            CpuidResult {
                eax: 2_400_000,
                ..CpuidResult::default()
            }
        );
        assert_eq!(
            guest_cpuid(TIMING_LEAF, 7, CpuidResult::default(), view).eax,
            2_400_000,
            "the subleaf does not matter"
        );
        assert_eq!(guest_cpuid(0x4000_0000, 0, ALL, view).eax, TIMING_LEAF);
        assert_eq!(
            guest_cpuid(TIMING_LEAF, 0, ALL, VIEW).eax,
            0,
            "unknown rate"
        );
    }

    #[test]
    fn a_migrated_vm_keeps_its_rate_and_a_real_mismatch_is_reported() {
        // Same crystal, calibration noise (Bochs hosts measure 49 999-50 002 kHz): quiet.
        assert_eq!(
            arriving_tsc_khz(50_002, 49_999),
            TscRateOnArrival {
                khz: 50_002,
                guest_clock_permille: None
            }
        );
        // A 3 GHz VM on a 2.4 GHz host: it keeps 3 GHz and its clock runs at 80 %.
        assert_eq!(
            arriving_tsc_khz(3_000_000, 2_400_000),
            TscRateOnArrival {
                khz: 3_000_000,
                guest_clock_permille: Some(800)
            }
        );
        // An older sender did not say: the VM is shown this host's rate.
        assert_eq!(
            arriving_tsc_khz(0, 2_400_000),
            TscRateOnArrival {
                khz: 2_400_000,
                guest_clock_permille: None
            }
        );
    }
}
