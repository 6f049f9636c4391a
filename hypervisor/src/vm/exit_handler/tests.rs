use alloc::vec::Vec;

use super::*;
use crate::vmx::exit::RawExit;
use crate::vmx::setup::testing::bochs_like_msrs;
use crate::vmx::setup::{VmxConfig, write_pvh_guest_state};
use crate::vmx::vmcs::fake::FakeVmcs;

#[derive(Default)]
struct FakeHost {
    xcr0: Vec<u64>,
    /// Guest-TSC moves (IA32_TSC_ADJUST writes).
    tsc_moves: Vec<u64>,
}

impl HostCpu for FakeHost {
    fn cpuid(&self, leaf: u32, _subleaf: u32) -> CpuidResult {
        CpuidResult {
            eax: leaf,
            ebx: u32::MAX,
            ecx: u32::MAX,
            edx: u32::MAX,
        }
    }
    fn guest_tsc(&self) -> u64 {
        0x1_2345_6789
    }
    fn set_xcr0(&mut self, value: u64) {
        self.xcr0.push(value);
    }
    fn supported_xcr0(&self) -> u64 {
        0b111
    }
    fn move_guest_tsc(&mut self, delta: u64) {
        self.tsc_moves.push(delta);
    }
}

#[derive(Default)]
struct Ports {
    written: Vec<(u16, u8, u32)>,
    /// WRMSRs of IA32_APIC_BASE the device accepted.
    apic_base_writes: Vec<u64>,
}

/// A device that owns IA32_APIC_BASE (0x1b): reads 0xfee00900, refuses writes with bit 0.
impl DeviceMsrs for Ports {
    fn read_msr(&mut self, msr: u32, _tsc: u64) -> Option<MsrOutcome> {
        (msr == 0x1b).then_some(MsrOutcome::Value(0xfee0_0900))
    }

    fn write_msr(&mut self, msr: u32, value: u64, _tsc: u64) -> Option<MsrOutcome> {
        if msr != 0x1b {
            return None;
        }
        if value & 1 != 0 {
            return Some(MsrOutcome::InjectGp);
        }
        self.apic_base_writes.push(value);
        Some(MsrOutcome::Value(value))
    }
}

impl PortBus for Ports {
    fn read(&mut self, port: u16, _size: u8) -> Option<u32> {
        (port == 0x3fd).then_some(0x60)
    }
    fn write(&mut self, port: u16, size: u8, value: u32) -> bool {
        self.written.push((port, size, value));
        port == 0x3f8
    }
}

struct Rig {
    vmcs: FakeVmcs,
    regs: GuestRegisters,
    emu: VcpuEmulation,
    cfg: VmxConfig,
    host: FakeHost,
    ports: Ports,
}

impl Rig {
    fn new() -> Self {
        let cfg = VmxConfig::from_msrs(&bochs_like_msrs()).unwrap();
        let mut vmcs = FakeVmcs::default();
        vmcs.write32(control::ENTRY_CONTROLS, cfg.entry).unwrap();
        let mut regs = GuestRegisters::default();
        write_pvh_guest_state(&mut vmcs, &cfg, 0x10_0000, 0x6000, &mut regs).unwrap();
        Self {
            vmcs,
            regs,
            emu: VcpuEmulation::default(),
            cfg,
            host: FakeHost::default(),
            ports: Ports::default(),
        }
    }

    /// Decode and handle an exit with the given reason/qualification and a 2-byte
    /// instruction.
    fn exit(&mut self, reason: u32, qualification: u64) -> ExitAction {
        let raw = RawExit {
            reason,
            qualification,
            instruction_len: 2,
            ..RawExit::default()
        };
        let exit = VmExit::decode(&raw, &self.regs);
        handle_exit(
            exit,
            &raw,
            &mut self.vmcs,
            &mut self.regs,
            &mut self.emu,
            &self.cfg,
            &mut self.host,
            &mut self.ports,
        )
        .unwrap()
    }

    fn rip(&self) -> u64 {
        self.vmcs.get(guest::RIP.0).unwrap()
    }

    fn injected(&self) -> Option<u64> {
        self.vmcs
            .get(control::ENTRY_INTERRUPTION_INFO.0)
            .filter(|v| v & (1 << 31) != 0)
    }
}

#[test]
fn cpuid_is_filtered_and_rip_advances() {
    let mut r = Rig::new();
    r.regs.rax = 1;
    assert_eq!(r.exit(10, 0), ExitAction::Continue);
    assert_eq!(r.regs.rcx & (1 << 5), 0, "VMX hidden");
    assert_ne!(r.regs.rcx & (1 << 31), 0, "hypervisor bit");
    assert_eq!(r.rip(), 0x10_0002);
}

#[test]
fn cpuid_timing_leaf_reports_the_vcpus_tsc_and_apic_timer_rates() {
    let mut r = Rig::new();
    r.emu = VcpuEmulation::at_reset(50_002, crate::vm::cpu_model::FeatureMasks::all());
    r.regs.rax = 0x4000_0000;
    r.exit(10, 0);
    assert_eq!(r.regs.rax, 0x4000_0010, "highest hypervisor leaf");
    r.regs.rax = 0x4000_0010;
    r.regs.rcx = 0;
    r.exit(10, 0);
    assert_eq!(
        (r.regs.rax, r.regs.rbx),
        (50_002, u64::from(crate::vm::cpuid::APIC_TIMER_KHZ)),
        "TSC kHz, LAPIC timer kHz"
    );
}

#[test]
fn port_io_reaches_the_bus_with_sizes() {
    let mut r = Rig::new();
    r.regs.rax = 0xdead_be41;
    // OUT DX, AL to 0x3f8.
    assert_eq!(r.exit(30, 0x3f8 << 16), ExitAction::Continue);
    assert_eq!(r.ports.written, [(0x3f8, 1, 0x41)]);
    // IN AL, DX from 0x3fd keeps the upper bits of RAX.
    r.exit(30, (0x3fd << 16) | (1 << 3));
    assert_eq!(r.regs.rax, 0xdead_be60);
    // IN EAX from an undecoded port: all ones, zero-extended.
    r.regs.rax = u64::MAX;
    r.exit(30, (0x80 << 16) | 3 | (1 << 3));
    assert_eq!(r.regs.rax, 0xffff_ffff);
    assert_eq!(r.rip(), 0x10_0006);
    // REP OUTSB is not emulated: the VM stops instead of guessing.
    assert_eq!(
        r.exit(30, (0x3f8 << 16) | (1 << 4) | (1 << 5)),
        ExitAction::Crash(CrashReason::StringIo(0x3f8))
    );
}

#[test]
fn msr_allow_list_and_gp_injection() {
    let mut r = Rig::new();
    r.regs.rcx = 0x10; // IA32_TSC
    r.exit(31, 0);
    assert_eq!((r.regs.rdx, r.regs.rax), (0x1, 0x2345_6789));
    assert_eq!(r.injected(), None);
    r.regs.rcx = 0x8b0; // unknown
    let rip = r.rip();
    r.exit(31, 0);
    assert_eq!(
        r.injected(),
        Some((1 << 31) | (1 << 11) | (3 << 8) | 13),
        "#GP(0)"
    );
    assert_eq!(r.rip(), rip, "faulting instruction not skipped");
}

#[test]
fn tsc_adjust_writes_move_the_tsc_offset_by_the_difference() {
    let mut r = Rig::new();
    assert_ne!(
        r.cfg.primary & PROC_USE_TSC_OFFSETTING,
        0,
        "Bochs has TSC offsetting"
    );
    r.vmcs.write64(control::TSC_OFFSET, 1000).unwrap();
    r.regs.rcx = 0x3b; // IA32_TSC_ADJUST
    r.exit(31, 0);
    assert_eq!((r.regs.rdx, r.regs.rax), (0, 0), "0 at reset");
    // WRMSR 500: the TSC moves forward by 500.
    let rip = r.rip();
    r.regs.rax = 500;
    r.regs.rdx = 0;
    r.exit(32, 0);
    assert_eq!(r.injected(), None);
    assert_eq!(r.rip(), rip + 2);
    assert_eq!(r.vmcs.get(control::TSC_OFFSET.0), Some(1500));
    // WRMSR -100 (two's complement): back by 600.
    let minus_100 = 100u64.wrapping_neg();
    r.regs.rax = minus_100 & 0xffff_ffff;
    r.regs.rdx = minus_100 >> 32;
    r.exit(32, 0);
    assert_eq!(r.vmcs.get(control::TSC_OFFSET.0), Some(900));
    assert_eq!(r.host.tsc_moves, [500, 600u64.wrapping_neg()]);
    // RDMSR reads the last value written.
    r.regs.rax = 0;
    r.regs.rdx = 0;
    r.exit(31, 0);
    assert_eq!((r.regs.rdx << 32) | r.regs.rax, minus_100);
}

#[test]
fn device_msrs_are_asked_before_the_msr_policy() {
    let mut r = Rig::new();
    r.regs.rcx = 0x1b;
    let rip = r.rip();
    r.exit(31, 0);
    assert_eq!((r.regs.rdx, r.regs.rax), (0, 0xfee0_0900));
    assert_eq!(r.rip(), rip + 2);
    // WRMSR the device accepts: advanced; one it refuses: #GP, not skipped.
    r.regs.rax = 0xfee0_0d00;
    r.regs.rdx = 0;
    r.exit(32, 0);
    assert_eq!(r.ports.apic_base_writes, [0xfee0_0d00]);
    assert_eq!(r.injected(), None);
    let rip = r.rip();
    r.regs.rax = 0xfee0_0d01;
    r.exit(32, 0);
    assert_eq!(
        r.injected(),
        Some((1 << 31) | (1 << 11) | (3 << 8) | 13),
        "#GP(0)"
    );
    assert_eq!(r.rip(), rip);
    // Other MSRs still reach the policy.
    r.vmcs.write32(control::ENTRY_INTERRUPTION_INFO, 0).unwrap();
    r.regs.rcx = 0x10;
    r.exit(31, 0);
    assert_eq!((r.regs.rdx, r.regs.rax), (0x1, 0x2345_6789));
}

#[test]
fn long_mode_switch_through_cr_exits() {
    let mut r = Rig::new();
    // MOV CR4, RAX with PAE.
    r.regs.rax = 1 << 5;
    assert_eq!(r.exit(28, 4), ExitAction::Continue);
    assert_eq!(r.vmcs.get(guest::CR4.0), Some(0x2020));
    assert_eq!(r.vmcs.get(control::CR4_READ_SHADOW.0), Some(0x20));
    // The guest sets EFER.LME itself (EFER is passed through): simulate that.
    r.vmcs.write64(guest::IA32_EFER, 1 << 8).unwrap();
    // MOV CR0, RCX with PG|PE.
    r.regs.rcx = 0x8000_0001;
    assert_eq!(r.exit(28, 1 << 8), ExitAction::Continue);
    assert_eq!(
        r.vmcs.get(guest::IA32_EFER.0),
        Some((1 << 8) | (1 << 10)),
        "LMA set"
    );
    let entry = r.vmcs.get(control::ENTRY_CONTROLS.0).unwrap();
    assert_ne!(
        entry & u64::from(ENTRY_IA32E_MODE_GUEST),
        0,
        "IA-32e mode guest"
    );
    assert_eq!(r.vmcs.get(guest::CR0.0), Some(0x8000_0031));
    // MOV CR4 with VMXE: #GP.
    r.regs.rax = 1 << 13;
    r.exit(28, 4);
    assert!(r.injected().is_some());
}

#[test]
fn terminal_and_scheduling_exits() {
    let mut r = Rig::new();
    assert_eq!(r.exit(12, 0), ExitAction::Halted);
    assert_eq!(r.exit(52, 0), ExitAction::SliceEnd);
    assert_eq!(r.exit(2, 0), ExitAction::Crash(CrashReason::TripleFault));
    assert_eq!(
        r.exit(0x8000_0021, 0),
        ExitAction::Crash(CrashReason::EntryFailure(EntryFailure::InvalidGuestState {
            qualification: 0
        }))
    );
    // VMX instructions in the guest: #UD.
    r.exit(20, 0);
    assert_eq!(r.injected(), Some((1 << 31) | (3 << 8) | 6));
}

#[test]
fn ept_violations_become_actions() {
    let mut r = Rig::new();
    let raw = RawExit {
        reason: 48,
        qualification: 1 << 1,
        guest_physical: 0xfee0_0000,
        ..RawExit::default()
    };
    let exit = VmExit::decode(&raw, &r.regs);
    let action = handle_exit(
        exit,
        &raw,
        &mut r.vmcs,
        &mut r.regs,
        &mut r.emu,
        &r.cfg,
        &mut r.host,
        &mut r.ports,
    )
    .unwrap();
    assert_eq!(
        action,
        ExitAction::Unmapped {
            gpa: 0xfee0_0000,
            write: true
        }
    );
}

#[test]
fn xsetbv_is_validated() {
    let mut r = Rig::new();
    r.regs.rcx = 0;
    r.regs.rax = 0b11;
    r.exit(55, 0);
    assert_eq!(r.host.xcr0, [0b11]);
    assert_eq!(r.emu.xcr0, 0b11);
    r.regs.rax = 0b100;
    r.exit(55, 0);
    assert!(r.injected().is_some());
}

#[test]
fn cpuid_follows_the_vms_cpu_model() {
    use crate::vm::cpu_model::CpuModel;
    let mut r = Rig::new();
    let nehalem = CpuModel::parse("nehalem")
        .ok()
        .and_then(|m| m.masks_on(&crate::vm::cpu_model::FeatureMasks::all()).ok())
        .expect("nehalem fits a host offering everything");
    r.emu.features = nehalem;
    r.regs.rax = 1;
    r.regs.rcx = 0;
    r.exit(10, 0);
    assert_eq!(r.regs.rcx & (1 << 28), 0, "no AVX for a nehalem VM");
    assert_ne!(r.regs.rcx & (1 << 20), 0, "SSE4.2");
}
