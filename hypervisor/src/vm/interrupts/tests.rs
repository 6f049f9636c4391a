use proptest::prelude::*;

use super::injector::*;
use super::injector_state::EventInjectorState;
use super::platform::PlatformInterrupts;
use crate::vm::ioapic::mmio;
use crate::vm::lapic::{Lapic, LapicConfig, TimerClock};
use crate::vm::pic::{MASTER_COMMAND, MASTER_DATA, SLAVE_COMMAND, SLAVE_DATA};
use crate::vm::pit::{CONTROL, COUNTER0, Pit};
use crate::vm::rtc::{CmosMemory, DATA_PORT, INDEX_PORT, Rtc};

const IF_ON: GuestInterruptibility = GuestInterruptibility {
    interrupts_enabled: true,
    blocking_by_sti: false,
    blocking_by_mov_ss: false,
    blocking_by_nmi: false,
};

/// A controller with a fixed list of pending vectors.
#[derive(Default)]
struct FakeController(alloc::vec::Vec<u8>);

impl InterruptController for FakeController {
    fn has_pending(&self) -> bool {
        !self.0.is_empty()
    }
    fn acknowledge(&mut self) -> Option<u8> {
        self.0.pop()
    }
}

fn lapic() -> Lapic {
    let mut a = Lapic::new(LapicConfig {
        apic_id: 0,
        bsp: true,
        clock: TimerClock::new(1_000_000_000, 100_000_000).unwrap(),
        max_phys_addr_bits: 39,
    });
    a.mmio_write(0xf0, 0x1ff, 0);
    a
}

#[test]
fn priority_reinject_then_exception_then_nmi_then_interrupt() {
    let mut inj = EventInjector::new();
    let mut ctl = FakeController(alloc::vec![0x40]);
    // An external interrupt 0x31 was being delivered when an EPT violation exited.
    inj.record_exit((1 << 31) | 0x31, 0, 0).unwrap();
    inj.queue_exception(13, 0x18).unwrap();
    inj.queue_nmi();
    let plan = inj.plan_entry(IF_ON, &mut ctl);
    assert_eq!(plan.inject.unwrap().vector, 0x31);
    assert!(plan.interrupt_window_exiting && plan.nmi_window_exiting);
    let plan = inj.plan_entry(IF_ON, &mut ctl);
    let gp = plan.inject.unwrap();
    assert_eq!((gp.vector, gp.error_code), (13, Some(0x18)));
    assert_eq!(gp.entry_interruption_info(), 0x8000_0b0d);
    let plan = inj.plan_entry(IF_ON, &mut ctl);
    assert_eq!(plan.inject.unwrap().kind, EventKind::Nmi);
    assert_eq!(plan.inject.unwrap().entry_interruption_info(), 0x8000_0202);
    assert!(!plan.nmi_window_exiting);
    let plan = inj.plan_entry(IF_ON, &mut ctl);
    assert_eq!(plan.inject.unwrap().entry_interruption_info(), 0x8000_0040);
    assert_eq!(
        plan,
        EntryPlan {
            inject: plan.inject,
            interrupt_window_exiting: false,
            nmi_window_exiting: false
        }
    );
}

#[test]
fn blocked_events_request_window_exits_and_are_not_acknowledged() {
    let mut inj = EventInjector::new();
    let mut ctl = FakeController(alloc::vec![0x40]);
    let cases = [
        GuestInterruptibility {
            interrupts_enabled: false,
            ..IF_ON
        },
        GuestInterruptibility {
            blocking_by_sti: true,
            ..IF_ON
        },
        GuestInterruptibility {
            blocking_by_mov_ss: true,
            ..IF_ON
        },
    ];
    for cpu in cases {
        let plan = inj.plan_entry(cpu, &mut ctl);
        assert_eq!(plan.inject, None);
        assert!(plan.interrupt_window_exiting);
        assert_eq!(ctl.0, [0x40], "not acknowledged");
    }
    inj.queue_nmi();
    let in_nmi = GuestInterruptibility {
        blocking_by_nmi: true,
        ..IF_ON
    };
    let plan = inj.plan_entry(in_nmi, &mut ctl);
    assert_eq!(
        plan.inject.unwrap().vector,
        0x40,
        "IF=1: the interrupt goes"
    );
    assert!(plan.nmi_window_exiting);
}

#[test]
fn double_fault_and_triple_fault_rules() {
    let mut inj = EventInjector::new();
    inj.queue_exception(13, 0).unwrap();
    inj.queue_exception(11, 0x20).unwrap();
    let mut ctl = FakeController::default();
    let df = inj.plan_entry(IF_ON, &mut ctl).inject.unwrap();
    assert_eq!(
        (df.vector, df.error_code),
        (8, Some(0)),
        "#GP then #NP: #DF"
    );
    // #PF then #GP: #DF; then another #GP: shutdown.
    inj.queue_exception(14, 2).unwrap();
    inj.queue_exception(13, 0).unwrap();
    assert_eq!(inj.queue_exception(13, 0), Err(TripleFault));
    // Benign then contributory: serial.
    let mut inj = EventInjector::new();
    inj.queue_exception(6, 0).unwrap();
    inj.queue_exception(13, 4).unwrap();
    let e = inj.plan_entry(IF_ON, &mut ctl).inject.unwrap();
    assert_eq!((e.vector, e.error_code), (13, Some(4)));
    // #PF in flight (IDT-vectoring) and the handler raises #PF again: #DF.
    let mut inj = EventInjector::new();
    inj.record_exit((1 << 31) | (1 << 11) | (3 << 8) | 14, 6, 0)
        .unwrap();
    inj.queue_exception(14, 6).unwrap();
    let e = inj.plan_entry(IF_ON, &mut ctl).inject.unwrap();
    assert_eq!(e.vector, 8);
    assert_eq!(
        inj.plan_entry(IF_ON, &mut ctl).inject,
        None,
        "nothing else left"
    );
}

#[test]
fn idt_vectoring_decode() {
    let mut inj = EventInjector::new();
    assert_eq!(
        inj.record_exit(0x31, 0, 0),
        Ok(()),
        "valid bit clear: nothing"
    );
    assert!(!inj.has_events());
    assert_eq!(
        inj.record_exit((1 << 31) | (7 << 8), 0, 0),
        Err(VectoringError::UndeliverableType(7))
    );
    assert!(matches!(
        inj.record_exit((1 << 31) | (1 << 20), 0, 0),
        Err(VectoringError::ReservedBits(_))
    ));
    // INT 0x80 (2 bytes) interrupted: re-injected with its instruction length.
    inj.record_exit((1 << 31) | (4 << 8) | 0x80, 0, 2).unwrap();
    let e = inj
        .plan_entry(IF_ON, &mut FakeController::default())
        .inject
        .unwrap();
    assert_eq!(
        (e.kind, e.vector, e.instruction_len),
        (EventKind::SoftwareInterrupt, 0x80, 2)
    );
}

#[test]
fn hlt_wakes_on_interrupt_only_with_if() {
    let inj = EventInjector::new();
    let ctl = FakeController(alloc::vec![0x40]);
    assert!(inj.wakes_from_halt(IF_ON, &ctl));
    let if_off = GuestInterruptibility {
        interrupts_enabled: false,
        ..IF_ON
    };
    assert!(!inj.wakes_from_halt(if_off, &ctl));
    let mut inj = EventInjector::new();
    inj.queue_nmi();
    assert!(inj.wakes_from_halt(if_off, &FakeController::default()));
}

#[test]
fn pit_irq0_through_ioapic_pin2_to_the_vcpu() {
    let mut p = PlatformInterrupts::new(lapic());
    // I/O APIC pin 2 (IRQ0 by the override) -> vector 0x30, edge, physical APIC 0.
    p.ioapic.mmio_write(mmio::IOREGSEL, 0x14, &mut |_| {});
    p.ioapic.mmio_write(mmio::IOWIN, 0x30, &mut |_| {});
    let mut pit = Pit::new();
    pit.write(CONTROL, 0x34, 0);
    pit.write(COUNTER0, 0x9c, 0);
    pit.write(COUNTER0, 0x2e, 0); // 11932: 100 Hz
    let deadline = pit.next_deadline().unwrap();
    for _ in 0..pit.advance(deadline) {
        p.pulse_isa_irq(0);
    }
    let if_off = GuestInterruptibility {
        interrupts_enabled: false,
        ..IF_ON
    };
    let plan = p.plan_entry(if_off);
    assert_eq!(plan.inject, None);
    assert!(plan.interrupt_window_exiting);
    let plan = p.plan_entry(IF_ON);
    assert_eq!(plan.inject.unwrap().vector, 0x30);
    assert!(!plan.interrupt_window_exiting);
    assert_eq!(p.lapic.isr().highest(), Some(0x30));
}

#[test]
fn rtc_irq8_through_the_pic_cascade_and_lint0_virtual_wire() {
    let mut p = PlatformInterrupts::new(lapic());
    p.lapic.mmio_write(0x350, 0x700, 0); // LINT0 ExtINT, unmasked
    for (port, value) in [
        (MASTER_COMMAND, 0x11),
        (MASTER_DATA, 0x30),
        (MASTER_DATA, 0x04),
        (MASTER_DATA, 0x01),
        (SLAVE_COMMAND, 0x11),
        (SLAVE_DATA, 0x38),
        (SLAVE_DATA, 0x02),
        (SLAVE_DATA, 0x01),
        (MASTER_DATA, 0x00),
        (SLAVE_DATA, 0x00),
    ] {
        p.pic.write(port, value);
    }
    let memory = CmosMemory {
        below_4g: 256 << 20,
        above_4g: 0,
    };
    let mut rtc = Rtc::new(0, 0, memory);
    rtc.write(INDEX_PORT, 0x0b, 0);
    rtc.write(DATA_PORT, 0x12, 0); // 24h, UIE
    rtc.advance(1_000_000_000);
    p.set_isa_irq(8, rtc.irq_asserted());
    let plan = p.plan_entry(IF_ON);
    assert_eq!(plan.inject.unwrap().vector, 0x38);
    assert!(p.lapic.irr().is_empty(), "ExtINT bypasses the IRR");
    // Masking LINT0 cuts the PIC off.
    p.lapic.mmio_write(0x350, 0x10700, 0);
    rtc.write(INDEX_PORT, 0x0c, 0);
    rtc.read(DATA_PORT, 0);
    p.set_isa_irq(8, rtc.irq_asserted());
    rtc.advance(2_000_000_000);
    p.set_isa_irq(8, rtc.irq_asserted());
    assert!(!p.wakes_from_halt(IF_ON));
}

#[test]
fn level_interrupt_eoi_round_trip_redelivers_while_asserted() {
    let mut p = PlatformInterrupts::new(lapic());
    p.ioapic
        .mmio_write(mmio::IOREGSEL, 0x10 + 2 * 9, &mut |_| {});
    p.ioapic.mmio_write(mmio::IOWIN, 0x8000 | 0x49, &mut |_| {});
    p.set_isa_irq(9, true);
    assert_eq!(p.plan_entry(IF_ON).inject.unwrap().vector, 0x49);
    let out = p.lapic.mmio_write(0xb0, 0, 0);
    assert_eq!(p.lapic_output(out), None);
    assert_eq!(
        p.plan_entry(IF_ON).inject.unwrap().vector,
        0x49,
        "still asserted"
    );
    p.set_isa_irq(9, false);
    let out = p.lapic.mmio_write(0xb0, 0, 0);
    p.lapic_output(out);
    assert_eq!(p.plan_entry(IF_ON).inject, None);
}

#[test]
fn nmi_via_lint1_and_ioapic() {
    let mut p = PlatformInterrupts::new(lapic());
    p.lapic.mmio_write(0x360, 0x400, 0); // LINT1 NMI
    p.signal_lint1();
    assert_eq!(p.plan_entry(IF_ON).inject.unwrap().kind, EventKind::Nmi);
    p.ioapic
        .mmio_write(mmio::IOREGSEL, 0x10 + 2 * 5, &mut |_| {});
    p.ioapic.mmio_write(mmio::IOWIN, 0x400, &mut |_| {});
    p.set_isa_irq(5, true);
    assert_eq!(p.plan_entry(IF_ON).inject.unwrap().kind, EventKind::Nmi);
}

#[test]
fn injector_restore_rejects_invalid_events() {
    let mut inj = EventInjector::new();
    inj.record_exit((1 << 31) | (4 << 8) | 0x80, 0, 2).unwrap();
    inj.queue_exception(14, 6).unwrap();
    inj.queue_nmi();
    let good = inj.save().encode();
    let restore = |b: &[u8]| EventInjectorState::decode(b).and_then(|s| EventInjector::restore(&s));
    assert_eq!(restore(&good).unwrap(), inj);
    // Event layout: present, type, vector, has error, u32 error, u32 length (12 bytes).
    let reinject = 7;
    let mut bad = good.clone();
    bad[reinject + 1] = 1;
    assert!(restore(&bad).is_err(), "reserved type 1");
    let mut bad = good.clone();
    bad[reinject + 8] = 0;
    assert!(restore(&bad).is_err(), "INT n without instruction length");
    let exception = reinject + 12;
    let mut bad = good.clone();
    bad[exception + 3] = 0;
    assert!(
        restore(&bad).is_err(),
        "error code present flag cleared with a value"
    );
    let mut bad = good.clone();
    bad[exception + 2] = 6;
    assert!(restore(&bad).is_err(), "#UD with an error code");
}

proptest! {
    #[test]
    fn injector_arbitrary_bytes_are_safe_and_canonical(
        bytes in proptest::collection::vec(any::<u8>(), 0..40)
    ) {
        if let Ok(inj) = EventInjectorState::decode(&bytes).and_then(|s| EventInjector::restore(&s)) {
            prop_assert_eq!(inj.save().encode(), bytes);
        }
    }

    #[test]
    fn injector_any_sequence_round_trips(
        ops in proptest::collection::vec((0u8..4, any::<u32>(), 0u32..20), 0..32)
    ) {
        let mut inj = EventInjector::new();
        for (kind, value, len) in ops {
            match kind {
                0 => { let _ = inj.record_exit(value & 0x8000_1fff, value >> 3, len); }
                1 => { let _ = inj.queue_exception(value as u8, value); }
                2 => inj.queue_nmi(),
                _ => {
                    let cpu = GuestInterruptibility::from_vmcs(u64::from(value), value >> 8);
                    inj.plan_entry(cpu, &mut FakeController(alloc::vec![value as u8]));
                }
            }
        }
        let s = EventInjectorState::decode(&inj.save().encode()).expect("own encoding decodes");
        prop_assert_eq!(EventInjector::restore(&s).expect("reachable state restores"), inj);
    }
}
