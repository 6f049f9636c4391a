use core::cell::RefCell;

use super::*;
use crate::vm::interrupts::injector::GuestInterruptibility;
use crate::vm::mmio::{MmioBus, MmioHandler, MmioRegion};
use crate::vm::msr::MsrOutcome;

/// 1 GHz TSC: one tick per nanosecond.
const TSC_KHZ: u32 = 1_000_000;
const MS: u64 = 1_000_000;

fn board() -> Board {
    Board::new(TSC_KHZ, 64 << 20, 0, 0)
}

fn open() -> GuestInterruptibility {
    GuestInterruptibility {
        interrupts_enabled: true,
        ..GuestInterruptibility::default()
    }
}

fn out(b: &mut Board, port: u16, value: u8, now: u64) {
    assert!(b.port_write(port, 1, value.into(), now));
}

/// The PICs initialised as Linux does: master at vector 0x20, slave at 0x28, all masked
/// but `master_mask`.
fn init_pics(b: &mut Board, master_mask: u8, slave_mask: u8) {
    for (cmd, data, base, cascade, mask) in [
        (0x20, 0x21, 0x20, 4, master_mask),
        (0xa0, 0xa1, 0x28, 2, slave_mask),
    ] {
        out(b, cmd, 0x11, 0);
        out(b, data, base, 0);
        out(b, data, cascade, 0);
        out(b, data, 0x01, 0);
        out(b, data, mask, 0);
    }
}

/// The lines with COM1 at `level` and no disk interrupt.
fn com1(level: bool) -> DeviceLines {
    DeviceLines {
        com1: level,
        disk: false,
    }
}

fn injected_vector(b: &mut Board) -> Option<u8> {
    b.plan_entry(open()).inject.map(|e| e.vector)
}

#[test]
fn pit_rate_generator_reaches_the_cpu_through_the_8259() {
    let mut b = board();
    init_pics(&mut b, 0xfe, 0xff);
    // Counter 0, lo/hi, mode 2, 1193 counts (~1 ms).
    out(&mut b, 0x43, 0x34, 0);
    out(&mut b, 0x40, (1193u16 & 0xff) as u8, 0);
    out(&mut b, 0x40, (1193u16 >> 8) as u8, 0);
    let deadline = b.next_deadline().unwrap();
    assert!((MS - 10_000..MS + 10_000).contains(&deadline), "{deadline}");
    b.sync(deadline - 1, com1(false));
    assert_eq!(injected_vector(&mut b), None);
    b.sync(deadline, com1(false));
    assert_eq!(b.irq0_pulses, 1);
    // Interrupts disabled: nothing is injected, the window is requested.
    let closed = b.plan_entry(GuestInterruptibility::default());
    assert_eq!(closed.inject, None);
    assert!(closed.interrupt_window_exiting);
    assert_eq!(injected_vector(&mut b), Some(0x20));
    // Non-specific EOI; the next tick comes a period later.
    out(&mut b, 0x20, 0x20, deadline);
    b.sync(deadline + MS, com1(false));
    assert_eq!(injected_vector(&mut b), Some(0x20));
    assert_eq!(b.irq0_pulses, 2);
}

#[test]
fn masked_irq0_is_not_delivered() {
    let mut b = board();
    init_pics(&mut b, 0xff, 0xff);
    out(&mut b, 0x43, 0x34, 0);
    out(&mut b, 0x40, 100, 0);
    out(&mut b, 0x40, 0, 0);
    b.sync(10 * MS, com1(false));
    assert_eq!(injected_vector(&mut b), None);
}

#[test]
fn lapic_timer_periodic_through_the_xapic_page() {
    let mut b = board();
    let base = b.apic_base();
    assert_eq!(base, 0xfee0_0000);
    let write = |b: &mut Board, offset: u64, value: u64, now: u64| {
        let cell = RefCell::new(b);
        let mut w = ApicWindow { board: &cell, now };
        let mut bus = MmioBus::new();
        bus.add(MmioRegion { base, len: 0x1000 }, &mut w).unwrap();
        assert!(bus.write(base + offset, 4, value));
    };
    write(&mut b, 0xf0, 0x1ff, 0);
    write(&mut b, 0x3e0, 0xb, 0);
    write(&mut b, 0x320, (1 << 17) | 0x40, 0);
    // 100_000 ticks at 100 MHz = 1 ms.
    write(&mut b, 0x380, 100_000, 0);
    assert_eq!(b.next_deadline(), Some(MS));
    b.sync(MS, com1(false));
    assert_eq!(injected_vector(&mut b), Some(0x40));
    // In service until EOI; the next period's interrupt waits behind it.
    b.sync(2 * MS, com1(false));
    assert_eq!(injected_vector(&mut b), None);
    write(&mut b, 0xb0, 0, 2 * MS);
    assert_eq!(injected_vector(&mut b), Some(0x40));
    // The current-count register counts down.
    let cell = RefCell::new(&mut b);
    let mut w = ApicWindow {
        board: &cell,
        now: 2 * MS + MS / 2,
    };
    let count = MmioHandler::read(&mut w, 0x390, 4);
    assert!((49_000..=51_000).contains(&count), "{count}");
}

#[test]
fn ioapic_routes_irq0_to_gsi2() {
    let mut b = board();
    init_pics(&mut b, 0xff, 0xff);
    {
        let cell = RefCell::new(&mut b);
        let mut w = IoApicWindow { board: &cell };
        // Redirection entry 2 (registers 0x14/0x15): vector 0x30, fixed, physical dest 0.
        MmioHandler::write(&mut w, 0x00, 4, 0x15);
        MmioHandler::write(&mut w, 0x10, 4, 0);
        MmioHandler::write(&mut w, 0x00, 4, 0x14);
        MmioHandler::write(&mut w, 0x10, 4, 0x30);
        MmioHandler::write(&mut w, 0x00, 4, 0x14);
        assert_eq!(MmioHandler::read(&mut w, 0x10, 4), 0x30);
    }
    {
        let cell = RefCell::new(&mut b);
        let mut w = ApicWindow {
            board: &cell,
            now: 0,
        };
        MmioHandler::write(&mut w, 0xf0, 4, 0x1ff);
    }
    out(&mut b, 0x43, 0x34, 0);
    out(&mut b, 0x40, 100, 0);
    out(&mut b, 0x40, 0, 0);
    b.sync(MS, com1(false));
    assert!(b.irq.lapic.irr().contains(0x30));
    assert_eq!(injected_vector(&mut b), Some(0x30));
}

/// Writes `value` to the xAPIC register at `offset`.
fn apic_write(b: &mut Board, offset: u64, value: u64) {
    let cell = RefCell::new(b);
    let mut w = ApicWindow {
        board: &cell,
        now: 0,
    };
    MmioHandler::write(&mut w, offset, 4, value);
}

#[test]
fn the_disk_line_is_gsi5_level_through_the_ioapic() {
    let mut b = board();
    init_pics(&mut b, 0xff, 0xff);
    {
        let cell = RefCell::new(&mut b);
        let mut w = IoApicWindow { board: &cell };
        // Redirection entry 5 (registers 0x1a/0x1b): vector 0x35, fixed, level, active
        // high, physical destination 0, as Linux programs it from the DSDT's _CRS.
        MmioHandler::write(&mut w, 0x00, 4, 0x1b);
        MmioHandler::write(&mut w, 0x10, 4, 0);
        MmioHandler::write(&mut w, 0x00, 4, 0x1a);
        MmioHandler::write(&mut w, 0x10, 4, (1 << 15) | 0x35);
    }
    apic_write(&mut b, 0xf0, 0x1ff);
    let disk = |level| DeviceLines {
        com1: false,
        disk: level,
    };
    b.sync(MS, disk(false));
    assert_eq!(injected_vector(&mut b), None, "no disk interrupt yet");
    b.sync(MS, disk(true));
    assert_eq!(injected_vector(&mut b), Some(0x35));
    // The guest's EOI while the device still asserts its line: delivered again.
    apic_write(&mut b, 0xb0, 0);
    assert!(b.irq.lapic.irr().contains(0x35), "level still high");
    assert_eq!(injected_vector(&mut b), Some(0x35));
    // InterruptACK lowers the line at the MMIO exit; the EOI then ends it.
    b.set_disk_irq(false);
    apic_write(&mut b, 0xb0, 0);
    assert!(!b.irq.lapic.irr().contains(0x35));
    assert_eq!(injected_vector(&mut b), None);
    b.sync(2 * MS, disk(false));
    assert_eq!(injected_vector(&mut b), None);
}

#[test]
fn the_disk_line_reaches_the_8259_on_irq5() {
    let mut b = board();
    init_pics(&mut b, 0xfb & !0x20, 0xff);
    b.sync(MS, DeviceLines::default());
    assert_eq!(injected_vector(&mut b), None);
    b.sync(
        MS,
        DeviceLines {
            com1: false,
            disk: true,
        },
    );
    assert_eq!(injected_vector(&mut b), Some(0x25));
}

#[test]
fn rtc_periodic_interrupt_and_uart_line_reach_the_pics() {
    let mut b = board();
    init_pics(&mut b, 0xfb & !0x10, 0xfe);
    // Register B: periodic interrupt enable, 24h, BCD.
    out(&mut b, 0x70, 0x0b, 0);
    out(&mut b, 0x71, 0x42, 0);
    b.sync(10 * MS, com1(false));
    assert_eq!(injected_vector(&mut b), Some(0x28));
    // Reading register C clears IRQF and so drops IRQ8.
    out(&mut b, 0x70, 0x0c, 10 * MS);
    assert!(b.port_read(0x71, 1, 10 * MS).unwrap() & 0xc0 == 0xc0);
    b.sync(10 * MS, com1(false));
    assert!(!b.rtc.irq_asserted());
    // COM1 on IRQ4 (master vector 0x24).
    out(&mut b, 0xa0, 0x20, 10 * MS);
    out(&mut b, 0x20, 0x20, 10 * MS);
    b.sync(10 * MS, com1(true));
    assert_eq!(injected_vector(&mut b), Some(0x24));
}

#[test]
fn apic_msrs_and_ports_not_ours() {
    let mut b = board();
    assert_eq!(
        b.msr_read(IA32_APIC_BASE, 0),
        Some(MsrOutcome::Value(0xfee0_0900))
    );
    // x2APIC registers are #GP in xAPIC mode (SDM 11.12.1) ...
    assert_eq!(b.msr_read(0x802, 0), Some(MsrOutcome::InjectGp));
    // ... until x2APIC mode is entered.
    assert_eq!(
        b.msr_write(IA32_APIC_BASE, 0xfee0_0d00, 0),
        Some(MsrOutcome::Value(0xfee0_0d00))
    );
    assert_eq!(b.msr_read(0x802, 0), Some(MsrOutcome::Value(0)));
    // Back to xAPIC directly is an invalid transition.
    assert_eq!(
        b.msr_write(IA32_APIC_BASE, 0xfee0_0900, 0),
        Some(MsrOutcome::InjectGp)
    );
    assert_eq!(b.msr_read(0x10, 0), None);
    assert_eq!(b.port_read(0x3f8, 1, 0), None);
    assert!(!b.port_write(0x80, 1, 0, 0));
    // PIC IMR reads back; a 2-byte read of 0x20 reads 0x20 and 0x21.
    init_pics(&mut b, 0xa5, 0xff);
    assert_eq!(b.port_read(0x21, 1, 0), Some(0xa5));
}

#[test]
fn clock_conversion_round_trips() {
    let c = GuestClock::new(2_500_000).unwrap();
    assert_eq!(c.ns(2_500_000_000), 1_000_000_000);
    assert_eq!(c.tsc(1_000_000_000), 2_500_000_000);
    assert!(c.ns(c.tsc(12_345)) >= 12_345);
    assert_eq!(GuestClock::new(0), None);
}

mod vmcs_entry {
    use super::*;
    use crate::vm::board::entry::{PROC_INTERRUPT_WINDOW_EXITING, program_entry, record_vectoring};
    use crate::vmx::vmcs::VmcsAccess;
    use crate::vmx::vmcs::fake::FakeVmcs;
    use crate::vmx::vmcs::fields::{control, exit_info, guest};

    /// A board with IRQ0 pending at the PIC (vector 0x20).
    fn ticking() -> Board {
        let mut b = board();
        init_pics(&mut b, 0xfe, 0xff);
        out(&mut b, 0x43, 0x34, 0);
        out(&mut b, 0x40, 100, 0);
        out(&mut b, 0x40, 0, 0);
        b.sync(MS, com1(false));
        b
    }

    #[test]
    fn injects_when_the_guest_can_take_it() {
        let mut b = ticking();
        let mut vmcs = FakeVmcs::default();
        vmcs.write_natural(guest::RFLAGS, 0x202).unwrap();
        let done = program_entry(&mut b, &mut vmcs).unwrap();
        // Valid, type 0 (external interrupt), vector 0x20 (SDM 25.8.3).
        assert_eq!(done.injected, Some(0x8000_0020));
        assert_eq!(
            vmcs.get(control::ENTRY_INTERRUPTION_INFO.0),
            Some(0x8000_0020)
        );
        assert!(!done.interrupt_window);
        assert_eq!(
            vmcs.get(control::PRIMARY_PROC_BASED.0).unwrap_or(0)
                & u64::from(PROC_INTERRUPT_WINDOW_EXITING),
            0
        );
    }

    #[test]
    fn asks_for_the_window_when_interrupts_are_off_or_blocked() {
        for (rflags, blocking) in [(0x2, 0), (0x202, 1)] {
            let mut b = ticking();
            let mut vmcs = FakeVmcs::default();
            vmcs.write_natural(guest::RFLAGS, rflags).unwrap();
            vmcs.write32(guest::INTERRUPTIBILITY_STATE, blocking)
                .unwrap();
            let done = program_entry(&mut b, &mut vmcs).unwrap();
            assert_eq!(done.injected, None);
            assert!(done.interrupt_window);
            assert_ne!(
                vmcs.get(control::PRIMARY_PROC_BASED.0).unwrap()
                    & u64::from(PROC_INTERRUPT_WINDOW_EXITING),
                0
            );
            // The interrupt is still there for the window exit.
            vmcs.write_natural(guest::RFLAGS, 0x202).unwrap();
            vmcs.write32(guest::INTERRUPTIBILITY_STATE, 0).unwrap();
            assert_eq!(
                program_entry(&mut b, &mut vmcs).unwrap().injected,
                Some(0x8000_0020)
            );
            assert_eq!(
                vmcs.get(control::PRIMARY_PROC_BASED.0).unwrap()
                    & u64::from(PROC_INTERRUPT_WINDOW_EXITING),
                0
            );
        }
    }

    #[test]
    fn a_handler_exception_keeps_the_field() {
        let mut b = ticking();
        let mut vmcs = FakeVmcs::default();
        vmcs.write_natural(guest::RFLAGS, 0x202).unwrap();
        vmcs.write32(control::ENTRY_INTERRUPTION_INFO, 0x8000_0b0d)
            .unwrap();
        let done = program_entry(&mut b, &mut vmcs).unwrap();
        assert_eq!(done.injected, None);
        assert_eq!(
            vmcs.get(control::ENTRY_INTERRUPTION_INFO.0),
            Some(0x8000_0b0d)
        );
        assert!(done.interrupt_window);
    }

    #[test]
    fn an_interrupted_delivery_is_injected_again_first() {
        let mut b = ticking();
        let mut vmcs = FakeVmcs::default();
        // A #PF with error code 2 was being delivered when the exit came.
        vmcs.fields
            .insert(exit_info::IDT_VECTORING_INFO.0, 0x8000_0b0e);
        vmcs.fields.insert(exit_info::IDT_VECTORING_ERROR_CODE.0, 2);
        record_vectoring(&mut b, &vmcs).unwrap().unwrap();
        vmcs.write_natural(guest::RFLAGS, 0x202).unwrap();
        let done = program_entry(&mut b, &mut vmcs).unwrap();
        assert_eq!(done.injected, Some(0x8000_0b0e));
        assert_eq!(vmcs.get(control::ENTRY_EXCEPTION_ERROR_CODE.0), Some(2));
        // The timer interrupt waits for the window.
        assert!(done.interrupt_window);
        // Reserved bits in the vectoring information are refused, not injected.
        vmcs.fields
            .insert(exit_info::IDT_VECTORING_INFO.0, 0x8001_0020);
        assert!(record_vectoring(&mut b, &vmcs).unwrap().is_err());
    }
}

mod migration {
    use super::*;
    use crate::vm::board::state::id;

    /// A board mid-flight: PIT ticking through the PIC with one interrupt in service, the
    /// LAPIC timer periodic, the RTC with a periodic interrupt pending, an NMI queued.
    fn busy() -> Board {
        let mut b = board();
        init_pics(&mut b, 0xfa, 0xfe);
        out(&mut b, 0x43, 0x34, 0);
        out(&mut b, 0x40, 0xa9, 0);
        out(&mut b, 0x40, 0x04, 0);
        {
            let cell = RefCell::new(&mut b);
            let mut w = ApicWindow {
                board: &cell,
                now: 0,
            };
            MmioHandler::write(&mut w, 0xf0, 4, 0x1ff);
            MmioHandler::write(&mut w, 0x3e0, 4, 0xb);
            MmioHandler::write(&mut w, 0x320, 4, (1 << 17) | 0x40);
            MmioHandler::write(&mut w, 0x380, 4, 250_000);
        }
        out(&mut b, 0x70, 0x0b, 0);
        out(&mut b, 0x71, 0x42, 0);
        b.sync(3 * MS, com1(false));
        // The 8259 (ExtINT through LINT0) goes first; the LAPIC timer's 0x40 stays in IRR.
        assert_eq!(injected_vector(&mut b), Some(0x20));
        assert!(b.irq.lapic.irr().contains(0x40));
        b.irq.injector.queue_nmi();
        b
    }

    #[test]
    fn seven_states_round_trip_into_an_identical_board() {
        let mut source = busy();
        // PM1_EN: PWRBTN_EN, as Linux's ACPI core leaves it.
        assert!(source.port_write(0x602, 2, 1 << 8, 0));
        let saved = source.save_devices();
        let ids: Vec<&str> = saved.iter().map(|d| d.id).collect();
        assert_eq!(
            ids,
            [
                id::LAPIC0,
                id::IOAPIC,
                id::PIC,
                id::PIT,
                id::RTC,
                id::EVENTS0,
                id::ACPI_PM
            ]
        );
        // The destination starts from a fresh board on another TSC rate, learns the VM's
        // rate (tsc-rate) and then loads the states.
        let mut dest = Board::new(TSC_KHZ / 2, 64 << 20, 12345, 999);
        dest.set_tsc_khz(TSC_KHZ);
        for d in &saved {
            assert!(Board::owns_device(d.id, u32::from(d.version)));
            dest.load_device(d.id, &d.data).unwrap();
        }
        source.irq0_pulses = 0;
        assert_eq!(dest, source);
        // Both go on identically.
        for b in [&mut source, &mut dest] {
            b.sync(10 * MS, com1(false));
        }
        assert_eq!(dest.next_deadline(), source.next_deadline());
        assert_eq!(dest.plan_entry(open()), source.plan_entry(open()));
    }

    #[test]
    fn bad_states_are_refused_and_change_nothing() {
        let mut b = busy();
        let before = b.clone();
        for d in b.save_devices() {
            let mut cut = d.data.clone();
            cut.pop();
            assert!(b.load_device(d.id, &cut).is_err(), "{}", d.id);
            let mut wrong = d.data.clone();
            wrong[0] ^= 0xff;
            assert!(b.load_device(d.id, &wrong).is_err(), "{}", d.id);
        }
        assert_eq!(b, before);
        assert!(!Board::owns_device(id::LAPIC0, 2));
        assert!(!Board::owns_device("lapic1", 1));
    }

    #[test]
    fn pm1a_blocks_keep_enables_and_report_acpi_mode() {
        let mut b = Board::new(TSC_KHZ, 64 << 20, 0, 0);
        // ACPI 6.5 4.8.3: PM1_EN at 0x602 keeps RTC_EN, PM1_CNT.SCI_EN reads 1, PM1_STS 0.
        assert!(b.port_write(0x602, 2, 1 << 10, 0));
        assert_eq!(b.port_read(0x602, 2, 0), Some(1 << 10));
        assert!(b.port_write(0x602, 2, 0, 0));
        assert_eq!(b.port_read(0x602, 2, 0), Some(0));
        assert_eq!(b.port_read(0x604, 2, 0), Some(1));
        assert_eq!(b.port_read(0x600, 2, 0), Some(0));
        assert_eq!(b.port_read(0x606, 1, 0), None);
    }
}
