//! One test per guest-state rule: a state tern itself produces passes; the same state with
//! one field broken is refused with that field's name.

use super::*;
use crate::vm::exit_handler::VcpuEmulation;
use crate::vm::vcpu_state::tests::{config, limits};
use crate::vm::vcpu_state::{VcpuSoftware, capture as capture_vcpu};
use crate::vmx::regs::GuestRegisters;
use crate::vmx::setup::write_pvh_guest_state;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fake::FakeVmcs;
use crate::vmx::vmcs::fields::{control, guest::*};

/// The PVH entry state (32-bit protected mode) tern boots guests with.
fn pvh() -> FakeVmcs {
    let cfg = config();
    let mut vmcs = FakeVmcs::default();
    vmcs.write32(control::ENTRY_CONTROLS, cfg.entry).unwrap();
    write_pvh_guest_state(
        &mut vmcs,
        &cfg,
        0x10_0000,
        0x6000,
        &mut GuestRegisters::default(),
    )
    .unwrap();
    vmcs
}

/// The same vCPU after the guest switched to 64-bit long mode.
fn long_mode() -> FakeVmcs {
    let mut v = pvh();
    let cr0 = v.get(CR0.0).unwrap();
    let cr4 = v.get(CR4.0).unwrap();
    v.write_raw(CR0.0, cr0 | CR0_PG).unwrap();
    v.write_raw(CR4.0, cr4 | CR4_PAE).unwrap();
    // What the guest's MOV to CR0/CR4 leaves in the read shadows (`vmx::setup::cr`).
    let shadow0 = v.get(control::CR0_READ_SHADOW.0).unwrap();
    v.write_raw(control::CR0_READ_SHADOW.0, shadow0 | CR0_PG)
        .unwrap();
    v.write_raw(control::CR4_READ_SHADOW.0, CR4_PAE).unwrap();
    v.write_raw(CR3.0, 0x7000).unwrap();
    v.write_raw(IA32_EFER.0, 0xd00).unwrap();
    v.write_raw(CS_ACCESS_RIGHTS.0, 0xa09b).unwrap();
    v.write_raw(RIP.0, 0xffff_ffff_8100_1234).unwrap();
    v
}

fn capture(v: &FakeVmcs, msrs: [u64; 6]) -> VcpuState {
    let soft = VcpuSoftware {
        regs: GuestRegisters::default(),
        emulation: VcpuEmulation::default(),
        switched_msrs: msrs,
        guest_tsc: 0,
        cr2: 0,
    };
    capture_vcpu(v, &soft, 0).unwrap()
}

fn check(v: &FakeVmcs) -> Result<(), GuestStateError> {
    check_guest_state(&capture(v, [0; 6]), &limits())
}

/// `base` with `field` set to `value` is refused, naming `name`.
fn refused(mut base: FakeVmcs, field: u32, value: u64, name: &str) {
    assert_eq!(check(&base), Ok(()), "the base state must pass");
    base.write_raw(field, value).unwrap();
    match check(&base) {
        Err(e) => assert_eq!(e.field, name, "{e}"),
        Ok(()) => panic!("{name} = {value:#x} was accepted"),
    }
}

/// `base`'s state changed by `change` is refused, naming `name` (for what the VMCS cannot
/// express: the guest's view of CR0/CR4, fields only the protocol has).
fn refused_state(base: &FakeVmcs, change: impl FnOnce(&mut VcpuState), name: &str) {
    let mut s = capture(base, [0; 6]);
    assert_eq!(
        check_guest_state(&s, &limits()),
        Ok(()),
        "the base state must pass"
    );
    change(&mut s);
    match check_guest_state(&s, &limits()) {
        Err(e) => assert_eq!(e.field, name, "{e}"),
        Ok(()) => panic!("{name}: the changed state was accepted"),
    }
}

/// The Linux 64-bit boot protocol's entry state (`vm::linux_boot`).
fn linux64() -> FakeVmcs {
    let cfg = config();
    let mut vmcs = FakeVmcs::default();
    vmcs.write32(control::ENTRY_CONTROLS, cfg.entry).unwrap();
    let entry = crate::vm::linux_boot::Entry64 {
        rip: 0x100_0200,
        rsi: 0x7000,
        cr3: 0x1000,
        gdt_base: 0x8000,
        gdt_limit: 31,
    };
    let mut regs = GuestRegisters::default();
    crate::vmx::setup::write_linux64_guest_state(&mut vmcs, &cfg, &entry, &mut regs).unwrap();
    assert_eq!(regs.rsi, 0x7000);
    vmcs
}

#[test]
fn states_tern_produces_pass() {
    assert_eq!(check(&pvh()), Ok(()));
    assert_eq!(check(&long_mode()), Ok(()));
    assert_eq!(check(&linux64()), Ok(()));
}

#[test]
fn the_linux_entry_is_in_ia32e_mode_with_the_boot_selectors() {
    let v = linux64();
    assert_eq!(v.get(CS_SELECTOR.0), Some(0x10));
    assert_eq!(v.get(DS_SELECTOR.0), Some(0x18));
    assert_eq!(v.get(RIP.0), Some(0x100_0200));
    assert_eq!(v.get(CR3.0), Some(0x1000));
    assert_eq!(v.get(IA32_EFER.0), Some(0x500));
    let entry = v.get(control::ENTRY_CONTROLS.0).unwrap();
    assert_ne!(
        entry & u64::from(crate::vmx::setup::controls::bits::ENTRY_IA32E_MODE_GUEST),
        0
    );
    // A 64-bit CS with D set is refused (SDM §27.3.1.2): the check sees the difference.
    refused(linux64(), CS_ACCESS_RIGHTS.0, 0xe09b, "CS");
}

#[test]
fn rip_must_be_canonical_in_64_bit_mode() {
    refused(long_mode(), RIP.0, 0x8000_0000_0000_1234, "RIP");
}

#[test]
fn rip_must_fit_32_bits_outside_64_bit_mode() {
    refused(pvh(), RIP.0, 0x1_0000_0000, "RIP");
}

#[test]
fn cr0_all_ones_is_refused() {
    refused(long_mode(), CR0.0, u64::MAX, "CR0");
}

#[test]
fn cr0_pg_needs_pe() {
    refused_state(&pvh(), |s| s.cr0 = (s.cr0 | CR0_PG) & !CR0_PE, "CR0");
}

#[test]
fn cr4_rules_on_the_guests_view() {
    refused_state(&pvh(), |s| s.cr4 |= CR4_VMXE, "CR4"); // VMX is hidden from guests
    refused_state(&pvh(), |s| s.cr4 |= 1 << 22, "CR4"); // a bit FIXED1 forbids
    refused_state(&pvh(), |s| s.cr4 |= 1 << 17, "CR4"); // PCIDE outside IA-32e mode
    refused_state(&pvh(), |s| s.cr4 |= 1 << 40, "CR4");
}

#[test]
fn rflags_reserved_bits() {
    refused_state(&pvh(), |s| s.rflags = 0, "RFLAGS"); // bit 1 clear
    refused_state(&pvh(), |s| s.rflags |= 1 << 3, "RFLAGS");
    refused_state(&pvh(), |s| s.rflags |= 1 << 40, "RFLAGS");
}

#[test]
fn msr_list_is_exactly_the_carried_msrs() {
    refused_state(&pvh(), |s| s.msrs.retain(|m| m.index != 0x277), "IA32_PAT");
    refused_state(
        &pvh(),
        |s| {
            s.msrs.push(migration_proto::message::MsrValue {
                index: 0x1b,
                value: 0,
            })
        },
        "MSRs",
    );
    let set = |index: u32, value: u64| {
        move |s: &mut VcpuState| {
            s.msrs
                .iter_mut()
                .filter(|m| m.index == index)
                .for_each(|m| m.value = value)
        }
    };
    refused_state(&pvh(), set(0x277, 0x02), "IA32_PAT"); // memory type 2 is reserved
    refused_state(&pvh(), set(0x174, 1 << 32), "IA32_SYSENTER_CS");
    refused_state(&pvh(), set(0xc000_0082, 1 << 63), "IA32_LSTAR");
}

#[test]
fn xcr0_and_vcpu_index() {
    refused_state(&pvh(), |s| s.xcr0 = 0, "XCR0"); // x87 must be set
    refused_state(&pvh(), |s| s.xcr0 = 0b101, "XCR0"); // AVX without SSE
    refused_state(&pvh(), |s| s.vcpu_index = 256, "vCPU index");
}

#[test]
fn state_tern_cannot_load_yet_must_be_empty() {
    refused_state(&pvh(), |s| s.cr8 = 1, "CR8");
    refused_state(&pvh(), |s| s.dr0_3[2] = 1, "DR0-DR3");
    refused_state(&pvh(), |s| s.dr6 = 0xffff_0ff0, "DR6");
    refused_state(&pvh(), |s| s.pdptes[0] = 1, "PDPTEs");
    refused_state(&pvh(), |s| s.nmi_pending = true, "NMI pending");
}

#[test]
fn pending_event_rules() {
    use migration_proto::message::{EventKind, PendingEvent};
    let gp = PendingEvent {
        vector: 13,
        kind: EventKind::HardwareException,
        error_code: Some(0),
        instruction_len: 0,
    };
    let mut ok = capture(&pvh(), [0; 6]);
    ok.pending_event = Some(gp);
    assert_eq!(check_guest_state(&ok, &limits()), Ok(()));
    let with = |e: PendingEvent| move |s: &mut VcpuState| s.pending_event = Some(e);
    refused_state(
        &pvh(),
        with(PendingEvent {
            error_code: None,
            ..gp
        }),
        "pending event",
    );
    refused_state(
        &pvh(),
        with(PendingEvent { vector: 6, ..gp }),
        "pending event",
    ); // #UD has no code
    refused_state(
        &pvh(),
        with(PendingEvent {
            vector: 2,
            error_code: None,
            ..gp
        }),
        "pending event",
    );
    refused_state(
        &pvh(),
        with(PendingEvent {
            vector: 40,
            error_code: None,
            ..gp
        }),
        "pending event",
    );
    refused_state(
        &pvh(),
        with(PendingEvent {
            kind: EventKind::ExternalInterrupt,
            vector: 40,
            error_code: None,
            ..gp
        }),
        "pending event",
    );
    refused_state(
        &pvh(),
        with(PendingEvent {
            error_code: Some(1 << 16),
            ..gp
        }),
        "pending event",
    );
}

#[test]
fn cr3_beyond_maxphyaddr_is_refused() {
    refused(long_mode(), CR3.0, 1 << 45, "CR3");
}

#[test]
fn efer_all_ones_is_refused() {
    refused(long_mode(), IA32_EFER.0, u64::MAX, "IA32_EFER");
}

#[test]
fn efer_lma_needs_paging_and_pae() {
    refused(pvh(), IA32_EFER.0, 0x500, "IA32_EFER");
}

#[test]
fn efer_lma_must_match_lme_with_paging() {
    refused(long_mode(), IA32_EFER.0, 0x400, "IA32_EFER");
}

#[test]
fn dr7_and_debugctl_reserved_bits() {
    refused(pvh(), DR7.0, 1 << 40, "DR7");
    refused(pvh(), IA32_DEBUGCTL.0, 1 << 3, "IA32_DEBUGCTL");
}

#[test]
fn sysenter_addresses_must_be_canonical() {
    refused(pvh(), IA32_SYSENTER_EIP.0, 1 << 60, "IA32_SYSENTER_EIP");
    refused(pvh(), IA32_SYSENTER_ESP.0, 1 << 60, "IA32_SYSENTER_ESP");
}

#[test]
fn segment_bases_are_checked() {
    refused(long_mode(), FS_BASE.0, 0x8000_0000_0000_0000, "FS");
    refused(long_mode(), GS_BASE.0, 0x0001_0000_0000_0000, "GS");
    refused(long_mode(), TR_BASE.0, 0x8000_0000_0000_0000, "TR");
    refused(long_mode(), CS_BASE.0, 1 << 32, "CS");
    refused(pvh(), SS_BASE.0, 1 << 32, "SS");
}

#[test]
fn cs_dpl_rules() {
    refused(pvh(), CS_ACCESS_RIGHTS.0, 0xc0f3, "CS"); // type 3 (unrestricted guest) needs DPL 0
    refused(pvh(), CS_ACCESS_RIGHTS.0, 0xc0fb, "CS"); // non-conforming code, DPL 3 != SS.DPL 0
}

#[test]
fn cs_type_must_be_code() {
    refused(pvh(), CS_ACCESS_RIGHTS.0, 0xc091, "CS"); // type 1: read-only data
}

#[test]
fn cs_must_be_present_and_reserved_bits_clear() {
    refused(pvh(), CS_ACCESS_RIGHTS.0, 0xc01b, "CS"); // P = 0
    refused(pvh(), CS_ACCESS_RIGHTS.0, 0xc19b, "CS"); // bit 8 reserved
    refused(pvh(), CS_ACCESS_RIGHTS.0, 0x4_c09b, "CS"); // bit 18 reserved
}

#[test]
fn cs_l_and_db_exclusive_in_64_bit_mode() {
    refused(long_mode(), CS_ACCESS_RIGHTS.0, 0xe09b, "CS");
}

#[test]
fn limit_must_agree_with_granularity() {
    refused(pvh(), DS_LIMIT.0, 0xffff_f000, "DS"); // G = 1, low bits not all 1
    refused(pvh(), ES_ACCESS_RIGHTS.0, 0x4093, "ES"); // G = 0 with a 4 GiB limit
}

#[test]
fn ss_type_and_dpl() {
    refused(pvh(), SS_ACCESS_RIGHTS.0, 0xc09b, "SS"); // code segment in SS
}

#[test]
fn data_segments_must_be_accessed() {
    refused(pvh(), GS_ACCESS_RIGHTS.0, 0xc092, "GS");
}

#[test]
fn tr_must_be_a_busy_tss_of_the_right_width() {
    refused(long_mode(), TR_ACCESS_RIGHTS.0, 0x0083, "TR"); // 16-bit busy TSS in IA-32e
    refused(pvh(), TR_ACCESS_RIGHTS.0, 0x1_0000, "TR"); // unusable
    refused(pvh(), TR_SELECTOR.0, 0x04, "TR"); // TI flag
}

#[test]
fn usable_ldtr_must_be_an_ldt() {
    refused(pvh(), LDTR_ACCESS_RIGHTS.0, 0x0089, "LDTR");
}

#[test]
fn descriptor_tables_are_checked() {
    refused(long_mode(), GDTR_BASE.0, 0x8000_0000_0000_0000, "GDTR");
    refused(pvh(), IDTR_BASE.0, 0x0001_0000_0000_0000, "IDTR");
}

#[test]
fn rflags_vm_outside_protected_legacy_mode() {
    refused(long_mode(), RFLAGS.0, 0x2_0002, "RFLAGS");
}

#[test]
fn activity_state_is_active_or_hlt() {
    refused(pvh(), ACTIVITY_STATE.0, 2, "activity state");
    let mut v = pvh();
    v.write_raw(ACTIVITY_STATE.0, 1).unwrap();
    assert_eq!(check(&v), Ok(()));
}

#[test]
fn interruptibility_state_rules() {
    refused(
        pvh(),
        INTERRUPTIBILITY_STATE.0,
        1 << 5,
        "interruptibility state",
    );
    refused(pvh(), INTERRUPTIBILITY_STATE.0, 3, "interruptibility state");
    refused(pvh(), INTERRUPTIBILITY_STATE.0, 1, "interruptibility state"); // STI, IF = 0
    refused(pvh(), INTERRUPTIBILITY_STATE.0, 4, "interruptibility state"); // SMI
}

#[test]
fn pending_debug_exceptions_rules() {
    refused(
        pvh(),
        PENDING_DEBUG_EXCEPTIONS.0,
        1 << 20,
        "pending debug exceptions",
    );
    // Single-stepping (TF) right after MOV SS: the pending single-step (BS) must be recorded.
    let mut v = pvh();
    v.write_raw(RFLAGS.0, 0x102).unwrap();
    v.write_raw(INTERRUPTIBILITY_STATE.0, 2).unwrap();
    v.write_raw(PENDING_DEBUG_EXCEPTIONS.0, 1 << 14).unwrap();
    refused(v, PENDING_DEBUG_EXCEPTIONS.0, 0, "pending debug exceptions");
}

#[test]
fn switched_msrs_must_be_writable_in_host_mode() {
    let good = [
        0x0023_0010_0000_0000,
        0xffff_ffff_8100_0000,
        0,
        0x4_7700,
        0,
        7,
    ];
    assert_eq!(check_switched_msrs(&good), Ok(()));
    for (i, bad, name) in [
        (1, 0x8000_0000_0000_1234, "IA32_LSTAR"),
        (2, 0x0000_8000_0000_0000, "IA32_CSTAR"),
        (3, 1 << 32, "IA32_FMASK"),
        (4, 0x1234_5678_9abc_def0, "IA32_KERNEL_GS_BASE"),
        (5, 1 << 40, "IA32_TSC_AUX"),
    ] {
        let mut msrs = good;
        msrs[i] = bad;
        assert_eq!(check_switched_msrs(&msrs).map_err(|e| e.field), Err(name));
        // The whole-state check includes them.
        assert_eq!(
            check_guest_state(&capture(&long_mode(), msrs), &limits()).map_err(|e| e.field),
            Err(name)
        );
    }
}

#[test]
fn canonical_addresses() {
    assert!(is_canonical(0));
    assert!(is_canonical(0x0000_7fff_ffff_ffff));
    assert!(is_canonical(0xffff_8000_0000_0000));
    assert!(!is_canonical(0x0000_8000_0000_0000));
    assert!(!is_canonical(0x8000_0000_0000_1234));
}

/// An area as a tern source on an AVX host sends it: x87, SSE and AVX saved, MXCSR at reset.
fn sent_xsave() -> alloc::vec::Vec<u8> {
    let mut a = alloc::vec![0u8; 832];
    a[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    a[512] = 0b111;
    a
}

#[test]
fn cr2_and_a_sound_xsave_area_are_loaded() {
    let mut s = capture(&long_mode(), [0; 6]);
    s.cr2 = 0xffff_8000_dead_b000;
    s.xcr0 = 0b111;
    s.xsave = sent_xsave();
    assert_eq!(check_guest_state(&s, &limits()), Ok(()));
    // An older tern sends no area at all: accepted (the registers start at reset).
    s.xsave.clear();
    assert_eq!(check_guest_state(&s, &limits()), Ok(()));
}

#[test]
fn an_xsave_area_xrstor_would_fault_on_is_refused() {
    let with = |edit: fn(&mut alloc::vec::Vec<u8>)| {
        move |s: &mut VcpuState| {
            s.xsave = sent_xsave();
            edit(&mut s.xsave);
        }
    };
    refused_state(&pvh(), with(|a| a[527] = 0x80), "XSAVE area"); // compacted
    refused_state(&pvh(), with(|a| a[512] = 0b1000), "XSAVE area"); // MPX: not here
    refused_state(&pvh(), with(|a| a[26] = 1), "XSAVE area"); // reserved MXCSR bit
    refused_state(&pvh(), with(|a| a.truncate(600)), "XSAVE area"); // AVX cut off
    refused_state(&pvh(), with(|a| a.resize(4096, 0)), "XSAVE area"); // too long
}

#[test]
fn an_xsave_area_on_a_host_without_xsave_is_refused() {
    let mut s = capture(&pvh(), [0; 6]);
    let mut no_xsave = limits();
    no_xsave.xsave = crate::vm::xsave::XsaveLayout::none();
    assert_eq!(check_guest_state(&s, &no_xsave), Ok(()));
    s.xsave = sent_xsave();
    assert_eq!(
        check_guest_state(&s, &no_xsave).map_err(|e| e.field),
        Err("XSAVE area")
    );
    s.xsave.clear();
    s.xcr0 = 0b11;
    assert_eq!(
        check_guest_state(&s, &no_xsave).map_err(|e| e.field),
        Err("XCR0"),
        "XSETBV of SSE would #GP on this host"
    );
}

#[test]
fn x87_and_sse_state_loads_on_a_host_without_xsave() {
    // A baseline VM from an XSAVE host to an FXSR-only host (the cpu_models system test).
    let mut s = capture(&pvh(), [0; 6]);
    let mut legacy = limits();
    legacy.xsave = crate::vm::xsave::XsaveLayout::legacy(0xffff);
    let mut area = sent_xsave();
    area.truncate(576);
    area[512] = 0b11;
    s.xsave = area;
    assert_eq!(check_guest_state(&s, &legacy), Ok(()));
    s.xsave = sent_xsave();
    assert_eq!(
        check_guest_state(&s, &legacy).map_err(|e| e.field),
        Err("XSAVE area"),
        "AVX state cannot load there"
    );
    s.xsave.clear();
    s.xcr0 = 0b11;
    assert_eq!(
        check_guest_state(&s, &legacy).map_err(|e| e.field),
        Err("XCR0"),
        "no XSETBV on that host"
    );
}
