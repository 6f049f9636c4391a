use super::bus::Recorder;
use crate::vm::mmio::{MmioBus, MmioError, MmioRegion, emulate_mmio_access};
use crate::vm::virtio::guest_memory::{FakeGuestMemory, GuestMemory};
use crate::vmx::regs::GuestRegisters;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fake::FakeVmcs;
use crate::vmx::vmcs::fields::{exit_info, guest};

const DEVICE: u64 = 0xfec0_0000;
/// Where the test code sits: linear 0x40_1000 + x maps to guest-physical 0x9000 + x.
const CODE_LINEAR: u64 = 0x40_1000;
const CODE_GPA: u64 = 0x9000;

/// A 64-bit guest with 4-level paging; `code` at RIP.
fn long_mode_guest(code: &[u8]) -> (FakeVmcs, FakeGuestMemory) {
    let mut mem = FakeGuestMemory::new(1 << 20);
    let entries: [(u64, u64); 4] = [
        (0x1000, 0x2000 | 3),
        (0x2000, 0x3000 | 3),
        (0x3000 + 2 * 8, 0x4000 | 3),
        (0x4000 + 8, CODE_GPA | 3),
    ];
    for (gpa, v) in entries {
        mem.write(gpa, &v.to_le_bytes()).unwrap();
    }
    mem.write(CODE_GPA + 0x10, code).unwrap();
    let mut vmcs = FakeVmcs::default();
    vmcs.write_natural(guest::CR0, 0x8000_0031).unwrap();
    vmcs.write_natural(guest::CR4, 0x20).unwrap();
    vmcs.write64(guest::IA32_EFER, 0x500).unwrap();
    vmcs.write_natural(guest::CR3, 0x1000).unwrap();
    vmcs.write32(guest::CS_ACCESS_RIGHTS, 0xa09b).unwrap();
    vmcs.write_natural(guest::RIP, CODE_LINEAR + 0x10).unwrap();
    (vmcs, mem)
}

fn run(
    vmcs: &mut FakeVmcs,
    regs: &mut GuestRegisters,
    mem: &FakeGuestMemory,
    device: &mut Recorder,
    gpa: u64,
) -> Result<crate::vm::mmio::MmioAccess, MmioError> {
    let mut bus = MmioBus::new();
    bus.add(
        MmioRegion {
            base: DEVICE,
            len: 0x1000,
        },
        device,
    )
    .unwrap();
    emulate_mmio_access(vmcs, regs, mem, &mut bus, gpa).unwrap()
}

fn rip(vmcs: &FakeVmcs) -> u64 {
    vmcs.get(guest::RIP.0).unwrap()
}

#[test]
fn load_writes_the_register_and_advances_rip() {
    // mov eax, [rdi + 0x10]: 32-bit load zero-extends into RAX.
    let (mut vmcs, mem) = long_mode_guest(&[0x8b, 0x47, 0x10]);
    vmcs.write32(guest::INTERRUPTIBILITY_STATE, 1).unwrap();
    let mut regs = GuestRegisters {
        rax: 0xdead_beef_0000_0000,
        ..GuestRegisters::default()
    };
    let mut dev = Recorder::default();
    let access = run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0x20).unwrap();
    assert!(access.claimed);
    assert_eq!(regs.rax, 0x20);
    assert_eq!(rip(&vmcs), CODE_LINEAR + 0x13);
    // STI blocking ends with the instruction.
    assert_eq!(vmcs.get(guest::INTERRUPTIBILITY_STATE.0), Some(0));
}

#[test]
fn byte_and_word_loads_keep_the_other_bits() {
    // mov al, [rdi]
    let (mut vmcs, mem) = long_mode_guest(&[0x8a, 0x07]);
    let mut regs = GuestRegisters {
        rax: 0x1111_2222_3333_4444,
        ..GuestRegisters::default()
    };
    let mut dev = Recorder::default();
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0x55).unwrap();
    assert_eq!(regs.rax, 0x1111_2222_3333_4455);
    // mov bh, [rax]
    let (mut vmcs, mem) = long_mode_guest(&[0x8a, 0x38]);
    let mut regs = GuestRegisters {
        rbx: 0xffff,
        ..GuestRegisters::default()
    };
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0x12).unwrap();
    assert_eq!(regs.rbx, 0x12ff);
}

#[test]
fn movsx_and_movzx_widen() {
    // movsx rcx, word [rdi]: the recorder's value 0x0200_0000_0000_0802 cut to a word.
    let (mut vmcs, mem) = long_mode_guest(&[0x48, 0x0f, 0xbf, 0x0f]);
    let mut regs = GuestRegisters::default();
    let mut dev = Recorder::default();
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0x802).unwrap();
    assert_eq!(regs.rcx, 0x802);
    let (mut vmcs, mem) = long_mode_guest(&[0x48, 0x0f, 0xbe, 0x0f]);
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0x80).unwrap();
    assert_eq!(regs.rcx, 0xffff_ffff_ffff_ff80);
    let (mut vmcs, mem) = long_mode_guest(&[0x0f, 0xb6, 0x0f]);
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0x80).unwrap();
    assert_eq!(regs.rcx, 0x80);
}

#[test]
fn stores_of_registers_rsp_and_immediates_reach_the_device() {
    let mut dev = Recorder::default();
    // mov [rdi], r9d
    let (mut vmcs, mem) = long_mode_guest(&[0x44, 0x89, 0x0f]);
    let mut regs = GuestRegisters {
        r9: 0xaaaa_bbbb_cccc_dddd,
        ..GuestRegisters::default()
    };
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0xb0).unwrap();
    assert_eq!(rip(&vmcs), CODE_LINEAR + 0x13);
    // mov [rdi], rsp: RSP comes from the VMCS.
    let (mut vmcs, mem) = long_mode_guest(&[0x48, 0x89, 0x27]);
    vmcs.write_natural(guest::RSP, 0x7000_1234).unwrap();
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0x8).unwrap();
    // mov dword [rip + 0x100], 0x1234_5678
    let (mut vmcs, mem) = long_mode_guest(&[0xc7, 0x05, 0, 1, 0, 0, 0x78, 0x56, 0x34, 0x12]);
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0x300).unwrap();
    assert_eq!(rip(&vmcs), CODE_LINEAR + 0x10 + 10);
    assert_eq!(
        dev.writes,
        [
            (0xb0, 4, 0xcccc_dddd),
            (0x8, 8, 0x7000_1234),
            (0x300, 4, 0x1234_5678)
        ]
    );
}

#[test]
fn load_into_rsp_goes_to_the_vmcs() {
    // mov rsp, [rdi]
    let (mut vmcs, mem) = long_mode_guest(&[0x48, 0x8b, 0x27]);
    let mut regs = GuestRegisters::default();
    let mut dev = Recorder::default();
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0x40).unwrap();
    assert_eq!(vmcs.get(guest::RSP.0), Some((8 << 56) | 0x40));
}

#[test]
fn unclaimed_read_is_all_ones_and_write_is_dropped() {
    // A region ends at 0x1000: a 4-byte read at 0xffe straddles it.
    let (mut vmcs, mem) = long_mode_guest(&[0x8b, 0x07]);
    let mut regs = GuestRegisters::default();
    let mut dev = Recorder::default();
    let access = run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 0xffe).unwrap();
    assert!(!access.claimed);
    assert_eq!(regs.rax, 0xffff_ffff);
    assert_eq!(rip(&vmcs), CODE_LINEAR + 0x12);
}

#[test]
fn undecodable_instruction_is_a_guest_error_and_rip_stays() {
    // lock add [rdi], eax
    let (mut vmcs, mem) = long_mode_guest(&[0xf0, 0x01, 0x07]);
    let mut regs = GuestRegisters::default();
    let mut dev = Recorder::default();
    let err = run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE).unwrap_err();
    assert!(matches!(err, MmioError::Decode { rip: r, .. } if r == CODE_LINEAR + 0x10));
    assert!(
        err.to_string()
            .starts_with("MMIO access by an invalid instruction form: bytes f0 01 07")
    );
    assert_eq!(rip(&vmcs), CODE_LINEAR + 0x10);
    assert!(dev.writes.is_empty());
}

#[test]
fn unmapped_rip_is_a_fetch_error() {
    let (mut vmcs, mem) = long_mode_guest(&[0x8b, 0x07]);
    vmcs.write_natural(guest::RIP, 0x50_0000).unwrap();
    let mut regs = GuestRegisters::default();
    let mut dev = Recorder::default();
    let err = run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE).unwrap_err();
    assert!(
        matches!(err, MmioError::Fetch { rip: 0x50_0000, .. }),
        "{err}"
    );
}

#[test]
fn real_mode_fetch_uses_the_cs_base() {
    let mut mem = FakeGuestMemory::new(1 << 20);
    // mov [bx], ax at f000:0100 (16-bit: 89 07)
    mem.write(0xf_0100, &[0x89, 0x07]).unwrap();
    let mut vmcs = FakeVmcs::default();
    vmcs.write_natural(guest::CR0, 0x10).unwrap();
    vmcs.write32(guest::CS_ACCESS_RIGHTS, 0x93).unwrap();
    vmcs.write_natural(guest::CS_BASE, 0xf_0000).unwrap();
    vmcs.write_natural(guest::RIP, 0x100).unwrap();
    let mut regs = GuestRegisters {
        rax: 0x1234_5678,
        ..GuestRegisters::default()
    };
    let mut dev = Recorder::default();
    run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE + 4).unwrap();
    assert_eq!(dev.writes, [(4, 2, 0x5678)]);
    assert_eq!(rip(&vmcs), 0x102);
}

#[test]
fn an_access_during_event_delivery_is_refused() {
    // mov eax, [rdi] at RIP, but the exit came while delivering vector 0x20.
    let (mut vmcs, mem) = long_mode_guest(&[0x8b, 0x07]);
    vmcs.fields
        .insert(exit_info::IDT_VECTORING_INFO.0, 0x8000_0020);
    let mut regs = GuestRegisters::default();
    let mut dev = Recorder::default();
    let err = run(&mut vmcs, &mut regs, &mem, &mut dev, DEVICE).unwrap_err();
    assert_eq!(
        err,
        MmioError::EventDelivery {
            vectoring: 0x8000_0020
        }
    );
    assert_eq!(rip(&vmcs), CODE_LINEAR + 0x10);
    assert_eq!(regs.rax, 0);
}
