use super::*;

#[test]
fn controls_follow_allowed_settings() {
    // Bits 1, 2, 4 forced to 1 (default1 class), bits 0..=15 and 31 may be 1.
    let cap = (0x8000_ffffu64 << 32) | 0x16;
    let kind = ControlKind::PrimaryProcBased;
    assert_eq!(
        adjust_controls(kind, cap, 1 << 7, 1 << 31 | 1 << 20, 0),
        Ok(0x8000_0096)
    );
    assert_eq!(
        adjust_controls(kind, cap, 1 << 17 | 1 << 7, 0, 0),
        Err(CapsError::UnsupportedControls {
            kind,
            missing: 1 << 17
        })
    );
    assert_eq!(
        adjust_controls(kind, cap, 0, 0, 1 << 2 | 1 << 3),
        Err(CapsError::ForcedControls {
            kind,
            forced: 1 << 2
        })
    );
}

#[test]
fn basic_msr_decoding() {
    // Revision 0x12, size 4096, WB, true controls.
    let v = 0x12 | (4096u64 << 32) | (6u64 << 50) | (1 << 55);
    let b = VmxBasic::decode(v).unwrap();
    assert_eq!(
        (b.revision_id, b.region_size, b.true_controls),
        (0x12, 4096, true)
    );
    assert_eq!(ControlKind::Entry.capability_msr(b), msr::TRUE_ENTRY_CTLS);
    assert_eq!(
        ControlKind::SecondaryProcBased.capability_msr(b),
        msr::PROCBASED_CTLS2
    );
    let b = VmxBasic::decode(v & !(1 << 55)).unwrap();
    assert_eq!(ControlKind::Entry.capability_msr(b), msr::ENTRY_CTLS);
    assert_eq!(VmxBasic::decode(0x12), Err(CapsError::VmcsMemoryType(0)));
}

#[test]
fn feature_control_rules() {
    assert_eq!(feature_control_update(0), Ok(Some(5)));
    assert_eq!(feature_control_update(5), Ok(None));
    assert_eq!(
        feature_control_update(1),
        Err(CapsError::DisabledByFirmware)
    );
    assert_eq!(feature_control_update(1 << 20), Ok(Some((1 << 20) | 5)));
}

#[test]
fn fixed_bits() {
    // Typical CR0: FIXED0 = PE|NE|PG, FIXED1 = all ones in the low 32 bits.
    let (f0, f1) = (0x8000_0021, 0xffff_ffff);
    assert_eq!(check_fixed_bits(0, 0x8000_0033, f0, f1), Ok(()));
    assert_eq!(
        check_fixed_bits(0, 0x1_0000_0011, f0, f1),
        Err(CapsError::FixedBits {
            cr: 0,
            must_set: 0x8000_0020,
            must_clear: 0x1_0000_0000
        })
    );
    assert_eq!(apply_fixed_bits(0x11, f0, f1), 0x8000_0031);
    assert_eq!(guest_cr0_fixed0(f0, true), 0x20);
    assert_eq!(guest_cr0_fixed0(f0, false), f0);
}

#[test]
fn ept_capabilities() {
    let full = (1 << 6) | (1 << 14) | (1 << 20) | (1 << 21) | (1 << 25) | (1 << 32) | (1 << 41);
    let caps = EptCapabilities::decode(full).unwrap();
    assert!(caps.accessed_dirty && caps.invept_single_context && caps.invvpid);
    assert!(!caps.invvpid_all_context);
    assert_eq!(
        EptCapabilities::decode(full & !(1 << 14)),
        Err(CapsError::MissingEptFeature("write-back EPT structures"))
    );
    assert_eq!(
        EptCapabilities::decode(full & !(1 << 25)),
        Err(CapsError::MissingEptFeature(
            "single- or all-context INVEPT"
        ))
    );
}

#[test]
fn preemption_timer_scaling() {
    assert_eq!(preemption_timer_value(1_000_000, 5), 31_250);
    assert_eq!(preemption_timer_value(3, 5), 1, "never zero");
    assert_eq!(preemption_timer_value(u64::MAX, 0), u32::MAX);
}
