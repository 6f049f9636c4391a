//! The PC board around a vCPU: the interrupt controllers, the 8254 PIT, the RTC and the
//! wires between them and the UART, as the exit handlers and the VM-entry path use them.
//!
//! Why one composition: every one of these models is a pure state machine with its own
//! notion of time (guest TSC for the local APIC, guest nanoseconds for the PIT and RTC)
//! and its own output (IRQ0 edges, the IRQ8 level, the UART's INTR). Something has to own
//! the clock conversion, route ports and MSRs to the right model and turn outputs into ISA
//! IRQ lines before each VM entry; doing that here keeps it host-tested and keeps the
//! bare-metal `Machine` to "call `sync`, then `plan_entry`". The routes:
//!
//! | guest access | model |
//! |---|---|
//! | ports 0x20/0x21/0xA0/0xA1/0x4D0/0x4D1 | `pic` (8259 pair + ELCR) |
//! | ports 0x40-0x43, 0x61 | `pit` |
//! | ports 0x70/0x71 | `rtc` |
//! | ports 0x600-0x605 (the FADT's PM1a blocks) | `acpi_pm` |
//! | MSR IA32_APIC_BASE, 0x800-0x8FF, IA32_TSC_DEADLINE | `lapic` (x2APIC faults: #GP) |
//! | MMIO at the APIC base (0xFEE00000) | `lapic` xAPIC page ([`ApicWindow`]) |
//! | MMIO 0xFEC00000 | `ioapic` ([`IoApicWindow`]) |
//!
//! and, at [`Board::sync`]: LAPIC timer to guest TSC, one IRQ0 pulse per PIT OUT0 edge,
//! IRQ8 = RTC IRQF, IRQ4 = the UART's line (INTR gated by OUT2, `Uart16550::pc_irq_line`),
//! IRQ5 = the virtio-blk disk's level line (`VirtioMmio::interrupt_level`; a VM without a
//! disk leaves it low). The disk's line is also refreshed right after each access to its
//! window ([`Board::set_disk_irq`]), so that the guest's InterruptACK lowers it before the
//! guest's EOI reaches the I/O APIC, which would otherwise deliver the stale level again.

pub mod entry;
pub mod state;
mod windows;

pub use windows::{ApicWindow, IoApicWindow};

use super::acpi_pm::AcpiPm;
use super::interrupts::injector::{EntryPlan, GuestInterruptibility};
use super::interrupts::platform::PlatformInterrupts;
use super::ioapic::DEFAULT_IOAPIC_BASE;
use super::lapic::{IA32_APIC_BASE, IA32_TSC_DEADLINE, Lapic, LapicConfig, TimerClock};
use super::msr::MsrOutcome;
use super::pic::DualPic;
use super::pit::Pit;
use super::rtc::{CmosMemory, Rtc};

/// The APIC timer's input clock (Hz): the rate CPUID leaf 0x15 shows guests
/// (`vm::cpuid::APIC_TIMER_KHZ`), so a guest may trust the leaf or calibrate against the TSC.
pub const APIC_TIMER_HZ: u64 = crate::vm::cpuid::APIC_TIMER_KHZ as u64 * 1000;

/// The guest MAXPHYADDR the local APIC checks IA32_APIC_BASE against.
const GUEST_MAX_PHYS_BITS: u8 = 46;

/// ISA IRQ lines the board drives.
pub mod isa_irq {
    /// PIT counter 0.
    pub const PIT: u8 = 0;
    /// COM1.
    pub const COM1: u8 = 4;
    /// RTC.
    pub const RTC: u8 = 8;
    /// The virtio-blk disk (`vm::virtio_blk::placement::DISK_IRQ`).
    pub const DISK: u8 = crate::vm::virtio_blk::placement::DISK_IRQ;
}

/// The device interrupt lines the board samples at each [`Board::sync`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceLines {
    /// COM1's INTR as the board sees it (`Uart16550::pc_irq_line`).
    pub com1: bool,
    /// The disk's level line (`VirtioMmio::interrupt_level`); false without a disk.
    pub disk: bool,
}

/// Guest TSC ticks <-> guest nanoseconds, from the VM's TSC rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestClock {
    tsc_khz: u64,
}

impl GuestClock {
    /// A clock for a TSC of `tsc_khz` kHz; `None` for 0.
    pub fn new(tsc_khz: u32) -> Option<Self> {
        (tsc_khz != 0).then_some(Self {
            tsc_khz: u64::from(tsc_khz),
        })
    }

    /// Nanoseconds in `tsc` ticks.
    pub fn ns(&self, tsc: u64) -> u64 {
        let ns = u128::from(tsc) * 1_000_000 / u128::from(self.tsc_khz);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// The first TSC value at which `ns` nanoseconds have passed.
    pub fn tsc(&self, ns: u64) -> u64 {
        let tsc = (u128::from(ns) * u128::from(self.tsc_khz)).div_ceil(1_000_000);
        u64::try_from(tsc).unwrap_or(u64::MAX)
    }
}

fn lapic_config(clock: GuestClock) -> LapicConfig {
    // Both rates are non-zero (the clock's is at least 1 kHz), so the timer clock exists.
    let timer = TimerClock::new(clock.tsc_khz * 1000, APIC_TIMER_HZ)
        .expect("non-zero TSC and APIC timer rates");
    LapicConfig {
        apic_id: 0,
        bsp: true,
        clock: timer,
        max_phys_addr_bits: GUEST_MAX_PHYS_BITS,
    }
}

/// The interrupt controllers and timers of a one-vCPU VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// PIC, I/O APIC, local APIC and event injector.
    pub irq: PlatformInterrupts,
    /// The 8254 and port 0x61.
    pub pit: Pit,
    /// The MC146818 RTC and CMOS.
    pub rtc: Rtc,
    /// The ACPI PM1a event and control blocks.
    pub acpi_pm: AcpiPm,
    clock: GuestClock,
    /// IRQ0 pulses delivered (`vm info`, tests).
    pub irq0_pulses: u64,
}

impl Board {
    /// A board at power-on as firmware leaves it (LAPIC in virtual-wire mode), for a VM
    /// with a TSC of `tsc_khz` (0, an uncalibrated host, counts as 1 kHz: slow timers, no
    /// failure), `ram_bytes` of RAM below 4 GiB, at guest TSC `now`, the RTC showing
    /// `wall_ns` (ns since the Unix epoch).
    pub fn new(tsc_khz: u32, ram_bytes: u64, now: u64, wall_ns: u64) -> Self {
        let clock = GuestClock {
            tsc_khz: u64::from(tsc_khz.max(1)),
        };
        let mut lapic = Lapic::new(lapic_config(clock));
        lapic.enable_virtual_wire();
        let memory = CmosMemory {
            below_4g: ram_bytes,
            above_4g: 0,
        };
        Self {
            irq: PlatformInterrupts::new(lapic),
            pit: Pit::new(),
            rtc: Rtc::new(wall_ns, clock.ns(now), memory),
            acpi_pm: AcpiPm::default(),
            clock,
            irq0_pulses: 0,
        }
    }

    /// The guest clock conversion.
    pub fn clock(&self) -> GuestClock {
        self.clock
    }

    /// The local APIC's host constants for the current clock.
    pub fn lapic_config(&self) -> LapicConfig {
        lapic_config(self.clock)
    }

    /// Show the guest a TSC of `tsc_khz` from now on (an arriving VM keeps the rate of its
    /// first host): the clock conversion and the APIC timer's clock follow.
    pub fn set_tsc_khz(&mut self, tsc_khz: u32) {
        self.clock = GuestClock {
            tsc_khz: u64::from(tsc_khz.max(1)),
        };
        // Re-basing a valid APIC on another clock cannot fail its checks; if it ever did,
        // the APIC keeps its old clock rather than losing its state.
        if let Ok(lapic) = Lapic::restore(self.lapic_config(), &self.irq.lapic.save()) {
            self.irq.lapic = lapic;
        }
    }

    /// A guest IN at guest TSC `now`; `None` if no board device decodes the port.
    /// Multi-byte accesses read consecutive byte ports.
    pub fn port_read(&mut self, port: u16, size: u8, now: u64) -> Option<u32> {
        if !Self::handles_port(port) {
            return None;
        }
        let ns = self.clock.ns(now);
        let mut value = 0u32;
        for i in 0..size.min(4) {
            let p = port.wrapping_add(u16::from(i));
            let byte = if DualPic::handles_port(p) {
                self.irq.pic.read(p)
            } else if Pit::handles_port(p) {
                self.pit.read(p, ns)
            } else if matches!(p, 0x70 | 0x71) {
                self.rtc.read(p, ns)
            } else {
                self.acpi_pm.read(p).unwrap_or(0xff)
            };
            value |= u32::from(byte) << (8 * u32::from(i));
        }
        Some(value)
    }

    /// A guest OUT at guest TSC `now`; false if no board device decodes the port.
    pub fn port_write(&mut self, port: u16, size: u8, value: u32, now: u64) -> bool {
        if !Self::handles_port(port) {
            return false;
        }
        let ns = self.clock.ns(now);
        for (i, byte) in value
            .to_le_bytes()
            .into_iter()
            .take(usize::from(size.min(4)))
            .enumerate()
        {
            // At most 4 bytes.
            let p = port.wrapping_add(i as u16);
            if DualPic::handles_port(p) {
                self.irq.pic.write(p, byte);
            } else if Pit::handles_port(p) {
                self.pit.write(p, byte, ns);
            } else if matches!(p, 0x70 | 0x71) {
                self.rtc.write(p, byte, ns);
            } else {
                self.acpi_pm.write(p, byte);
            }
        }
        true
    }

    /// Whether `port` belongs to the board.
    pub fn handles_port(port: u16) -> bool {
        DualPic::handles_port(port)
            || Pit::handles_port(port)
            || matches!(port, 0x70 | 0x71)
            || AcpiPm::handles_port(port)
    }

    /// RDMSR of an APIC MSR at guest TSC `now`; `None` for MSRs that are not the APIC's.
    pub fn msr_read(&mut self, msr: u32, now: u64) -> Option<MsrOutcome> {
        let lapic = &mut self.irq.lapic;
        Some(match msr {
            IA32_APIC_BASE => MsrOutcome::Value(lapic.apic_base()),
            IA32_TSC_DEADLINE => MsrOutcome::Value(lapic.tsc_deadline()),
            0x800..=0x8ff => match lapic.msr_read(msr, now) {
                Ok(v) => MsrOutcome::Value(v),
                Err(_) => MsrOutcome::InjectGp,
            },
            _ => return None,
        })
    }

    /// WRMSR of an APIC MSR at guest TSC `now`; `None` for MSRs that are not the APIC's.
    /// A reserved bit, an invalid mode transition (SDM Vol. 3A 11.4.4, 11.12.5) or an
    /// x2APIC access outside x2APIC mode (11.12.1) is #GP.
    pub fn msr_write(&mut self, msr: u32, value: u64, now: u64) -> Option<MsrOutcome> {
        Some(match msr {
            IA32_APIC_BASE => match self.irq.lapic.set_apic_base(value) {
                Ok(()) => MsrOutcome::Value(value),
                Err(_) => MsrOutcome::InjectGp,
            },
            IA32_TSC_DEADLINE => {
                self.irq.lapic.set_tsc_deadline(value);
                MsrOutcome::Value(value)
            }
            0x800..=0x8ff => match self.irq.lapic.msr_write(msr, value, now) {
                Ok(out) => {
                    self.irq.lapic_output(out);
                    MsrOutcome::Value(value)
                }
                Err(_) => MsrOutcome::InjectGp,
            },
            _ => return None,
        })
    }

    /// Brings the timers to guest TSC `now` and drives the ISA lines from their outputs
    /// and the devices' `lines`: call before each VM entry (and before deciding whether a halted
    /// vCPU wakes). PIT edges missed while the VM did not run are delivered as one pulse
    /// (as a guest that was not scheduled would see; Linux counts lost ticks itself).
    pub fn sync(&mut self, now: u64, lines: DeviceLines) {
        let ns = self.clock.ns(now);
        self.irq.lapic.advance(now);
        if self.pit.advance(ns) > 0 {
            self.irq.pulse_isa_irq(isa_irq::PIT);
            self.irq0_pulses = self.irq0_pulses.saturating_add(1);
        }
        self.rtc.advance(ns);
        self.irq.set_isa_irq(isa_irq::RTC, self.rtc.irq_asserted());
        self.irq.set_isa_irq(isa_irq::COM1, lines.com1);
        self.set_disk_irq(lines.disk);
    }

    /// Drives the disk's line (ISA IRQ 5, GSI 5) to `level` now: after a guest access to
    /// the disk's registers, so that an InterruptACK lowers the line at once. A level
    /// line that stays high re-delivers after EOI through the I/O APIC's Remote IRR
    /// (82093AA datasheet, 3.2.4 redirection table: level-triggered Remote IRR), and stays
    /// requested in the 8259 when it is programmed level-triggered by the ELCR.
    pub fn set_disk_irq(&mut self, level: bool) {
        self.irq.set_isa_irq(isa_irq::DISK, level);
    }

    /// The guest TSC at which a timer next needs attention (the LAPIC timer, the PIT's
    /// next OUT0 edge, the RTC's next event), if any is armed.
    pub fn next_deadline(&self) -> Option<u64> {
        let pit = self.pit.next_deadline().map(|ns| self.clock.tsc(ns));
        let rtc = self.rtc.next_deadline().map(|ns| self.clock.tsc(ns));
        [self.irq.lapic.next_deadline(), pit, rtc]
            .into_iter()
            .flatten()
            .min()
    }

    /// The decision for the next VM entry.
    pub fn plan_entry(&mut self, cpu: GuestInterruptibility) -> EntryPlan {
        self.irq.plan_entry(cpu)
    }

    /// Whether a halted vCPU wakes now.
    pub fn wakes_from_halt(&mut self, cpu: GuestInterruptibility) -> bool {
        self.irq.wakes_from_halt(cpu)
    }

    /// The guest-physical base of the xAPIC page (follows IA32_APIC_BASE).
    pub fn apic_base(&self) -> u64 {
        self.irq.lapic.mmio_base()
    }

    /// The guest-physical base of the I/O APIC page.
    pub fn ioapic_base(&self) -> u64 {
        DEFAULT_IOAPIC_BASE
    }
}

#[cfg(test)]
mod tests;
