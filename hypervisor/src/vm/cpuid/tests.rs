use super::*;
use crate::vm::cpu_model::{CpuModel, FeatureMasks};

fn view() -> VcpuView {
    VcpuView {
        apic_id: 0,
        cr4_osxsave: false,
        tsc_khz: 0,
        apic_timer_khz: 0,
        features: FeatureMasks::all(),
    }
}

const ALL: CpuidResult = CpuidResult {
    eax: u32::MAX,
    ebx: u32::MAX,
    ecx: u32::MAX,
    edx: u32::MAX,
};

#[test]
fn leaf1_hides_vmx_and_sets_hypervisor_bit() {
    let r = guest_cpuid(1, 0, ALL, view());
    assert_eq!(r.ecx & (1 << 5), 0, "VMX hidden");
    assert_eq!(r.ecx & (1 << 3), 0, "MONITOR/MWAIT hidden");
    assert_eq!(r.ecx & (1 << 15), 0, "PDCM (PMU) hidden");
    assert_eq!(r.ecx & (1 << 27), 0, "OSXSAVE follows guest CR4");
    assert_ne!(r.ecx & (1 << 31), 0, "hypervisor present");
    assert_ne!(r.ecx & (1 << 21), 0, "x2APIC");
    assert_ne!(r.ecx & (1 << 24), 0, "TSC deadline");
    assert_ne!(r.edx & (1 << 9), 0, "APIC");
    assert_eq!(r.edx & (1 << 7), 0, "no machine check");
    assert_eq!(r.ebx >> 16, 0x0001, "APIC ID 0, one logical CPU");
    let r = guest_cpuid(
        1,
        0,
        ALL,
        VcpuView {
            apic_id: 3,
            cr4_osxsave: true,
            ..view()
        },
    );
    assert_ne!(r.ecx & (1 << 27), 0);
    assert_eq!(r.ebx >> 24, 3);
}

#[test]
fn host_bits_are_never_invented_but_emulated_ones_are_always_there() {
    let r = guest_cpuid(
        1,
        0,
        CpuidResult::default(),
        VcpuView {
            cr4_osxsave: true,
            ..view()
        },
    );
    // x2APIC, TSC deadline and the hypervisor bit. OSXSAVE mirrors CR4 because the model
    // has XSAVE: the model masks (built from the host's offer), not this answer, decide it.
    assert_eq!(r.ecx, (1 << 31) | (1 << 27) | (1 << 24) | (1 << 21));
    assert_eq!(r.edx, (1 << 9) | (1 << 12), "APIC and MTRR");
    assert_eq!(
        guest_cpuid(7, 0, CpuidResult::default(), view()),
        CpuidResult {
            ebx: 1 << 1,
            ..CpuidResult::default()
        },
        "only TSC_ADJUST (emulated) in leaf 7"
    );
}

#[test]
fn the_model_masks_features() {
    let nehalem = CpuModel::parse("nehalem")
        .unwrap()
        .masks_on(&FeatureMasks::all())
        .unwrap();
    let v = VcpuView {
        features: nehalem,
        cr4_osxsave: true,
        ..view()
    };
    let r = guest_cpuid(1, 0, ALL, v);
    assert_eq!(r.ecx & (1 << 28), 0, "no AVX in nehalem");
    assert_eq!(r.ecx & (1 << 26), 0, "no XSAVE in nehalem");
    assert_eq!(r.ecx & (1 << 27), 0, "so no OSXSAVE either");
    assert_ne!(r.ecx & (1 << 20), 0, "SSE4.2");
    assert_eq!(guest_cpuid(7, 0, ALL, v).ebx, 1 << 1, "only TSC_ADJUST");
    assert_eq!(guest_cpuid(0xd, 0, ALL, v), CpuidResult::default());
    let e = guest_cpuid(0x8000_0001, 0, ALL, v);
    assert_eq!(e.edx & (1 << 26), 0, "no 1 GiB pages");
    assert_ne!(e.edx & (1 << 29), 0, "long mode");
}

#[test]
fn no_pmu_no_tsx_no_avx512_no_speculation_bits() {
    assert_eq!(guest_cpuid(0xa, 0, ALL, view()), CpuidResult::default());
    let r = guest_cpuid(7, 0, ALL, view());
    assert_eq!(r.eax, 0);
    assert_eq!(r.ebx & ((1 << 4) | (1 << 11)), 0, "HLE/RTM");
    assert_eq!(r.ebx & (1 << 16), 0, "AVX-512F");
    assert_eq!(r.ebx & (1 << 2), 0, "SGX");
    assert_eq!(r.ecx & (1 << 5), 0, "WAITPKG");
    assert_eq!(r.edx & (1 << 26), 0, "IBRS/IBPB (SPEC_CTRL not modelled)");
    assert_eq!(r.edx & (1 << 29), 0, "ARCH_CAPABILITIES not modelled");
    assert_eq!(guest_cpuid(7, 1, ALL, view()), CpuidResult::default());
    assert_eq!(guest_cpuid(0x8000_0008, 0, ALL, view()).ebx, 0);
    assert_eq!(guest_cpuid(0x8000_0007, 0, ALL, view()).edx, 1 << 8);
}

#[test]
fn the_tsc_is_invariant_whatever_the_host_reports() {
    let host_without = CpuidResult::default();
    let r = guest_cpuid(0x8000_0007, 0, host_without, view());
    assert_eq!(
        r,
        CpuidResult {
            edx: 1 << 8,
            ..CpuidResult::default()
        }
    );
}

#[test]
fn xsave_leaves_offer_x87_sse_avx_only() {
    let r = guest_cpuid(0xd, 0, ALL, view());
    assert_eq!(r.eax, 0b111);
    assert_eq!(r.edx, 0);
    assert_eq!(r.ecx, 832, "legacy + header + AVX");
    assert_eq!(guest_cpuid(0xd, 1, ALL, view()), CpuidResult::default());
    assert_eq!(guest_cpuid(0xd, 5, ALL, view()), CpuidResult::default());
}

#[test]
fn topology_is_one_logical_processor() {
    let v = VcpuView {
        apic_id: 2,
        ..view()
    };
    for leaf in [0xb, 0x1f] {
        let smt = guest_cpuid(leaf, 0, ALL, v);
        assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (0, 1, 0x100, 2));
        let core = guest_cpuid(leaf, 1, ALL, v);
        assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (0, 1, 0x201, 2));
        let end = guest_cpuid(leaf, 2, ALL, v);
        assert_eq!((end.ebx, end.ecx >> 8, end.edx), (0, 0, 2));
    }
    assert_eq!(guest_cpuid(4, 0, ALL, v).eax, 0x3fff);
}

#[test]
fn hypervisor_leaf_and_unknown_leaves() {
    let r = guest_cpuid(0x4000_0000, 0, ALL, view());
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
    assert_eq!(&sig, HYPERVISOR_SIGNATURE);
    assert_eq!(r.eax, 0x4000_0010);
    for leaf in [0x4000_0001, 0x4000_0011, 0x14, 0x8000_0020, 0x20] {
        assert_eq!(
            guest_cpuid(leaf, 0, ALL, view()),
            CpuidResult::default(),
            "{leaf:#x}"
        );
    }
    let r0 = guest_cpuid(0, 0, ALL, view());
    assert_eq!(r0.eax, 0x1f);
    assert_eq!(r0.ebx, u32::MAX, "vendor from the host");
    assert_eq!(
        guest_cpuid(0x8000_0000, 0, ALL, view()).eax,
        MAX_EXTENDED_LEAF
    );
}

/// What Linux's `native_calibrate_tsc` computes from leaf 0x15 (arch/x86/kernel/tsc.c):
/// `crystal_khz = ecx / 1000; tsc_khz = crystal_khz * ebx / eax` and
/// `lapic_timer_period = crystal_khz * 1000 / HZ`.
fn linux_reads_leaf_0x15(r: CpuidResult, hz: u64) -> Option<(u64, u64)> {
    if r.eax == 0 || r.ebx == 0 {
        return None;
    }
    let crystal_khz = r.ecx / 1000;
    if crystal_khz == 0 {
        return None;
    }
    // `unsigned int` arithmetic, as in the kernel: the product wraps.
    let crystal_khz = u64::from(crystal_khz);
    Some((
        u64::from(crystal_khz as u32).wrapping_mul(u64::from(r.ebx)) as u32 as u64
            / u64::from(r.eax),
        crystal_khz * 1000 / hz,
    ))
}

#[test]
fn leaf_0x15_gives_linux_the_tsc_and_apic_timer_rates_without_calibration() {
    for tsc_khz in [50_001, 50_003, 1_000, 2_400_000, 3_999_999, 9_999_991] {
        let v = VcpuView {
            tsc_khz,
            apic_timer_khz: APIC_TIMER_KHZ,
            ..view()
        };
        let r = guest_cpuid(0x15, 0, ALL, v);
        let (linux_tsc_khz, period) = linux_reads_leaf_0x15(r, 250).expect("leaf 0x15 filled");
        assert_eq!(period, u64::from(APIC_TIMER_KHZ) * 1000 / 250);
        // Within the kHz rounding of Linux's integer division and a part per million.
        assert!(
            linux_tsc_khz.abs_diff(u64::from(tsc_khz)) <= 1 + u64::from(tsc_khz) / 1_000_000,
            "tsc {tsc_khz} kHz read as {linux_tsc_khz}: {r:?}"
        );
        let r16 = guest_cpuid(0x16, 0, ALL, v);
        assert_eq!(r16.eax, tsc_khz / 1000, "base MHz");
        assert_eq!(r16.ecx, APIC_TIMER_KHZ / 1000, "bus MHz");
    }
    // Unknown rates: the leaf is empty and Linux falls back to calibrating.
    assert_eq!(guest_cpuid(0x15, 0, ALL, view()), CpuidResult::default());
    assert_eq!(guest_cpuid(0x16, 0, ALL, view()), CpuidResult::default());
}

#[test]
fn timing_leaf_reports_the_vms_rates_not_the_hosts() {
    let v = VcpuView {
        tsc_khz: 2_400_000,
        apic_timer_khz: APIC_TIMER_KHZ,
        ..view()
    };
    let r = guest_cpuid(TIMING_LEAF, 0, ALL, v);
    assert_eq!(
        r,
        CpuidResult {
            eax: 2_400_000,
            ebx: APIC_TIMER_KHZ,
            ..CpuidResult::default()
        }
    );
    assert_eq!(
        guest_cpuid(TIMING_LEAF, 7, CpuidResult::default(), v).eax,
        2_400_000,
        "the subleaf does not matter"
    );
    assert_eq!(guest_cpuid(0x4000_0000, 0, ALL, v).eax, TIMING_LEAF);
    assert_eq!(
        guest_cpuid(TIMING_LEAF, 0, ALL, view()).eax,
        0,
        "unknown rate"
    );
}

#[test]
fn a_migrated_vm_keeps_its_rate_and_a_real_mismatch_is_reported() {
    assert_eq!(
        arriving_tsc_khz(50_002, 49_999),
        TscRateOnArrival {
            khz: 50_002,
            guest_clock_permille: None
        }
    );
    assert_eq!(
        arriving_tsc_khz(3_000_000, 2_400_000),
        TscRateOnArrival {
            khz: 3_000_000,
            guest_clock_permille: Some(800)
        }
    );
    assert_eq!(
        arriving_tsc_khz(0, 2_400_000),
        TscRateOnArrival {
            khz: 2_400_000,
            guest_clock_permille: None
        }
    );
}

#[test]
fn tsc_crystal_ratio_fits_linuxs_32_bit_product_and_stays_close() {
    for (tsc, crystal) in [
        (50_003u32, 100_000u32),
        (2_400_000, 100_000),
        (1, 100_000),
        (u32::MAX, 1),
        (123_457, 24_000),
        (3_999_999, 1_000_000),
    ] {
        let (n, d) = tsc_crystal_ratio(tsc, crystal).expect("a ratio");
        assert!(
            u64::from(crystal) * u64::from(n) <= u64::from(u32::MAX),
            "{tsc}/{crystal}: {n}/{d}"
        );
        let shown = u64::from(crystal) * u64::from(n) / u64::from(d);
        // Closer than 1 kHz + 1 ppm of the rate.
        assert!(
            shown.abs_diff(u64::from(tsc)) <= 1 + u64::from(tsc) / 1_000_000,
            "{tsc}/{crystal}: {n}/{d} gives {shown}"
        );
    }
    assert_eq!(tsc_crystal_ratio(0, 100_000), None);
    assert_eq!(tsc_crystal_ratio(50_000, 0), None);
    assert_eq!(tsc_crystal_ratio(50_000, 100_000), Some((1, 2)));
}
