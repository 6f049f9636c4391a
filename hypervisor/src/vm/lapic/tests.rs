use proptest::prelude::*;

use super::state::LapicState;
use super::*;

/// 1 GHz guest TSC, 100 MHz APIC timer clock: one timer tick every 10 TSC ticks.
const TSC_HZ: u64 = 1_000_000_000;
const APIC_HZ: u64 = 100_000_000;

fn config() -> LapicConfig {
    LapicConfig {
        apic_id: 0,
        bsp: true,
        clock: TimerClock::new(TSC_HZ, APIC_HZ).unwrap(),
        max_phys_addr_bits: 39,
    }
}

/// An APIC as Linux leaves it after setup: software-enabled with spurious vector 0xff.
fn enabled() -> Lapic {
    let mut a = Lapic::new(config());
    a.mmio_write(0xf0, 0x1ff, 0);
    a
}

#[test]
fn power_on_state() {
    let mut a = Lapic::new(config());
    assert_eq!(a.mode(), ApicMode::XApic);
    assert_eq!(a.apic_base(), 0xfee0_0900);
    assert_eq!(a.mmio_read(0x30, 0), 0x0005_0014);
    assert_eq!(a.mmio_read(0xe0, 0), 0xffff_ffff);
    assert_eq!(a.mmio_read(0xf0, 0), 0xff);
    assert_eq!(a.mmio_read(0x350, 0), 1 << 16, "LVT masked at reset");
    assert!(
        !a.accept(0x40, TriggerMode::Edge),
        "software-disabled drops fixed"
    );
}

#[test]
fn tpr_masks_lower_priority_vectors() {
    let mut a = enabled();
    assert!(a.accept(0x51, TriggerMode::Edge));
    a.mmio_write(0x80, 0x50, 0);
    assert_eq!(
        a.highest_deliverable(),
        None,
        "class 5 not above TPR class 5"
    );
    a.mmio_write(0x80, 0x4f, 0);
    assert_eq!(a.highest_deliverable(), Some(0x51));
    a.set_cr8(6);
    assert_eq!(a.tpr(), 0x60);
    assert_eq!(a.highest_deliverable(), None);
    a.accept(0x71, TriggerMode::Edge);
    assert_eq!(a.highest_deliverable(), Some(0x71));
}

#[test]
fn isr_raises_ppr_and_eoi_clears_highest() {
    let mut a = enabled();
    a.accept(0x40, TriggerMode::Edge);
    assert_eq!(a.acknowledge(), Some(0x40));
    assert_eq!(a.mmio_read(0xa0, 0), 0x40, "PPR = ISRV class");
    a.accept(0x45, TriggerMode::Edge);
    assert_eq!(a.highest_deliverable(), None, "same class as in service");
    a.accept(0x61, TriggerMode::Edge);
    assert_eq!(a.acknowledge(), Some(0x61));
    assert_eq!(
        a.mmio_read(0x100 + 0x30, 0),
        1 << 1,
        "ISR word 3 holds 0x61"
    );
    assert_eq!(a.mmio_write(0xb0, 0, 0), None, "edge EOI is not broadcast");
    assert_eq!(a.isr().highest(), Some(0x40));
    a.mmio_write(0xb0, 0, 0);
    assert_eq!(a.acknowledge(), Some(0x45));
}

#[test]
fn level_triggered_eoi_is_broadcast() {
    let mut a = enabled();
    a.accept(0x30, TriggerMode::Level);
    assert_eq!(a.mmio_read(0x180 + 0x10, 0), 1 << 16, "TMR word 1 bit 16");
    assert_eq!(a.acknowledge(), Some(0x30));
    assert_eq!(
        a.mmio_write(0xb0, 0, 0),
        Some(LapicOutput::EoiBroadcast { vector: 0x30 })
    );
}

#[test]
fn illegal_vector_sets_esr_and_raises_error_lvt() {
    let mut a = enabled();
    a.mmio_write(0x370, 0xfe, 0);
    assert!(!a.accept(5, TriggerMode::Edge));
    assert_eq!(a.mmio_read(0x280, 0), 0, "ESR latches on write");
    a.mmio_write(0x280, 0, 0);
    assert_eq!(a.mmio_read(0x280, 0), 1 << 6);
    assert_eq!(a.acknowledge(), Some(0xfe));
    a.mmio_read(0x2f0, 0);
    a.mmio_write(0x280, 0, 0);
    assert_eq!(
        a.mmio_read(0x280, 0),
        1 << 7,
        "unimplemented register access"
    );
}

#[test]
fn software_disable_masks_lvt() {
    let mut a = enabled();
    a.mmio_write(0x350, 0x700, 0);
    assert!(
        a.accepts_pic_interrupts(),
        "virtual wire: LINT0 ExtINT unmasked"
    );
    a.mmio_write(0xf0, 0xff, 0);
    assert!(!a.accepts_pic_interrupts());
    a.mmio_write(0x350, 0x700, 0);
    assert_eq!(
        a.lvt(LvtEntry::Lint0),
        0x10700,
        "mask sticks while disabled"
    );
}

#[test]
fn firmware_virtual_wire_passes_the_pic_and_nmi() {
    let mut a = Lapic::new(config());
    assert!(!a.accepts_pic_interrupts(), "reset: LINT0 masked");
    a.enable_virtual_wire();
    assert!(a.accepts_pic_interrupts());
    assert_eq!(a.signal_lint(LvtEntry::Lint1), Some(DeliveryMode::Nmi));
    assert_eq!(a.mmio_read(0xf0, 0), 0x1ff);
    let restored = Lapic::restore(config(), &a.save()).expect("firmware state is valid");
    assert_eq!(restored, a);
}

#[test]
fn periodic_timer_fires_at_initial_count_times_divide_over_bus_freq() {
    let mut a = enabled();
    a.mmio_write(0x3e0, 0x1, 0); // divide by 4
    a.mmio_write(0x320, (1 << 17) | 0xec, 0);
    a.mmio_write(0x380, 1000, 0);
    // 1000 ticks * 4 / 100 MHz = 40 us = 40_000 TSC ticks at 1 GHz.
    assert_eq!(a.next_deadline(), Some(40_000));
    assert_eq!(a.mmio_read(0x390, 20_000), 500);
    let mut fired = 0;
    let mut now = 0;
    while now <= 400_000 {
        a.advance(now);
        if a.acknowledge() == Some(0xec) {
            fired += 1;
            a.mmio_write(0xb0, 0, now);
        }
        now += 1_000;
    }
    assert_eq!(fired, 10, "ten periods in 400 us");
    assert_eq!(a.next_deadline(), Some(440_000));
}

#[test]
fn one_shot_timer_fires_once_and_count_stops_at_zero() {
    let mut a = enabled();
    a.mmio_write(0x3e0, 0xb, 0); // divide by 1
    a.mmio_write(0x320, 0x40, 0);
    a.mmio_write(0x380, 100, 5);
    assert_eq!(a.next_deadline(), Some(1_005));
    a.advance(1_004);
    assert_eq!(a.highest_deliverable(), None);
    a.advance(1_005);
    assert_eq!(a.acknowledge(), Some(0x40));
    assert_eq!(a.next_deadline(), None);
    assert_eq!(a.mmio_read(0x390, 2_000), 0);
    assert_eq!(a.mmio_read(0x380, 2_000), 100);
}

#[test]
fn masked_timer_counts_but_does_not_interrupt() {
    let mut a = enabled();
    a.mmio_write(0x320, (1 << 16) | 0x40, 0);
    a.mmio_write(0x380, 10, 0);
    a.advance(1_000_000);
    assert!(a.irr().is_empty());
    assert_eq!(a.next_deadline(), None);
}

#[test]
fn tsc_deadline_fires_once() {
    let mut a = enabled();
    a.set_tsc_deadline(500);
    assert_eq!(a.tsc_deadline(), 0, "ignored outside TSC-deadline mode");
    a.mmio_write(0x320, (2 << 17) | 0x50, 0);
    a.mmio_write(0x380, 1234, 0);
    assert_eq!(a.mmio_read(0x380, 0), 0, "initial count ignored");
    a.set_tsc_deadline(500);
    assert_eq!(a.next_deadline(), Some(500));
    a.advance(499);
    assert!(a.irr().is_empty());
    a.advance(10_000);
    assert_eq!(a.acknowledge(), Some(0x50));
    assert_eq!(a.tsc_deadline(), 0, "disarmed after firing");
    a.advance(20_000);
    assert!(a.irr().is_empty());
    a.set_tsc_deadline(30_000);
    a.mmio_write(0x320, 0x50, 0);
    assert_eq!(a.next_deadline(), None, "mode change disarms");
}

#[test]
fn self_ipi_and_ipi_to_others() {
    let mut a = enabled();
    assert_eq!(a.mmio_write(0x300, (1 << 18) | 0x66, 0), None);
    assert_eq!(a.acknowledge(), Some(0x66));
    a.mmio_write(0x310, 3 << 24, 0);
    let out = a.mmio_write(0x300, (5 << 8) | (1 << 14), 0);
    let Some(LapicOutput::Ipi(ipi)) = out else {
        panic!("INIT goes to the router: {out:?}");
    };
    assert_eq!(ipi.message.destination, 3);
    assert_eq!(ipi.message.delivery_mode, DeliveryMode::Init);
    assert_eq!(a.mmio_read(0x300, 0) & (1 << 12), 0, "delivery status idle");
}

#[test]
fn x2apic_mode_rules() {
    let mut a = Lapic::new(LapicConfig {
        apic_id: 0x23,
        ..config()
    });
    assert_eq!(a.msr_read(0x802, 0), Err(X2ApicFault::NotX2ApicMode));
    assert_eq!(
        a.set_apic_base(0xfee0_0000 | (1 << 10)),
        Err(ApicBaseError::InvalidState)
    );
    assert_eq!(
        a.set_apic_base(0xfee0_0000 | (1 << 11) | 1),
        Err(ApicBaseError::ReservedBits(1))
    );
    a.set_apic_base(0xfee0_0000 | (3 << 10)).unwrap();
    assert_eq!(a.mode(), ApicMode::X2Apic);
    assert_eq!(a.apic_base() & (1 << 8), 1 << 8, "BSP kept");
    assert_eq!(a.mmio_read(0x20, 0), u32::MAX, "MMIO page gone");
    assert_eq!(a.msr_read(0x802, 0), Ok(0x23));
    assert_eq!(a.msr_read(0x80d, 0), Ok((2 << 16) | (1 << 3)));
    assert_eq!(a.msr_read(0x80e, 0), Err(X2ApicFault::Unimplemented(0x80e)));
    assert_eq!(a.msr_read(0x80b, 0), Err(X2ApicFault::WriteOnly(0x80b)));
    assert_eq!(a.msr_write(0x80d, 1, 0), Err(X2ApicFault::ReadOnly(0x80d)));
    assert!(matches!(
        a.msr_write(0x80b, 1, 0),
        Err(X2ApicFault::ReservedBits { .. })
    ));
    a.msr_write(0x80f, 0x1ff, 0).unwrap();
    a.msr_write(0x83f, 0x77, 0).unwrap();
    assert_eq!(a.acknowledge(), Some(0x77));
    a.msr_write(0x80b, 0, 0).unwrap();
    let out = a.msr_write(0x830, (7 << 32) | 0x42, 0).unwrap();
    assert!(matches!(out, Some(LapicOutput::Ipi(i)) if i.message.destination == 7));
    assert_eq!(a.msr_read(0x830, 0), Ok((7 << 32) | 0x42));
    assert_eq!(
        a.set_apic_base(0xfee0_0000 | (1 << 11)),
        Err(ApicBaseError::InvalidTransition {
            from: ApicMode::X2Apic,
            to: ApicMode::XApic
        })
    );
    a.set_apic_base(0xfee0_0000).unwrap();
    assert_eq!(a.mode(), ApicMode::Disabled);
    assert!(a.accepts_pic_interrupts(), "disabled APIC: INTR pin direct");
    assert!(matches!(
        a.set_apic_base(0xfee0_0000 | (3 << 10)),
        Err(ApicBaseError::InvalidTransition { .. })
    ));
    a.set_apic_base(0xfee0_0000 | (1 << 11)).unwrap();
    assert_eq!(a.mmio_read(0xf0, 0), 0xff, "re-enabled from reset state");
}

#[test]
fn restore_rejects_invalid_states() {
    let mut a = enabled();
    a.mmio_write(0x320, (1 << 17) | 0x40, 0);
    a.mmio_write(0x380, 10, 0);
    let good = a.save().encode();
    let restore =
        |bytes: &[u8]| LapicState::decode(bytes).and_then(|s| Lapic::restore(config(), &s));
    assert_eq!(restore(&good).unwrap(), a);
    // IA32_APIC_BASE is the first field after the 6-byte header.
    let mut bad = good.clone();
    bad[6] = 1;
    assert!(matches!(
        restore(&bad),
        Err(StateError::InvalidField {
            field: "apic_base",
            ..
        })
    ));
    // Software-disable the APIC in the saved SVR while LVT timer stays unmasked.
    let mut bad = good.clone();
    let svr_at = 6 + 8 + 4 + 1 + 4 + 4;
    bad[svr_at + 1] = 0;
    assert!(matches!(
        restore(&bad),
        Err(StateError::InvalidField { .. })
    ));
    assert!(matches!(
        restore(&good[..40]),
        Err(StateError::Truncated { .. })
    ));
}

use crate::vm::device_state_codec::StateError;

proptest! {
    /// Arbitrary bytes never panic decode or restore, and what they accept re-encodes to
    /// the same bytes.
    #[test]
    fn arbitrary_bytes_are_safe_and_canonical(
        bytes in proptest::collection::vec(any::<u8>(), 0..300)
    ) {
        if let Ok(a) = LapicState::decode(&bytes).and_then(|s| Lapic::restore(config(), &s)) {
            prop_assert_eq!(a.save().encode(), bytes);
        }
    }

    /// Any sequence of register writes, MSR writes, interrupts and time leaves a state that
    /// encodes, decodes and restores to an identical APIC.
    #[test]
    fn any_sequence_round_trips(
        ops in proptest::collection::vec((0u8..6, 0u32..0x40, any::<u32>()), 0..64)
    ) {
        let mut a = enabled();
        let mut now = 0u64;
        for (kind, reg, value) in ops {
            now += u64::from(value % 5000);
            match kind {
                0 => { a.mmio_write(reg << 4, value, now); }
                1 => { a.mmio_read(reg << 4, now); }
                2 => { a.accept(value as u8, TriggerMode::from_bit15(value.into())); }
                3 => { a.acknowledge(); a.advance(now); }
                4 => { let _ = a.msr_write(0x800 + reg, value.into(), now); a.set_tsc_deadline(value.into()); }
                _ => { let _ = a.set_apic_base(0xfee0_0000 | (u64::from(value & 3) << 10)); }
            }
        }
        let state = LapicState::decode(&a.save().encode()).expect("own encoding decodes");
        let r = Lapic::restore(config(), &state).expect("reachable state restores");
        prop_assert_eq!(r, a);
    }
}
