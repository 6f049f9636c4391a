//! What a guest sees from CPUID: the host's answer filtered through an explicit policy and
//! the VM's CPU model ([`super::cpu_model`]).
//!
//! Why a policy and not pass-through: a guest must not see features the hypervisor does
//! not virtualize (VMX itself — no nested virtualization —, SMX, performance monitoring,
//! MONITOR/MWAIT, TSX, AVX-512 whose state is not switched, ...) or it will use them and
//! fault, and a VM that migrates must see the same CPU on both hosts. Feature bits come from
//! the allow-list in `migration_proto::cpu::features` masked by the VM's model; leaves
//! outside the policy read as zero (leaf 0xA: no PMU). The function is pure: host values
//! in, guest values out.
//!
//! **Topology.** One logical processor per package: leaf 1 EBX says one, leaf 4 has no
//! sharing, leaves 0xB and 0x1F describe one SMT level and one core level of width 1 with
//! the vCPU's x2APIC ID (SDM Vol. 2A CPUID, "V2 Extended Topology Enumeration Leaf").
//!
//! **Timing.** A guest cannot calibrate its TSC reliably under a hypervisor (its timers
//! are virtual, its slices are interrupted), so tern tells it the rates three ways:
//! * leaf 0x15 (SDM Vol. 2A, "Time Stamp Counter and Nominal Core Crystal Clock
//!   Information"): ECX is the crystal in Hz, the TSC runs at ECX * EBX / EAX. Tern says the
//!   crystal is the local-APIC timer clock and EBX/EAX = TSC kHz / timer kHz. This is what
//!   Linux's `native_calibrate_tsc` reads on an Intel CPU with max leaf >= 0x15: with ECX
//!   non-zero it marks the TSC frequency *known* (no refinement against the PIT/HPET) and
//!   sets `lapic_timer_period` from the crystal, so the APIC timer is not calibrated either;
//! * leaf 0x16 EAX/EBX (base/max MHz) and ECX (bus MHz), Linux's `cpu_khz_from_cpuid`;
//! * the hypervisor leaves the way VMware and KVM/QEMU (`vmware-cpuid-freq`) do: leaf
//!   0x4000_0000 EAX names the highest hypervisor leaf (0x4000_0010), and leaf 0x4000_0010
//!   EAX is the TSC frequency in kHz, EBX the local-APIC timer (bus) frequency in kHz.
//!
//! The TSC rate is a fact of the VM ([`VcpuView::tsc_khz`]), not of the host it happens to
//! run on: a migrated VM keeps the value it was shown at boot (it travels with the VM).
//!
//! **A TSC Linux trusts.** Leaf 0x8000_0007 EDX[8] (invariant TSC, SDM Vol. 3B §18.17.1) is
//! always shown, whatever the host says: the guest's TSC is the host's plus a VMCS offset,
//! and tern itself already runs on the assumption that the host TSC ticks at one constant
//! rate (its timers, the VM's fixed `tsc_khz` and the LAPIC model depend on it), nor does it
//! let the guest reach a C-state that could stop it (HLT exits). With IA32_TSC_ADJUST
//! (emulated, `vm::msr`) this is what Linux (6.1 `check_system_tsc_reliable`) needs to
//! switch off its clocksource watchdog, which otherwise compares the TSC with jiffies
//! counted from timer interrupts that arrive late under emulation and marks it unstable.
//! The bit is in the migration CPU descriptor (leaf 0x8000_0007 is compared), so a
//! destination that would not show it refuses the VM by name.

use super::cpu_model::{EMULATED, FeatureMasks};
use migration_proto::cpu::CpuidRegister;

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
/// Highest basic leaf the guest is told about: the V2 topology leaf. Leaves between the ones
/// [`guest_cpuid`] fills in read as zero ("not supported").
const MAX_BASIC_LEAF: u32 = 0x1f;
/// The local-APIC timer (bus / crystal) clock every VM is shown, in kHz: 100 MHz, what
/// leaf 0x15 reports on many recent Intel parts. The board's local APIC counts at exactly
/// this rate (`vm::board::APIC_TIMER_HZ` is derived from it), so a guest that trusts
/// leaf 0x15 instead of calibrating gets the right timer period.
pub const APIC_TIMER_KHZ: u32 = 100_000;
/// XSAVE area sizes (SDM Vol. 1 §13.4: legacy region 512 + header 64; AVX state at 576,
/// 256 bytes, Table 13-1 / CPUID.(0xd,2)).
const XSAVE_LEGACY_AND_HEADER: u32 = 576;
const XSAVE_AVX_BYTES: u32 = 256;
/// Highest extended leaf the guest is told about.
const MAX_EXTENDED_LEAF: u32 = 0x8000_0008;

/// CPUID.1:ECX bits that are not model features (SDM Vol. 2A, Table 3-10).
const ECX_OSXSAVE: u32 = 1 << 27;
const ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.8000_0007H:EDX.InvariantTSC.
const EDX_INVARIANT_TSC: u32 = 1 << 8;

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
    /// The local-APIC timer frequency this VM is shown, in kHz (0 = unknown).
    pub apic_timer_khz: u32,
    /// The feature bits of the VM's CPU model on this host.
    pub features: FeatureMasks,
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

fn register(r: CpuidResult, reg: CpuidRegister) -> u32 {
    match reg {
        CpuidRegister::Eax => r.eax,
        CpuidRegister::Ebx => r.ebx,
        CpuidRegister::Ecx => r.ecx,
        CpuidRegister::Edx => r.edx,
    }
}

/// The host's bits of a feature register that the model shows, plus the model's features
/// tern emulates whatever the host has.
fn masked(leaf: u32, reg: CpuidRegister, host: CpuidResult, features: &FeatureMasks) -> u32 {
    let model = features.mask(leaf, 0, reg).unwrap_or(0);
    let emulated = FeatureMasks::from_names(EMULATED)
        .mask(leaf, 0, reg)
        .unwrap_or(0);
    (register(host, reg) & model) | (model & emulated)
}

/// Leaves 0xB and 0x1F for a single logical processor: level 0 SMT, level 1 core, both of
/// width 1 (shift 0), then the invalid level; EDX is the x2APIC ID at every subleaf.
fn topology(subleaf: u32, apic_id: u8) -> CpuidResult {
    let (ebx, level_type) = match subleaf {
        0 => (1, 1), // SMT
        1 => (1, 2), // core
        _ => (0, 0), // invalid: ends the enumeration
    };
    CpuidResult {
        eax: 0,
        ebx,
        ecx: (level_type << 8) | (subleaf & 0xff),
        edx: u32::from(apic_id),
    }
}

/// The guest's answer to CPUID(`leaf`, `subleaf`) given the host's answer `host` to the
/// same query.
pub fn guest_cpuid(leaf: u32, subleaf: u32, host: CpuidResult, vcpu: VcpuView) -> CpuidResult {
    use CpuidRegister::{Ebx, Ecx, Edx};
    let zero = CpuidResult::default();
    let f = &vcpu.features;
    let avx = f.has("avx");
    match leaf {
        0 => CpuidResult {
            eax: MAX_BASIC_LEAF,
            ..host
        },
        1 => {
            let mut ecx = masked(1, Ecx, host, f) | ECX_HYPERVISOR;
            if vcpu.cr4_osxsave && f.has("xsave") {
                ecx |= ECX_OSXSAVE;
            }
            CpuidResult {
                eax: host.eax,
                // Keep brand index and CLFLUSH size (15:0); one logical processor (23:16);
                // our APIC ID (31:24).
                ebx: (host.ebx & 0xffff) | (1 << 16) | (u32::from(vcpu.apic_id) << 24),
                ecx,
                edx: masked(1, Edx, host, f),
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
            ebx: masked(7, Ebx, host, f),
            ecx: masked(7, Ecx, host, f),
            edx: masked(7, Edx, host, f),
        },
        0xb | 0x1f => topology(subleaf, vcpu.apic_id),
        0xd if subleaf == 0 && f.has("xsave") => {
            let offered = (XCR0_OFFERED & f.xcr0()) as u32;
            CpuidResult {
                eax: host.eax & offered,
                // EBX follows the XCR0 in force, which is the guest's while it runs.
                ebx: host.ebx,
                ecx: XSAVE_LEGACY_AND_HEADER + if avx { XSAVE_AVX_BYTES } else { 0 },
                edx: 0,
            }
        }
        0xd if subleaf == 1 => zero, // no XSAVEOPT/XSAVEC/XSAVES/XFD offered
        0xd if subleaf == 2 && avx && host.eax != 0 => host, // AVX state size/offset
        0x15 if vcpu.tsc_khz != 0 && vcpu.apic_timer_khz != 0 => {
            let ratio = tsc_crystal_ratio(vcpu.tsc_khz, vcpu.apic_timer_khz);
            match (vcpu.apic_timer_khz.checked_mul(1000), ratio) {
                (Some(crystal_hz), Some((numerator, denominator))) => CpuidResult {
                    eax: denominator,
                    ebx: numerator,
                    ecx: crystal_hz,
                    edx: 0,
                },
                _ => zero,
            }
        }
        0x16 if vcpu.tsc_khz != 0 => CpuidResult {
            eax: vcpu.tsc_khz / 1000,
            ebx: vcpu.tsc_khz / 1000,
            ecx: vcpu.apic_timer_khz / 1000,
            edx: 0,
        },
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
        TIMING_LEAF => CpuidResult {
            eax: vcpu.tsc_khz,
            ebx: vcpu.apic_timer_khz,
            ..zero
        },
        0x8000_0000 => CpuidResult {
            eax: host.eax.min(MAX_EXTENDED_LEAF),
            ..host
        },
        0x8000_0001 => CpuidResult {
            eax: host.eax,
            ebx: 0,
            ecx: masked(0x8000_0001, Ecx, host, f),
            edx: masked(0x8000_0001, Edx, host, f),
        },
        // Brand string and cache descriptors are informative.
        0x8000_0002..=0x8000_0006 => host,
        // Only the invariant-TSC bit, always (module doc); power management is not
        // virtualized.
        0x8000_0007 => CpuidResult {
            edx: EDX_INVARIANT_TSC,
            ..zero
        },
        // Address widths only (EBX holds WBNOINVD and speculation-control bits).
        0x8000_0008 => CpuidResult {
            eax: host.eax,
            ..zero
        },
        _ => zero,
    }
}

#[cfg(test)]
mod tests;

/// Leaf 0x15's TSC/crystal ratio as (numerator EBX, denominator EAX): the closest fraction to
/// `tsc_khz / crystal_khz` whose numerator keeps `crystal_khz * numerator` within 32 bits.
/// Linux's `native_calibrate_tsc` multiplies the two in an `unsigned int` (Linux 6.1
/// arch/x86/kernel/tsc.c): the exact ratio (e.g. 50 003 / 100 000 for Bochs' TSC) would
/// overflow there and leave the guest believing a 2.7 MHz TSC. The best rational
/// approximation under that bound (continued fractions, with the last semiconvergent) is
/// off by far less than a part per million for any TSC rate. `None` if even 1/1 overflows.
pub fn tsc_crystal_ratio(tsc_khz: u32, crystal_khz: u32) -> Option<(u32, u32)> {
    if tsc_khz == 0 || crystal_khz == 0 {
        return None;
    }
    let max_numerator = u64::from(u32::MAX / crystal_khz);
    let (mut p, mut q) = (u64::from(tsc_khz), u64::from(crystal_khz));
    // Convergents h/k of p/q: (h1, k1) the latest, (h2, k2) the one before.
    let (mut h1, mut k1, mut h2, mut k2) = (1u64, 0u64, 0u64, 1u64);
    loop {
        let a = p / q;
        let h = a * h1 + h2;
        let k = a * k1 + k2;
        if h > max_numerator || k > u64::from(u32::MAX) {
            // The largest semiconvergent that fits, if it beats the last convergent.
            let t = (max_numerator - h2).checked_div(h1).unwrap_or(0);
            let (sh, sk) = (t * h1 + h2, t * k1 + k2);
            // |n/d - tsc/crystal| * crystal = err(n, d) / d; compared by cross-multiplying.
            let err = |n: u64, d: u64| {
                u128::from((n * u64::from(crystal_khz)).abs_diff(d * u64::from(tsc_khz)))
            };
            let closer = |(n, d): (u64, u64), (m, e): (u64, u64)| {
                err(n, d) * u128::from(e) < err(m, e) * u128::from(d)
            };
            let best = if sk != 0 && sh != 0 && (k1 == 0 || closer((sh, sk), (h1, k1))) {
                (sh, sk)
            } else {
                (h1, k1)
            };
            return match best {
                (n, d) if n != 0 && d != 0 && n <= max_numerator => {
                    Some((u32::try_from(n).ok()?, u32::try_from(d).ok()?))
                }
                _ => None,
            };
        }
        (h2, k2, h1, k1) = (h1, k1, h, k);
        let r = p - a * q;
        if r == 0 {
            return Some((u32::try_from(h1).ok()?, u32::try_from(k1).ok()?));
        }
        (p, q) = (q, r);
    }
}
