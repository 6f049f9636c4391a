//! VMCS setup against a fake VMCS, with capability values shaped like Bochs' `tigerlake`
//! model (default1 bits forced, everything else allowed).

use super::controls::bits::*;
use super::host as host_setup;
use super::*;
use crate::vmx::caps::{CapsError, ControlKind};
use crate::vmx::error::{InstructionError, VmxError, VmxInstruction};
use crate::vmx::regs::GuestRegisters;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fake::FakeVmcs;
use crate::vmx::vmcs::fields::{control, exit_info, guest, host};

use super::testing::bochs_like_msrs as msrs;

#[test]
fn config_sets_required_controls() {
    let cfg = VmxConfig::from_msrs(&msrs()).unwrap();
    assert_eq!(cfg.pin & PIN_PREEMPTION_TIMER, PIN_PREEMPTION_TIMER);
    assert_eq!(cfg.pin & 0x16, 0x16, "default1 bits kept");
    for bit in [
        PROC_HLT_EXITING,
        PROC_USE_IO_BITMAPS,
        PROC_USE_MSR_BITMAPS,
        PROC_ACTIVATE_SECONDARY,
    ] {
        assert_ne!(cfg.primary & bit, 0);
    }
    assert_eq!(cfg.primary & PROC_UNCONDITIONAL_IO_EXITING, 0);
    assert_eq!(
        cfg.secondary & (PROC2_ENABLE_EPT | PROC2_UNRESTRICTED_GUEST | PROC2_ENABLE_VPID),
        PROC2_ENABLE_EPT | PROC2_UNRESTRICTED_GUEST | PROC2_ENABLE_VPID
    );
    assert!(cfg.vpid && cfg.ept.accessed_dirty);
    assert_eq!(cfg.entry & ENTRY_IA32E_MODE_GUEST, 0);
    assert_ne!(cfg.exit & EXIT_HOST_ADDRESS_SPACE_SIZE, 0);
    assert_eq!(cfg.preemption_timer_rate, 5);
}

#[test]
fn config_refuses_missing_features() {
    let mut m = msrs();
    m.secondary &= !((PROC2_UNRESTRICTED_GUEST as u64) << 32);
    assert_eq!(
        VmxConfig::from_msrs(&m),
        Err(CapsError::UnsupportedControls {
            kind: ControlKind::SecondaryProcBased,
            missing: PROC2_UNRESTRICTED_GUEST
        })
    );
    let mut m = msrs();
    m.ept_vpid &= !(1 << 41);
    assert!(
        !VmxConfig::from_msrs(&m).unwrap().vpid,
        "no INVVPID context type: no VPID"
    );
}

#[test]
fn capability_msrs_are_read_in_a_safe_order() {
    let values = msrs();
    let mut read = alloc::vec::Vec::new();
    let m = CapabilityMsrs::read(|msr| {
        read.push(msr);
        match msr {
            0x480 => values.basic,
            0x48d => values.pin,
            0x48e => values.primary,
            0x48b => values.secondary,
            0x48f => values.exit,
            0x490 => values.entry,
            0x485 => values.misc,
            0x486 => values.cr0_fixed0,
            0x487 => values.cr0_fixed1,
            0x488 => values.cr4_fixed0,
            0x489 => values.cr4_fixed1,
            0x48c => values.ept_vpid,
            other => panic!("unexpected MSR {other:#x}"),
        }
    })
    .unwrap();
    assert_eq!(m, values);
    assert_eq!(&read[..3], &[0x480, 0x48e, 0x48b]);
    // No secondary controls: stop before reading PROCBASED_CTLS2.
    let mut read = alloc::vec::Vec::new();
    let r = CapabilityMsrs::read(|msr| {
        read.push(msr);
        if msr == 0x480 { values.basic } else { 0 }
    });
    assert!(r.is_err());
    assert_eq!(read, [0x480, 0x48e]);
}

#[test]
fn full_vmcs_setup_writes_a_pvh_guest() {
    let cfg = VmxConfig::from_msrs(&msrs()).unwrap();
    let mut vmcs = FakeVmcs::default();
    let addrs = ControlAddresses {
        io_bitmap_a: 0x10_0000,
        io_bitmap_b: 0x10_1000,
        msr_bitmap: 0x10_2000,
        eptp: 0x10_305e,
        vpid: 1,
    };
    write_controls(&mut vmcs, &cfg, &addrs).unwrap();
    let mut regs = GuestRegisters::default();
    write_pvh_guest_state(&mut vmcs, &cfg, 0x10_0000, 0x6000, &mut regs).unwrap();
    let h = HostState {
        cr0: 0x8005_0033,
        cr3: 0x20_0000,
        cr4: 0x2620,
        cs: 0x08,
        ss: 0x10,
        ds: 0x10,
        es: 0x10,
        tr: 0x28,
        rip: 0xffff_ffff_8020_1000,
        ..HostState::default()
    };
    write_host_state(&mut vmcs, &h).unwrap();

    assert_eq!(regs.rbx, 0x6000);
    assert_eq!(vmcs.get(guest::RIP.0), Some(0x10_0000));
    assert_eq!(vmcs.get(guest::CR0.0), Some(0x31), "PE|ET|NE, paging off");
    assert_eq!(vmcs.get(control::CR0_READ_SHADOW.0), Some(0x11));
    assert_eq!(vmcs.get(guest::CR4.0), Some(0x2000), "VMXE forced");
    assert_eq!(vmcs.get(control::CR4_READ_SHADOW.0), Some(0));
    assert_eq!(vmcs.get(guest::CS_ACCESS_RIGHTS.0), Some(0xc09b));
    assert_eq!(vmcs.get(guest::TR_ACCESS_RIGHTS.0), Some(0x8b));
    assert_eq!(vmcs.get(guest::LDTR_ACCESS_RIGHTS.0), Some(1 << 16));
    assert_eq!(vmcs.get(guest::VMCS_LINK_POINTER.0), Some(u64::MAX));
    assert_eq!(vmcs.get(guest::RFLAGS.0), Some(2));
    assert_eq!(vmcs.get(control::EPT_POINTER.0), Some(0x10_305e));
    assert_eq!(vmcs.get(crate::vmx::vmcs::fields::VPID.0), Some(1));
    assert_eq!(vmcs.get(host::TR_SELECTOR.0), Some(0x28));
    assert_eq!(vmcs.get(host::RIP.0), Some(0xffff_ffff_8020_1000));
    assert_eq!(
        vmcs.get(control::ENTRY_CONTROLS.0).unwrap() & u64::from(ENTRY_IA32E_MODE_GUEST),
        0
    );
}

#[test]
fn host_state_rules_and_tss_base() {
    let mut vmcs = FakeVmcs::default();
    let bad = HostState {
        cs: 0x0b,
        tr: 0x28,
        ..HostState::default()
    };
    assert_eq!(
        write_host_state(&mut vmcs, &bad),
        Err(VmxError::HostState(
            host_setup::HostStateError::SelectorRplTi(0x0b)
        ))
    );
    let bad = HostState {
        cs: 0x08,
        ..HostState::default()
    };
    assert_eq!(
        write_host_state(&mut vmcs, &bad),
        Err(VmxError::HostState(
            host_setup::HostStateError::NullSelector("TR")
        ))
    );
    // Base 0xffff_ffff_8123_4567 split over the descriptor (SDM Vol. 3A Figure 8-4).
    let low = (0x67u64) | (0x23_4567 << 16) | (0x89u64 << 40) | (0x81u64 << 56);
    let high = 0xffff_ffffu64;
    assert_eq!(tss_base(low, high), 0xffff_ffff_8123_4567);
}

#[test]
fn fake_vmcs_reports_errors_like_the_cpu() {
    let mut vmcs = FakeVmcs::default();
    assert_eq!(
        vmcs.write32(exit_info::EXIT_REASON, 1),
        Err(VmxError::FailValid(
            VmxInstruction::Vmwrite(0x4402),
            InstructionError(13)
        ))
    );
    assert_eq!(
        vmcs.read_raw(0x7777),
        Err(VmxError::FailValid(
            VmxInstruction::Vmread(0x7777),
            InstructionError(12)
        ))
    );
}
