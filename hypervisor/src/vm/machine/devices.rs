//! What a VM's exits reach on the host side: the port bus with COM1 and the board, and the host CPU
//! services (CPUID, TSC, XCR0) the portable exit handlers ask for.

use crate::vm::board::Board;
use crate::vm::console_out::{LineOutput, LineSink};
use crate::vm::cpu_model::FeatureMasks;
use crate::vm::cpuid::CpuidResult;
use crate::vm::exit_handler::{DeviceMsrs, HostCpu, PortBus};
use crate::vm::msr::MsrOutcome;
use crate::vm::uart16550::{self, NoInterrupt, Uart16550};
use crate::vmx::hw::instr;

/// COM1's base port.
pub const COM1: u16 = 0x3f8;

/// The port bus of a VM: COM1 and the board (PIC, PIT, port 0x61, RTC); other ports read
/// as all ones and ignore writes. Also the APIC's MSRs. `now` is the guest TSC at the exit.
pub(super) struct Bus<'a, O: LineOutput> {
    pub(super) uart: &'a mut Uart16550<NoInterrupt, LineSink<O>>,
    pub(super) board: &'a mut Board,
    pub(super) now: u64,
}

impl<O: LineOutput> PortBus for Bus<'_, O> {
    fn read(&mut self, port: u16, size: u8) -> Option<u32> {
        match port.checked_sub(COM1) {
            Some(offset) if offset < uart16550::PORT_COUNT => {
                Some(u32::from(self.uart.read(offset as u8)))
            }
            _ => self.board.port_read(port, size, self.now),
        }
    }

    fn write(&mut self, port: u16, size: u8, value: u32) -> bool {
        match port.checked_sub(COM1) {
            Some(offset) if offset < uart16550::PORT_COUNT => {
                self.uart.write(offset as u8, value.to_le_bytes()[0]);
                true
            }
            _ => self.board.port_write(port, size, value, self.now),
        }
    }
}

/// The host's answer to CPUID(`leaf`, `subleaf`); zero for a basic or extended leaf above
/// the host's maximum (an Intel CPU would repeat its highest basic leaf there, SDM Vol. 2A
/// CPUID, which must not be mistaken for feature bits).
pub fn host_cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let range_max = core::arch::x86_64::__cpuid(leaf & 0x8000_0000).eax;
    if leaf > range_max {
        return CpuidResult::default();
    }
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// What this host can show a guest (`vm::cpu_model`).
pub fn host_offer() -> FeatureMasks {
    FeatureMasks::host_offer(host_cpuid)
}

impl<O: LineOutput> DeviceMsrs for Bus<'_, O> {
    fn read_msr(&mut self, msr: u32, tsc: u64) -> Option<MsrOutcome> {
        self.board.msr_read(msr, tsc)
    }

    fn write_msr(&mut self, msr: u32, value: u64, tsc: u64) -> Option<MsrOutcome> {
        self.board.msr_write(msr, value, tsc)
    }
}

/// Host CPU services for the exit handlers.
pub(super) struct HwHost {
    pub(super) xsave: bool,
    /// Added to the host TSC to get the guest's (the VMCS TSC offset, SDM §26.3).
    pub(super) tsc_offset: u64,
}

impl HostCpu for HwHost {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        CpuidResult {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }

    fn guest_tsc(&self) -> u64 {
        // SAFETY: RDTSC is unprivileged and CR4.TSD is clear in the hypervisor.
        unsafe { core::arch::x86_64::_rdtsc() }.wrapping_add(self.tsc_offset)
    }

    fn set_xcr0(&mut self, value: u64) {
        if self.xsave {
            // SAFETY: `handle_exit` validated `value` against `supported_xcr0`, and
            // `vmx::hw::enable` set CR4.OSXSAVE when the CPU has XSAVE.
            unsafe { instr::xsetbv(0, value) };
        }
    }

    fn move_guest_tsc(&mut self, delta: u64) {
        self.tsc_offset = self.tsc_offset.wrapping_add(delta);
    }

    fn supported_xcr0(&self) -> u64 {
        if !self.xsave {
            return 1;
        }
        let r = core::arch::x86_64::__cpuid_count(0xd, 0);
        u64::from(r.eax) | (u64::from(r.edx) << 32)
    }
}

pub(super) fn host_has_xsave() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 26) != 0
}

/// CPUID.80000001H:EDX.RDTSCP (bit 27): IA32_TSC_AUX exists.
pub(super) fn host_has_rdtscp() -> bool {
    core::arch::x86_64::__cpuid(0x8000_0000).eax >= 0x8000_0001
        && core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 27) != 0
}
