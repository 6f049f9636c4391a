//! The few privileged instructions the guest needs.

/// Read the time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the TSC (CR4.TSD is clear: we never set it).
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// CPUID(`leaf`, subleaf 0): EAX, EBX, ECX, EDX.
pub fn cpuid(leaf: u32) -> [u32; 4] {
    // CPUID is unprivileged and has no memory effects (the intrinsic saves RBX).
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Write a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: the guest owns its (virtual) I/O space; OUT has no memory effects.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
    };
}

/// Read a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack))
    };
    value
}

/// Reload CR3 to flush the TLB after page-table edits.
pub fn flush_tlb() {
    // SAFETY: writing CR3 with its current value keeps the same address space.
    unsafe {
        core::arch::asm!("mov {tmp}, cr3", "mov cr3, {tmp}", tmp = out(reg) _, options(nostack));
    }
}

/// Stop: interrupts off, HLT forever (a hypervisor sees HLT exits).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: CLI/HLT only stop this CPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Load an IDT with limit 0 and execute UD2: #UD cannot be delivered (the vector is past the
/// limit) so it becomes #GP, then #DF, then a triple fault (SDM Vol. 3A §6.15, "Interrupt 8
/// — Double Fault Exception", contributory-exception table).
pub fn triple_fault() -> ! {
    let idtr: [u8; 10] = [0; 10];
    // SAFETY: deliberately faults; nothing runs after this in the guest.
    unsafe {
        core::arch::asm!("lidt [{0}]", "ud2", in(reg) idtr.as_ptr(), options(noreturn, nostack));
    }
}
