use super::*;
use crate::vmx::regs::Gpr;

fn raw(reason: u32, qualification: u64) -> RawExit {
    RawExit {
        reason,
        qualification,
        ..RawExit::default()
    }
}

fn decode(r: RawExit) -> VmExit {
    VmExit::decode(&r, &GuestRegisters::default())
}

#[test]
fn cr_access_qualification() {
    // MOV CR3, R9: CR 3, type 0, GPR 9 (SDM Table 28-3).
    assert_eq!(
        decode(raw(28, 3 | (9 << 8))),
        VmExit::CrAccess(CrAccess {
            cr: 3,
            kind: CrAccessKind::MovToCr(Gpr::from_number(9))
        })
    );
    // MOV RAX, CR0 would be type 1 with GPR 0.
    assert_eq!(
        CrAccess::decode(1 << 4).kind,
        CrAccessKind::MovFromCr(Gpr::from_number(0))
    );
    assert_eq!(CrAccess::decode(2 << 4).kind, CrAccessKind::Clts);
    assert_eq!(
        CrAccess::decode((3 << 4) | (1 << 6) | (0x8001 << 16)).kind,
        CrAccessKind::Lmsw {
            source: 0x8001,
            memory_operand: true
        }
    );
}

#[test]
fn io_qualification() {
    // OUT DX, AL to 0x3f8: size 0 (1 byte), direction 0 (out), port in DX.
    assert_eq!(
        decode(raw(30, 0x3f8 << 16)),
        VmExit::Io(IoAccess {
            port: 0x3f8,
            size: 1,
            direction: IoDirection::Out,
            string: false,
            rep: false,
            immediate_port: false
        })
    );
    // REP INSW from port 0x1f0: size 1 (2 bytes), in, string, rep.
    let io = IoAccess::decode((0x1f0 << 16) | 1 | (1 << 3) | (1 << 4) | (1 << 5)).unwrap();
    assert_eq!(
        (io.port, io.size, io.direction),
        (0x1f0, 2, IoDirection::In)
    );
    assert!(io.string && io.rep && !io.immediate_port);
    assert_eq!(io.mask(), 0xffff);
    // IN EAX, 0x60 (immediate): size 3 = 4 bytes.
    let io = IoAccess::decode((0x60 << 16) | 3 | (1 << 3) | (1 << 6)).unwrap();
    assert_eq!((io.size, io.immediate_port), (4, true));
    // Size encoding 2 is undefined: reported, not guessed.
    assert_eq!(
        decode(raw(30, 2)),
        VmExit::Unhandled {
            reason: 30,
            qualification: 2
        }
    );
}

#[test]
fn ept_violation_qualification() {
    let r = RawExit {
        reason: 48,
        // Write (bit 1), page readable+executable (3, 5), linear valid (7), translation (8).
        qualification: (1 << 1) | (1 << 3) | (1 << 5) | (1 << 7) | (1 << 8),
        guest_physical: 0x1234_5678,
        guest_linear: 0xffff_8000_0000_1000,
        ..RawExit::default()
    };
    let VmExit::EptViolation(v) = decode(r) else {
        panic!("not an EPT violation");
    };
    assert_eq!(v.guest_physical, 0x1234_5678);
    assert_eq!(v.guest_linear, Some(0xffff_8000_0000_1000));
    assert!(v.write && !v.read && !v.fetch);
    assert!(v.is_write_to_read_only() && !v.is_unmapped() && v.final_translation);
    // Read of an unmapped address, no linear address.
    let v = EptViolation::decode(1, 0xfee0_0000, 0xdead);
    assert!(v.is_unmapped() && v.read && v.guest_linear.is_none());
}

#[test]
fn register_operands() {
    let regs = GuestRegisters {
        rax: 0xffff_ffff_0000_0007,
        rcx: 0x1_c000_0080,
        rdx: 0x1234,
        ..GuestRegisters::default()
    };
    assert_eq!(
        VmExit::decode(&raw(10, 0), &regs),
        VmExit::Cpuid {
            leaf: 7,
            subleaf: 0xc000_0080
        }
    );
    assert_eq!(
        VmExit::decode(&raw(31, 0), &regs),
        VmExit::Rdmsr { msr: 0xc000_0080 }
    );
    assert_eq!(
        VmExit::decode(&raw(32, 0), &regs),
        VmExit::Wrmsr {
            msr: 0xc000_0080,
            value: 0x1234_0000_0007
        }
    );
    assert_eq!(
        VmExit::decode(&raw(55, 0), &regs),
        VmExit::Xsetbv {
            xcr: 0xc000_0080,
            value: 0x1234_0000_0007
        }
    );
}

#[test]
fn simple_reasons_and_entry_failures() {
    assert_eq!(decode(raw(2, 0)), VmExit::TripleFault);
    assert_eq!(decode(raw(12, 0)), VmExit::Hlt);
    assert_eq!(decode(raw(18, 0)), VmExit::Vmcall);
    assert_eq!(decode(raw(52, 0)), VmExit::PreemptionTimer);
    assert_eq!(decode(raw(20, 0)), VmExit::VmxInstruction { reason: 20 });
    assert_eq!(decode(raw(4, 0x9a)), VmExit::Sipi { vector: 0x9a });
    assert_eq!(
        decode(raw(49, 0)),
        VmExit::EptMisconfig { guest_physical: 0 }
    );
    assert_eq!(
        decode(raw(0x8000_0021, 0)),
        VmExit::EntryFailure(EntryFailure::InvalidGuestState { qualification: 0 })
    );
    assert_eq!(
        decode(raw(0x8000_0022, 3)),
        VmExit::EntryFailure(EntryFailure::MsrLoading { index: 3 })
    );
    assert_eq!(
        decode(raw(1000, 5)),
        VmExit::Unhandled {
            reason: 1000,
            qualification: 5
        }
    );
}

#[test]
fn interruption_information() {
    // #GP (13), hardware exception (3), error code valid.
    let r = RawExit {
        reason: 0,
        interruption_info: (1 << 31) | (1 << 11) | (3 << 8) | 13,
        interruption_error: 0x18,
        ..RawExit::default()
    };
    assert_eq!(
        decode(r),
        VmExit::ExceptionOrNmi(Interruption {
            vector: 13,
            kind: InterruptionType::HardwareException,
            error_code: Some(0x18),
            nmi_unblocking: false
        })
    );
    // External interrupt with acknowledge-on-exit: vector 0x20.
    let r = RawExit {
        reason: 1,
        interruption_info: (1 << 31) | 0x20,
        ..RawExit::default()
    };
    assert_eq!(decode(r), VmExit::ExternalInterrupt { vector: Some(0x20) });
    assert_eq!(
        decode(raw(1, 0)),
        VmExit::ExternalInterrupt { vector: None }
    );
    // Exception exit without a valid info field is not invented.
    assert!(matches!(
        decode(raw(0, 0)),
        VmExit::Unhandled { reason: 0, .. }
    ));
}

#[test]
fn reason_names_cover_the_counted_range() {
    assert_eq!(reason::name(48), "ept-violation");
    assert_eq!(reason::name(22), "vmx-instruction");
    assert_eq!(reason::name(65), "other");
}

proptest::proptest! {
    /// Any combination of exit fields and registers decodes without panicking, and an
    /// entry failure is always reported as one.
    #[test]
    fn decode_never_panics(
        reason in proptest::prelude::any::<u32>(),
        qualification in proptest::prelude::any::<u64>(),
        info in proptest::prelude::any::<u32>(),
        rax in proptest::prelude::any::<u64>(),
        rcx in proptest::prelude::any::<u64>(),
    ) {
        let r = RawExit { reason, qualification, interruption_info: info, ..RawExit::default() };
        let regs = GuestRegisters { rax, rcx, ..GuestRegisters::default() };
        let exit = VmExit::decode(&r, &regs);
        if reason & (1 << 31) != 0 {
            proptest::prop_assert!(matches!(exit, VmExit::EntryFailure(_)));
        }
    }
}
