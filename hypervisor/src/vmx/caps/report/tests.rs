use super::*;
use alloc::collections::BTreeMap;
use alloc::string::String;

/// A fake MSR file that fails the test on a read of an MSR it does not have (on hardware that
/// read would #GP).
fn probe(msrs: &[(u32, u64)]) -> VmxCapabilities {
    let map: BTreeMap<u32, u64> = msrs.iter().copied().collect();
    VmxCapabilities::probe(|msr| {
        *map.get(&msr)
            .unwrap_or_else(|| panic!("read of absent MSR {msr:#x}"))
    })
}

/// Allowed-1 bits go to the high dword.
fn ctls(allowed1: &[u32]) -> u64 {
    allowed1.iter().fold(0, |v, b| v | 1 << (32 + b))
}

/// Roughly what Bochs' `tigerlake` model reports.
fn full_featured() -> [(u32, u64); 9] {
    [
        (msr::VMX_BASIC, 1 << 55 | 0x1000 << 32 | 0x4),
        (msr::PINBASED_CTLS, ctls(&[0])),
        (msr::TRUE_PINBASED_CTLS, ctls(&[0, 6])),
        (msr::PROCBASED_CTLS, ctls(&[7])),
        (msr::TRUE_PROCBASED_CTLS, ctls(&[7, 31])),
        (msr::PROCBASED_CTLS2, ctls(&[1, 5, 7, 17])),
        (
            msr::EPT_VPID_CAP,
            1 << 6 | 1 << 14 | 1 << 16 | 1 << 20 | 1 << 21 | 1 << 32,
        ),
        (msr::VMX_MISC, 5),
        (msr::FEATURE_CONTROL, 0),
    ]
}

#[test]
fn full_featured_cpu_decodes_everything_via_true_msrs() {
    let caps = probe(&full_featured());
    assert_eq!(caps.vmcs_revision, 4);
    assert_eq!(caps.vmcs_size, 4096);
    assert!(caps.true_controls && caps.secondary_controls);
    assert!(caps.ept && caps.vpid && caps.unrestricted_guest && caps.pml);
    assert!(caps.ept_4_level && caps.ept_write_back && caps.ept_2m_pages && caps.invept);
    assert!(caps.ept_accessed_dirty && caps.invvpid);
    // Only the TRUE pin-based MSR has bit 6: proves the TRUE MSR was used.
    assert!(caps.preemption_timer);
    assert_eq!(caps.preemption_timer_rate, 5);
    let status = VmxStatus::Available {
        caps,
        feature_control: FeatureControl::decode(0),
    };
    let mut s = String::new();
    status.write_summary(&mut s).unwrap();
    assert_eq!(
        s,
        "VT-x: available: EPT yes, unrestricted-guest yes, VPID yes, PML yes, EPT-A/D yes, preemption-timer yes (rate 2^5)"
    );
}

#[test]
fn without_true_controls_the_legacy_msrs_are_used() {
    let caps = probe(&[
        (msr::VMX_BASIC, 0x1000 << 32 | 0x10),
        (msr::PINBASED_CTLS, ctls(&[6])),
        (msr::PROCBASED_CTLS, ctls(&[31])),
        (msr::PROCBASED_CTLS2, ctls(&[1])),
        (msr::EPT_VPID_CAP, 1 << 6),
        (msr::VMX_MISC, 0x1f),
    ]);
    assert!(!caps.true_controls && caps.preemption_timer && caps.ept && !caps.vpid);
    assert!(caps.ept_4_level && !caps.ept_accessed_dirty && !caps.invvpid);
    assert_eq!(caps.preemption_timer_rate, 31);
}

#[test]
fn absent_msrs_are_never_read() {
    // No secondary controls: neither PROCBASED_CTLS2 nor EPT_VPID_CAP may be read.
    let caps = probe(&[
        (msr::VMX_BASIC, 0),
        (msr::PINBASED_CTLS, 0),
        (msr::PROCBASED_CTLS, 0),
        (msr::VMX_MISC, 0),
    ]);
    assert_eq!(caps, VmxCapabilities::default());
    // Secondary controls without EPT or VPID: EPT_VPID_CAP may not be read.
    let caps = probe(&[
        (msr::VMX_BASIC, 0),
        (msr::PINBASED_CTLS, 0),
        (msr::PROCBASED_CTLS, ctls(&[31])),
        (msr::PROCBASED_CTLS2, ctls(&[7])),
        (msr::VMX_MISC, 0),
    ]);
    assert!(caps.unrestricted_guest && !caps.ept);
    let mut s = String::new();
    VmxStatus::Available {
        caps,
        feature_control: FeatureControl::decode(5),
    }
    .write_summary(&mut s)
    .unwrap();
    assert!(s.ends_with("preemption-timer no"), "{s}");
}

#[test]
fn feature_control_and_not_available_lines() {
    assert!(FeatureControl::decode(1).forbids_vmx());
    assert!(!FeatureControl::decode(5).forbids_vmx());
    assert!(!FeatureControl::decode(0).forbids_vmx());
    for status in [VmxStatus::NotPresent, VmxStatus::DisabledByFirmware] {
        let mut s = String::new();
        status.write_summary(&mut s).unwrap();
        assert!(s.starts_with("VT-x: not available ("), "{s}");
        assert!(!s.contains('\n') && !s.contains("VT-x: available"));
    }
}

#[test]
fn apic_virtualization_controls_are_decoded_and_listed() {
    let msrs = [
        (msr::VMX_BASIC, 1 << 55 | 0x1000 << 32 | 0x4),
        (msr::TRUE_PINBASED_CTLS, ctls(&[0, 5, 6, 7])),
        (msr::TRUE_PROCBASED_CTLS, ctls(&[2, 7, 21, 31])),
        (msr::PROCBASED_CTLS2, ctls(&[0, 1, 8])),
        (msr::EPT_VPID_CAP, 1 << 6),
        (msr::VMX_MISC, 0),
    ];
    let caps = probe(&msrs);
    let a = caps.apic;
    assert!(a.interrupt_window_exiting && a.virtual_nmis && a.tpr_shadow && a.posted_interrupts);
    assert!(a.virtualize_apic_accesses && a.apic_register_virtualization);
    assert!(!a.virtual_interrupt_delivery && !a.virtualize_x2apic);
    let status = VmxStatus::Available {
        caps,
        feature_control: FeatureControl::decode(5),
    };
    let mut s = String::new();
    status.write_details(&mut s).unwrap();
    assert!(
        s.contains(
            "  interrupts: window exiting yes, virtual NMIs yes, TPR shadow yes, APIC-access \
             virtualization yes, x2APIC virtualization no, APIC-register virtualization yes, \
             virtual-interrupt delivery no, posted interrupts yes\n"
        ),
        "{s}"
    );
}
