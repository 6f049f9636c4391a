//! The opt-in interrupt mode (`hb.irq=pit|lapic`): an IDT, one timer source, a counter.
//!
//! Why: the rest of the guest polls the TSC and never takes an interrupt, so it cannot tell
//! whether a hypervisor delivers them. In this mode the guest programs either PIT counter 0
//! behind the 8259 (IRQ0, vector 0x20), the same counter through the I/O APIC (GSI 2, as
//! an MADT interrupt-source override maps ISA IRQ0; vector 0x30, EOI to the local APIC),
//! or the local APIC timer in periodic mode through
//! the xAPIC page at 0xFEE00000 (vector 0x40; its rate calibrated against the TSC, since
//! the APIC timer clock is not known), counts every tick in [`ticks`], and HLTs between
//! passes. The count appears as `irqs=N` in each beat line.
//!
//! Handlers are naked stubs: they save RAX, bump the counter, send the EOI and IRETQ (the
//! flags come back from the frame). Every other vector >= 32 returns at once (spurious
//! vectors need no EOI); an exception (0-31) prints nothing and stops the guest with
//! `cli; hlt`, which a test sees as beats that stop.

use core::sync::atomic::{AtomicU64, Ordering};

use heartbeat::params::{IrqSource, Params};

use crate::cpu;

/// Vector of the PIT tick (8259 master base 0x20 + IRQ0).
const PIT_VECTOR: u8 = 0x20;
/// Vector of the PIT tick through the I/O APIC.
const IOAPIC_VECTOR: u8 = 0x30;
/// The I/O APIC's page (IOREGSEL at +0, IOWIN at +0x10).
const IOAPIC_BASE: u64 = 0xfec0_0000;
/// The I/O APIC input ISA IRQ0 is wired to (the interrupt-source override).
const PIT_GSI: u32 = 2;
/// Vector of the LAPIC timer.
const LAPIC_VECTOR: u8 = 0x40;
/// The xAPIC page (identity-mapped by the boot page tables, which cover 4 GiB).
const APIC_BASE: u64 = 0xfee0_0000;

static TICKS: AtomicU64 = AtomicU64::new(0);

/// Timer interrupts taken so far.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

#[repr(C, align(16))]
struct Idt([u64; 512]);

static mut IDT: Idt = Idt([0; 512]);

#[unsafe(naked)]
extern "C" fn pit_tick() {
    core::arch::naked_asm!(
        "push rax",
        "lock inc qword ptr [rip + {ticks}]",
        "mov al, 0x20",
        "out 0x20, al",
        "pop rax",
        "iretq",
        ticks = sym TICKS,
    );
}

#[unsafe(naked)]
extern "C" fn lapic_tick() {
    core::arch::naked_asm!(
        "push rax",
        "lock inc qword ptr [rip + {ticks}]",
        // EOI: a 32-bit write of 0 to the EOI register at APIC_BASE + 0xB0.
        "mov rax, 0xfee000b0",
        "mov dword ptr [rax], 0",
        "pop rax",
        "iretq",
        ticks = sym TICKS,
    );
}

#[unsafe(naked)]
extern "C" fn ignore() {
    core::arch::naked_asm!("iretq");
}

#[unsafe(naked)]
extern "C" fn exception() {
    core::arch::naked_asm!("2:", "cli", "hlt", "jmp 2b");
}

/// A 64-bit interrupt gate (SDM Vol. 3A 6.14.1): code selector 0x08, present, DPL 0.
fn gate(handler: extern "C" fn()) -> [u64; 2] {
    let addr = handler as usize as u64;
    let low = (addr & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((addr >> 16) & 0xffff) << 48;
    [low, addr >> 32]
}

fn install_idt(timer_vector: u8, timer: extern "C" fn()) {
    let idt = core::ptr::addr_of_mut!(IDT);
    for vector in 0..256usize {
        let handler: extern "C" fn() = match vector {
            v if v == usize::from(timer_vector) => timer,
            0..32 => exception,
            _ => ignore,
        };
        let [low, high] = gate(handler);
        // SAFETY: the IDT is this module's static, written before LIDT and only here.
        unsafe {
            (*idt).0[vector * 2] = low;
            (*idt).0[vector * 2 + 1] = high;
        }
    }
    let mut idtr = [0u8; 10];
    idtr[..2].copy_from_slice(&(256u16 * 16 - 1).to_le_bytes());
    idtr[2..].copy_from_slice(&(idt as u64).to_le_bytes());
    // SAFETY: the IDT is static and fully initialised above; gates name our code selector.
    unsafe { core::arch::asm!("lidt [{0}]", in(reg) idtr.as_ptr(), options(nostack)) };
}

fn apic_write(offset: u64, value: u32) {
    // SAFETY: the xAPIC page is identity-mapped; this is a device register write.
    unsafe { core::ptr::write_volatile((APIC_BASE + offset) as *mut u32, value) };
}

fn apic_read(offset: u64) -> u32 {
    // SAFETY: as for `apic_write`.
    unsafe { core::ptr::read_volatile((APIC_BASE + offset) as *const u32) }
}

fn ioapic_write(register: u32, value: u32) {
    // SAFETY: the I/O APIC page is identity-mapped; IOREGSEL then IOWIN, 32 bits each.
    unsafe {
        core::ptr::write_volatile(IOAPIC_BASE as *mut u32, register);
        core::ptr::write_volatile((IOAPIC_BASE + 0x10) as *mut u32, value);
    }
}

fn start_pit(reload: u16) {
    // Counter 0, lo/hi byte, mode 2 (rate generator), binary.
    cpu::outb(0x43, 0x34);
    cpu::outb(0x40, reload.to_le_bytes()[0]);
    cpu::outb(0x40, reload.to_le_bytes()[1]);
}

/// The 8259 pair initialised with vector bases 0x20/0x28, only IRQ0 unmasked (or none).
fn init_pics(irq0: bool) {
    for (command, data, base, cascade, mask) in [
        (0x20, 0x21, 0x20, 0x04, if irq0 { 0xfe } else { 0xff }),
        (0xa0, 0xa1, 0x28, 0x02, 0xff),
    ] {
        cpu::outb(command, 0x11);
        cpu::outb(data, base);
        cpu::outb(data, cascade);
        cpu::outb(data, 0x01);
        cpu::outb(data, mask);
    }
}

/// Set up `params.irq` and enable interrupts; returns a description for `HB-IRQ`, or
/// `None` when the mode is off.
pub fn start(params: &Params, tsc_khz: u64) -> Option<(&'static str, u64)> {
    match params.irq {
        IrqSource::None => None,
        IrqSource::Pit => {
            install_idt(PIT_VECTOR, pit_tick);
            init_pics(true);
            let reload = params.pit_reload();
            start_pit(reload);
            enable();
            Some(("pit", u64::from(reload)))
        }
        IrqSource::IoApic => {
            install_idt(IOAPIC_VECTOR, lapic_tick);
            init_pics(false);
            apic_write(0xf0, 0x1ff);
            // Redirection entry for GSI 2: destination APIC 0 (high dword first), then
            // fixed delivery, physical, edge, active high, unmasked, vector 0x30.
            ioapic_write(0x10 + 2 * PIT_GSI + 1, 0);
            ioapic_write(0x10 + 2 * PIT_GSI, u32::from(IOAPIC_VECTOR));
            let reload = params.pit_reload();
            start_pit(reload);
            enable();
            Some(("ioapic", u64::from(reload)))
        }
        IrqSource::Lapic => {
            install_idt(LAPIC_VECTOR, lapic_tick);
            init_pics(false);
            // Software-enable with spurious vector 0xFF; divide by 1.
            apic_write(0xf0, 0x1ff);
            apic_write(0x3e0, 0xb);
            // Calibrate: one-shot, masked, from the maximum count, over 1 ms of TSC.
            apic_write(0x320, 1 << 16);
            apic_write(0x380, u32::MAX);
            let start = cpu::rdtsc();
            while cpu::rdtsc().wrapping_sub(start) < tsc_khz {}
            let per_ms = u64::from(u32::MAX - apic_read(0x390)).max(1);
            let count = (per_ms * 1000 / params.irq_hz.max(1)).clamp(1, u64::from(u32::MAX));
            // Periodic, vector 0x40, then the count starts it.
            apic_write(0x320, (1 << 17) | u32::from(LAPIC_VECTOR));
            // Clamped to 32 bits above.
            apic_write(0x380, count as u32);
            enable();
            Some(("lapic", count))
        }
    }
}

fn enable() {
    // SAFETY: the IDT is loaded and every vector has a handler.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
}

/// Sleep until the next interrupt (interrupts stay enabled).
pub fn wait() {
    // SAFETY: HLT with interrupts enabled returns after the next interrupt's handler.
    unsafe { core::arch::asm!("hlt", options(nomem, nostack)) };
}
