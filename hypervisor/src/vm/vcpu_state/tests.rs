use super::*;
use crate::vm::msr::PAT_DEFAULT;
use crate::vm::msr::mtrr::Mtrrs;
use crate::vmx::setup::testing::bochs_like_msrs;
use crate::vmx::setup::{VmxConfig, write_pvh_guest_state};
use crate::vmx::vmcs::fake::FakeVmcs;
use crate::vmx::vmcs::fields::ALL;

pub(super) fn config() -> VmxConfig {
    VmxConfig::from_msrs(&bochs_like_msrs()).unwrap()
}

pub(super) fn limits() -> GuestStateLimits {
    let c = config();
    GuestStateLimits {
        cr0_fixed0: c.cr0_fixed0,
        cr0_fixed1: c.cr0_fixed1,
        cr4_fixed0: c.cr4_fixed0,
        cr4_fixed1: c.cr4_fixed1,
        phys_addr_bits: 39,
        xsave: avx_host_xsave(),
    }
}

/// A host switching x87, SSE and AVX (AVX at its usual offset 576).
pub(super) fn avx_host_xsave() -> crate::vm::xsave::XsaveLayout {
    use crate::vm::cpuid::CpuidResult;
    crate::vm::xsave::XsaveLayout::from_cpuid(0b111, 0xffff, |leaf, subleaf| {
        let (eax, ebx) = match (leaf, subleaf) {
            (0xd, 0) => (0b111, 832),
            (0xd, 2) => (256, 576),
            _ => (0, 0),
        };
        CpuidResult {
            eax,
            ebx,
            ecx: ebx,
            edx: 0,
        }
    })
}

fn pvh_vmcs() -> (FakeVmcs, GuestRegisters) {
    let cfg = config();
    let mut vmcs = FakeVmcs::default();
    vmcs.write32(control::ENTRY_CONTROLS, cfg.entry).unwrap();
    let mut regs = GuestRegisters::default();
    write_pvh_guest_state(&mut vmcs, &cfg, 0x10_0000, 0x6000, &mut regs).unwrap();
    (vmcs, regs)
}

/// A vCPU in 64-bit mode as a guest's own MOV to CR0/CR4 would leave it (real values and
/// read shadows), with every GPR and MSR distinct.
fn long_mode_vcpu() -> (FakeVmcs, VcpuSoftware) {
    let (mut vmcs, mut regs) = pvh_vmcs();
    let shadow0 = vmcs.get(control::CR0_READ_SHADOW.0).unwrap() | u64::from(CR0_PG_BIT);
    let cr0 = vmcs.get(guest::CR0.0).unwrap() | u64::from(CR0_PG_BIT);
    vmcs.write_natural(control::CR0_READ_SHADOW, shadow0)
        .unwrap();
    vmcs.write_natural(guest::CR0, cr0).unwrap();
    let cr4 = vmcs.get(guest::CR4.0).unwrap() | 0x20;
    vmcs.write_natural(control::CR4_READ_SHADOW, 0x20).unwrap();
    vmcs.write_natural(guest::CR4, cr4).unwrap();
    vmcs.write_natural(guest::CR3, 0x7000).unwrap();
    vmcs.write64(guest::IA32_EFER, 0xd00).unwrap();
    vmcs.write32(guest::CS_ACCESS_RIGHTS, 0xa09b).unwrap();
    vmcs.write_natural(guest::RIP, 0xffff_ffff_8100_1234)
        .unwrap();
    vmcs.write_natural(guest::RSP, 0xffff_ffff_8200_0000)
        .unwrap();
    vmcs.write_natural(guest::IA32_SYSENTER_EIP, 0xffff_ffff_8100_4000)
        .unwrap();
    vmcs.write32(guest::IA32_SYSENTER_CS, 0x10).unwrap();
    vmcs.write64(guest::IA32_DEBUGCTL, 1).unwrap();
    vmcs.write64(guest::IA32_PAT, PAT_DEFAULT).unwrap();
    vmcs.write_natural(guest::GDTR_BASE, 0xffff_ffff_8000_1000)
        .unwrap();
    vmcs.write32(guest::GDTR_LIMIT, 0x7f).unwrap();
    for (i, r) in [
        &mut regs.rax,
        &mut regs.rcx,
        &mut regs.rdx,
        &mut regs.rbx,
        &mut regs.rbp,
        &mut regs.rsi,
        &mut regs.rdi,
        &mut regs.r8,
        &mut regs.r15,
    ]
    .into_iter()
    .enumerate()
    {
        *r = 0x1000 + i as u64;
    }
    let soft = VcpuSoftware {
        regs,
        emulation: VcpuEmulation {
            msrs: MsrFile {
                mtrrs: Mtrrs {
                    def_type: 0xc06,
                    fixed: [0x0606_0606_0606_0606; 11],
                    variable: [(0xc000_0000, 0x7f_c000_0800); 8],
                },
                misc_enable: 1,
                tsc_adjust: 0x1234,
            },
            xcr0: 0b111,
            apic_id: 0,
            tsc_khz: 0,
            features: crate::vm::cpu_model::FeatureMasks::all(),
        },
        switched_msrs: [
            0x0023_0010_0000_0000,
            0xffff_ffff_8100_0000,
            0,
            0x4_7700,
            0xffff_8880_0000_0000,
            7,
        ],
        guest_tsc: 0x1234_5678,
        cr2: 0x7fff_1234_5000,
    };
    (vmcs, soft)
}

const CR0_PG_BIT: u32 = 1 << 31;

#[test]
fn capture_carries_the_architectural_state() {
    let (vmcs, soft) = long_mode_vcpu();
    let s = capture(&vmcs, &soft, 0).unwrap();
    assert_eq!(s.gprs[0], soft.regs.rax);
    assert_eq!(
        s.gprs[1], soft.regs.rcx,
        "encoding order: RAX, RCX, RDX, RBX"
    );
    assert_eq!(s.gprs[3], soft.regs.rbx);
    assert_eq!(s.gprs[RSP], 0xffff_ffff_8200_0000, "RSP from the VMCS");
    assert_eq!(s.gprs[15], soft.regs.r15);
    assert_eq!(s.rip, 0xffff_ffff_8100_1234);
    assert_eq!(
        s.segments[1].access_rights, 0xa09b,
        "CS is the second segment"
    );
    assert_eq!(s.gdtr.limit, 0x7f);
    // The guest's view of CR0/CR4: no forced NE, no VMXE.
    assert_eq!(s.cr0 & (1 << 5), 0, "NE is VMX's, not the guest's");
    assert_eq!(s.cr4, 0x20, "PAE only; VMXE hidden");
    assert_eq!(s.efer, 0xd00);
    assert_eq!(s.xcr0, 0b111);
    assert_eq!(msr_value(&s, index::IA32_TSC), Some(0x1234_5678));
    assert_eq!(
        msr_value(&s, index::IA32_LSTAR),
        Some(0xffff_ffff_8100_0000)
    );
    assert_eq!(msr_value(&s, index::IA32_MTRR_DEF_TYPE), Some(0xc06));
    assert_eq!(msr_value(&s, index::IA32_SYSENTER_CS), Some(0x10));
    assert_eq!(
        s.msrs.len(),
        CARRIED_MSRS.len() + OPTIONAL_MSRS.len() + MTRR_RANGE_MSRS.len(),
        "every carried MSR once, TSC_ADJUST (version 3), then the MTRR ranges (version 2)"
    );
    assert_eq!(msr_value(&s, index::IA32_TSC_ADJUST), Some(0x1234));
    assert_eq!(msr_value(&s, 0x250), Some(0x0606_0606_0606_0606));
    assert_eq!(msr_value(&s, 0x20f), Some(0x7f_c000_0800));
    assert_eq!(s.validate(), Ok(()), "the protocol's own rules hold");
    assert_eq!(s.pending_event, None);
}

#[test]
fn apply_reproduces_every_guest_field_and_the_software_state() {
    let (vmcs, soft) = long_mode_vcpu();
    let state = capture(&vmcs, &soft, 0).unwrap();
    let (mut target, _) = pvh_vmcs();
    let back = apply(&state, &mut target, &limits()).unwrap();
    assert_eq!(back, soft);
    // Every guest-state field and read shadow tern writes is equal to the source's.
    for &encoding in ALL {
        let guest_area = (0x0800..0x0900).contains(&encoding)
            || (0x2800..0x2900).contains(&encoding)
            || (0x4800..0x4900).contains(&encoding)
            || (0x6800..0x6900).contains(&encoding);
        let shadows = [control::CR0_READ_SHADOW.0, control::CR4_READ_SHADOW.0];
        if encoding == guest::PML_INDEX.0
            || encoding == guest::VMCS_LINK_POINTER.0
            || encoding == guest::PREEMPTION_TIMER_VALUE.0
            || !(guest_area || shadows.contains(&encoding))
        {
            continue;
        }
        assert_eq!(target.get(encoding), vmcs.get(encoding), "{encoding:#x}");
    }
    let entry = target.get(control::ENTRY_CONTROLS.0).unwrap();
    assert_ne!(
        entry & u64::from(ENTRY_IA32E_MODE_GUEST),
        0,
        "follows EFER.LMA"
    );
    // And back again: the format is a fixed point.
    assert_eq!(capture(&target, &back, 0).unwrap(), state);
}

#[test]
fn a_queued_exception_travels_as_the_pending_event() {
    let (mut vmcs, soft) = long_mode_vcpu();
    crate::vm::exit_handler::inject_exception(&mut vmcs, 13, Some(0)).unwrap();
    let state = capture(&vmcs, &soft, 0).unwrap();
    assert_eq!(
        state.pending_event,
        Some(PendingEvent {
            vector: 13,
            kind: EventKind::HardwareException,
            error_code: Some(0),
            instruction_len: 0,
        })
    );
    let (mut target, _) = pvh_vmcs();
    apply(&state, &mut target, &limits()).unwrap();
    assert_eq!(
        target.get(control::ENTRY_INTERRUPTION_INFO.0),
        vmcs.get(control::ENTRY_INTERRUPTION_INFO.0)
    );
}

#[test]
fn a_refused_state_writes_nothing() {
    let (vmcs, soft) = long_mode_vcpu();
    let mut state = capture(&vmcs, &soft, 0).unwrap();
    state.rip = 0x8000_0000_0000_1234;
    let (mut target, _) = pvh_vmcs();
    let before = target.clone();
    match apply(&state, &mut target, &limits()) {
        Err(ApplyError::Refused(e)) => assert_eq!(e.field, "RIP"),
        other => panic!("{other:?}"),
    }
    assert_eq!(target, before);
}

#[test]
fn the_destination_runs_cr0_cr4_with_its_own_fixed_bits() {
    let (vmcs, soft) = long_mode_vcpu();
    let state = capture(&vmcs, &soft, 0).unwrap();
    let (mut target, _) = pvh_vmcs();
    apply(&state, &mut target, &limits()).unwrap();
    let l = limits();
    let cr0 = target.get(guest::CR0.0).unwrap();
    assert_eq!(
        cr0 & l.cr0_fixed0 & !0x8000_0001,
        l.cr0_fixed0 & !0x8000_0001
    );
    assert_ne!(target.get(guest::CR4.0).unwrap() & 0x2000, 0, "VMXE forced");
    assert_eq!(target.get(control::CR4_READ_SHADOW.0), Some(0x20));
}

#[test]
fn a_version_1_msr_list_loads_with_reset_mtrr_ranges() {
    let (vmcs, soft) = long_mode_vcpu();
    let mut state = capture(&vmcs, &soft, 0).unwrap();
    state
        .msrs
        .retain(|m| !MTRR_RANGE_MSRS.contains(&m.index) && !OPTIONAL_MSRS.contains(&m.index));
    assert_eq!(state.msrs.len(), CARRIED_MSRS.len());
    let (mut target, _) = pvh_vmcs();
    let back = apply(&state, &mut target, &limits()).unwrap();
    assert_eq!(
        back.emulation.msrs.tsc_adjust, 0,
        "TSC_ADJUST absent: reset value"
    );
    assert_eq!(
        back.emulation.msrs.mtrrs.def_type, 0xc06,
        "DEF_TYPE is version 1"
    );
    assert_eq!(back.emulation.msrs.mtrrs.fixed, [0; 11]);
    assert_eq!(back.emulation.msrs.mtrrs.variable, [(0, 0); 8]);
}

#[test]
fn mtrr_ranges_come_all_or_none_and_valid() {
    let (vmcs, soft) = long_mode_vcpu();
    let state = capture(&vmcs, &soft, 0).unwrap();
    let refused = |change: &dyn Fn(&mut VcpuState)| {
        let mut s = state.clone();
        change(&mut s);
        let (mut target, _) = pvh_vmcs();
        match apply(&s, &mut target, &limits()) {
            Err(ApplyError::Refused(e)) => e.field,
            other => panic!("accepted: {other:?}"),
        }
    };
    assert_eq!(refused(&|s| s.msrs.retain(|m| m.index != 0x26f)), "MTRRs");
    let set = |index: u32, value: u64| {
        move |s: &mut VcpuState| {
            s.msrs
                .iter_mut()
                .filter(|m| m.index == index)
                .for_each(|m| m.value = value)
        }
    };
    assert_eq!(refused(&set(0x250, 0x0303)), "MTRRs", "type 3 reserved");
    assert_eq!(
        refused(&set(0x201, 0x801)),
        "MTRRs",
        "mask bits 10:0 reserved"
    );
    assert_eq!(
        refused(&set(0x2ff, 0xc07)),
        "IA32_MTRR_DEF_TYPE",
        "UC- is PAT-only"
    );
    let mut twice = state.clone();
    twice.msrs.push(migration_proto::message::MsrValue {
        index: 0x250,
        value: 0,
    });
    let (mut target, _) = pvh_vmcs();
    assert!(apply(&twice, &mut target, &limits()).is_err());
}
