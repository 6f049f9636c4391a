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
        ..VcpuEmulation::default()
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
        Err(VcpuStateError::Length(10))
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
