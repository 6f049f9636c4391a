//! Powering off and resetting the machine.
//!
//! Shutdown: ACPI S5 (write `SLP_TYPa << 10 | SLP_EN` to PM1a_CNT and `SLP_TYPb << 10 |
//! SLP_EN` to PM1b_CNT, ACPI 6.5 §4.8.3.2.1 and §7.4.2 "\_S5 Soft Off"), then UEFI
//! `ResetSystem(EfiResetShutdown)`, then halt with a message.
//! Reboot: the FADT reset register (ACPI 6.5 §4.8.3.6), the 8042 keyboard controller, UEFI
//! `ResetSystem(EfiResetCold)`, then a triple fault.
//!
//! UEFI runtime services stay callable after ExitBootServices in physical mode (the loader
//! never calls SetVirtualAddressMap and the identity map covers runtime memory). Firmware code
//! may use SSE, which the firmware enabled and tern never disables (our own code is soft-float).

use core::ffi::c_void;
use core::fmt::Write;

use spin::Once;

use super::tables::{AcpiError, PhysMemory, PowerInfo, RegisterAddress, discover_power};
use crate::arch::port::{inw, outb, outw};
use crate::arch::reset::{keyboard_controller_reset, triple_fault};
use crate::arch::{cpu, serial, tsc};
use crate::memory::phys_to_ptr;

/// Physical memory through the loader's identity map, bounded by its extent.
pub struct IdentityMappedMemory {
    pub limit: u64,
}

impl PhysMemory for IdentityMappedMemory {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
        let end = phys
            .checked_add(buf.len() as u64)
            .ok_or(AcpiError::Unreadable { phys })?;
        if phys == 0 || end > self.limit {
            return Err(AcpiError::Unreadable { phys });
        }
        // SAFETY: [phys, end) is inside the identity map (checked above) and holds firmware
        // tables that nothing writes; a byte copy has no alignment requirement.
        unsafe {
            core::ptr::copy_nonoverlapping(phys_to_ptr::<u8>(phys), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }
}

struct Power {
    acpi: Result<PowerInfo, AcpiError>,
    uefi_runtime_services: u64,
    identity_limit: u64,
}

static POWER: Once<Power> = Once::new();

/// Reads the ACPI tables once at boot; failures are reported and leave the fallbacks.
pub fn init(rsdp: u64, uefi_runtime_services: u64, identity_limit: u64) {
    let acpi = discover_power(
        &IdentityMappedMemory {
            limit: identity_limit,
        },
        rsdp,
    );
    match &acpi {
        Ok(info) => {
            match info.s5 {
                Ok(t) => log::info!("acpi: S5 soft-off SLP_TYP a={} b={}", t.a, t.b),
                Err(e) => log::warn!("acpi: {e}; shutdown will use UEFI ResetSystem"),
            }
            if info.fadt.reset.is_none() {
                log::info!("acpi: no FADT reset register; reboot uses the keyboard controller");
            }
        }
        // Not a fault: some firmware installs no ACPI tables at all (OVMF under Bochs has no
        // fw_cfg to fetch them from, see TESTBED.md). Say once what that costs.
        Err(AcpiError::NoRsdp) => log::info!(
            "acpi: the firmware installed no ACPI tables (no RSDP in the UEFI configuration \
             table): power-off uses UEFI ResetSystem, reboot the keyboard controller, and PCI \
             configuration uses ports 0xCF8/0xCFC (no MCFG)"
        ),
        // Tables that exist but cannot be read or parsed are a firmware (or tern) problem.
        Err(e) => log::warn!("acpi: {e}; shutdown and reboot will use fallbacks"),
    }
    POWER.call_once(|| Power {
        acpi,
        uefi_runtime_services,
        identity_limit,
    });
}

/// One line describing what power control will use (for `info`).
pub fn describe(out: &mut dyn Write) -> core::fmt::Result {
    let Some(p) = POWER.get() else {
        return writeln!(out, "power: not initialised");
    };
    match &p.acpi {
        Ok(info) => writeln!(
            out,
            "power: ACPI S5 {}, reset register {}, UEFI runtime {}",
            if info.s5.is_ok() { "yes" } else { "no" },
            if info.fadt.reset.is_some() {
                "yes"
            } else {
                "no"
            },
            if p.uefi_runtime_services != 0 {
                "yes"
            } else {
                "no"
            },
        ),
        Err(e) => writeln!(out, "power: ACPI unavailable ({e})"),
    }
}

/// Writes a 16-bit PM1 control register.
fn write_pm1(reg: RegisterAddress, value: u16, identity_limit: u64) {
    match reg {
        // SAFETY: the FADT names this port as the PM1 control block; writing SLP_EN is the
        // documented way to enter a sleep state, which is what the caller wants.
        RegisterAddress::Io(port) => unsafe { outw(port, value) },
        RegisterAddress::Memory(addr) if addr + 2 <= identity_limit => {
            // SAFETY: as above, for a memory-mapped PM1 block inside the identity map.
            unsafe { core::ptr::write_volatile(phys_to_ptr::<u16>(addr), value) }
        }
        RegisterAddress::Memory(_) => {}
    }
}

/// Reads a 16-bit PM1 control register (0 if not readable).
fn read_pm1(reg: RegisterAddress, identity_limit: u64) -> u16 {
    match reg {
        // SAFETY: reading the PM1 control block has no side effects.
        RegisterAddress::Io(port) => unsafe { inw(port) },
        RegisterAddress::Memory(addr) if addr + 2 <= identity_limit => {
            // SAFETY: as above, memory-mapped inside the identity map.
            unsafe { core::ptr::read_volatile(phys_to_ptr::<u16>(addr)) }
        }
        RegisterAddress::Memory(_) => 0,
    }
}

/// Busy-waits about `ms` milliseconds (the TSC is calibrated by now).
fn wait_ms(ms: u64) {
    let clock = tsc::clock();
    let deadline = tsc::rdtsc().saturating_add(clock.ticks_in(ms * 1_000_000).max(1_000_000));
    while tsc::rdtsc() < deadline {
        core::hint::spin_loop();
    }
}

/// `EFI_RUNTIME_SERVICES.ResetSystem` (UEFI 2.10 §8.5.1), at offset 0x68 of the table:
/// a 24-byte header, then ten function pointers before it.
type ResetSystem = unsafe extern "efiapi" fn(u32, usize, usize, *const c_void) -> !;
const RESET_SYSTEM_OFFSET: u64 = 0x68;
const RUNTIME_SERVICES_SIGNATURE: u64 = u64::from_le_bytes(*b"RUNTSERV");
const EFI_RESET_COLD: u32 = 0;
const EFI_RESET_SHUTDOWN: u32 = 2;

/// Calls UEFI ResetSystem if the runtime services table looks valid; returns if not.
fn uefi_reset(p: &Power, reset_type: u32) {
    let table = p.uefi_runtime_services;
    if table == 0 || table + RESET_SYSTEM_OFFSET + 8 > p.identity_limit {
        return;
    }
    // SAFETY: the loader passed the runtime services table address; it is inside the identity
    // map (checked) and we only read the signature and one pointer from it.
    let (signature, function) = unsafe {
        (
            core::ptr::read_volatile(phys_to_ptr::<u64>(table)),
            core::ptr::read_volatile(phys_to_ptr::<u64>(table + RESET_SYSTEM_OFFSET)),
        )
    };
    if signature != RUNTIME_SERVICES_SIGNATURE || function == 0 || function >= p.identity_limit {
        log::warn!("uefi: runtime services table at {table:#x} is not valid");
        return;
    }
    // SAFETY: `function` is the firmware's ResetSystem (signature-checked table, address in
    // the identity map, runtime code is never reclaimed); it takes (type, status, data size,
    // data) with the UEFI calling convention and does not return.
    unsafe {
        let reset: ResetSystem = core::mem::transmute::<usize, ResetSystem>(function as usize);
        reset(reset_type, 0, 0, core::ptr::null());
    }
}

/// Powers the machine off. Prints `powering off` first.
pub fn shutdown(out: &mut dyn Write) -> ! {
    let _ = writeln!(out, "powering off");
    serial::flush();
    if let Some(p) = POWER.get() {
        if let Ok(info) = &p.acpi
            && let (Ok(s5), Some(pm1a)) = (info.s5, info.fadt.pm1a_control)
        {
            const SLP_TYP_MASK: u16 = 0b111 << 10;
            const SLP_EN: u16 = 1 << 13;
            let a = (read_pm1(pm1a, p.identity_limit) & !SLP_TYP_MASK) | (s5.a as u16) << 10;
            let b = info.fadt.pm1b_control.map(|r| {
                (
                    r,
                    (read_pm1(r, p.identity_limit) & !SLP_TYP_MASK) | (s5.b as u16) << 10,
                )
            });
            write_pm1(pm1a, a | SLP_EN, p.identity_limit);
            if let Some((reg, value)) = b {
                write_pm1(reg, value | SLP_EN, p.identity_limit);
            }
            wait_ms(200);
            log::warn!("acpi: S5 soft-off did not take effect; trying UEFI ResetSystem");
        }
        uefi_reset(p, EFI_RESET_SHUTDOWN);
    }
    let _ = writeln!(
        out,
        "error: power-off failed: the machine is halted, switch it off by hand"
    );
    serial::flush();
    cpu::halt_forever()
}

/// Resets the machine.
pub fn reboot(out: &mut dyn Write) -> ! {
    let _ = writeln!(out, "rebooting");
    serial::flush();
    if let Some(p) = POWER.get() {
        if let Ok(PowerInfo { fadt, .. }) = &p.acpi
            && let Some((reg, value)) = fadt.reset
        {
            match reg {
                // SAFETY: the FADT names this as the reset register; writing RESET_VALUE
                // resets the machine, which is the point.
                RegisterAddress::Io(port) => unsafe { outb(port, value) },
                RegisterAddress::Memory(addr) if addr < p.identity_limit => {
                    // SAFETY: as above, memory-mapped inside the identity map.
                    unsafe { core::ptr::write_volatile(phys_to_ptr::<u8>(addr), value) }
                }
                RegisterAddress::Memory(_) => {}
            }
            wait_ms(100);
        }
        keyboard_controller_reset();
        wait_ms(100);
        uefi_reset(p, EFI_RESET_COLD);
    } else {
        keyboard_controller_reset();
        wait_ms(100);
    }
    triple_fault()
}
