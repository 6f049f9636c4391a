use proptest::prelude::*;

use super::*;
use crate::vmx::setup::testing::bochs_like_msrs;
use crate::vmx::setup::{VmxConfig, write_pvh_guest_state};
use crate::vmx::vmcs::fake::FakeVmcs;

fn pvh_vmcs() -> (FakeVmcs, GuestRegisters) {
    let cfg = VmxConfig::from_msrs(&bochs_like_msrs()).unwrap();
    let mut vmcs = FakeVmcs::default();
    vmcs.write32(control::ENTRY_CONTROLS, cfg.entry).unwrap();
    let mut regs = GuestRegisters::default();
    write_pvh_guest_state(&mut vmcs, &cfg, 0x10_0000, 0x6000, &mut regs).unwrap();
    (vmcs, regs)
}

#[test]
fn capture_encode_decode_apply_round_trip() {
    let (mut vmcs, mut regs) = pvh_vmcs();
    regs.r15 = 0xfeed;
    vmcs.write64(guest::IA32_EFER, 0x500).unwrap();
    vmcs.write_natural(guest::RIP, 0x10_2345).unwrap();
    let emu = VcpuEmulation {
        xcr0: 0b11,
        ..VcpuEmulation::at_reset(2_400_000)
    };
    let state = VcpuState::capture(&vmcs, &regs, &emu, [1, 2, 3, 4, 5, 6], 0x1234_5678).unwrap();
    let bytes = state.encode();
    assert_eq!(bytes.len(), ENCODED_LEN);
    let back = VcpuState::decode(&bytes).unwrap();
    assert_eq!(back, state);

    // Apply into a fresh VMCS: every field matches and long mode follows EFER.LMA.
    let (mut target, _) = pvh_vmcs();
    back.apply_to_vmcs(&mut target).unwrap();
    for encoding in GUEST_FIELDS {
        assert_eq!(target.get(encoding), vmcs.get(encoding), "{encoding:#x}");
    }
    let entry = target.get(control::ENTRY_CONTROLS.0).unwrap();
    assert_ne!(entry & u64::from(ENTRY_IA32E_MODE_GUEST), 0);
    assert_eq!(back.regs.r15, 0xfeed);
    assert_eq!(back.field(guest::RIP.0), 0x10_2345);
}

#[test]
fn decode_rejects_bad_input() {
    let (vmcs, regs) = pvh_vmcs();
    let good = VcpuState::capture(&vmcs, &regs, &VcpuEmulation::default(), [0; 6], 0)
        .unwrap()
        .encode();
    assert_eq!(
        VcpuState::decode(&good[..10]),
        Err(VcpuStateError::Length {
            got: 10,
            expected: ENCODED_LEN
        })
    );
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(VcpuState::decode(&bad), Err(VcpuStateError::BadMagic));
    let mut bad = good.clone();
    bad[4] = 9;
    assert_eq!(
        VcpuState::decode(&bad),
        Err(VcpuStateError::UnsupportedVersion(9))
    );
    // RFLAGS without bit 1.
    let rflags_at = 8 + 8 * GUEST_FIELDS
        .iter()
        .position(|f| *f == guest::RFLAGS.0)
        .unwrap();
    let mut bad = good.clone();
    bad[rflags_at] = 0;
    assert_eq!(
        VcpuState::decode(&bad),
        Err(VcpuStateError::Invalid("RFLAGS"))
    );
}

#[test]
fn tsc_rate_travels_and_version_1_decodes_as_unknown_rate() {
    let (vmcs, regs) = pvh_vmcs();
    let state =
        VcpuState::capture(&vmcs, &regs, &VcpuEmulation::at_reset(50_002), [0; 6], 0x77).unwrap();
    let v2 = state.encode();
    assert_eq!(VcpuState::decode(&v2).unwrap().emulation.tsc_khz, 50_002);
    // A version-1 state is the same bytes without the last word.
    let mut v1 = v2[..v2.len() - 8].to_vec();
    v1[4] = 1;
    let old = VcpuState::decode(&v1).unwrap();
    assert_eq!(old.emulation.tsc_khz, 0);
    assert_eq!(old.guest_tsc, 0x77);
    assert_eq!(old.regs, state.regs);
    // Lengths must match the version given.
    assert_eq!(
        VcpuState::decode(&v2[..v2.len() - 8]),
        Err(VcpuStateError::Length {
            got: ENCODED_LEN - 8,
            expected: ENCODED_LEN
        })
    );
    let mut v1_long = v2.clone();
    v1_long[4] = 1;
    assert_eq!(
        VcpuState::decode(&v1_long),
        Err(VcpuStateError::Length {
            got: ENCODED_LEN,
            expected: ENCODED_LEN - 8
        })
    );
    // A rate that does not fit CPUID's 32 bits is refused.
    let mut huge = v2;
    let at = huge.len() - 4;
    huge[at] = 1;
    assert_eq!(
        VcpuState::decode(&huge),
        Err(VcpuStateError::Invalid("TSC frequency"))
    );
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), ENCODED_LEN..=ENCODED_LEN), flip in 0usize..ENCODED_LEN) {
        let _ = VcpuState::decode(&bytes);
        let (vmcs, regs) = pvh_vmcs();
        let mut good = VcpuState::capture(&vmcs, &regs, &VcpuEmulation::default(), [0; 6], 0).unwrap().encode();
        good[flip] ^= 0xff;
        if let Ok(s) = VcpuState::decode(&good) {
            prop_assert_eq!(s.encode(), good);
        }
    }
}
