//! A VM on real VT-x: guest RAM, EPT, one hardware vCPU, the COM1 UART, exit counters and
//! the life cycle, driven in preemption-timer-bounded slices by the kernel's main loop.
//!
//! This is the bare-metal composition of the portable pieces: [`GuestRam`] and
//! [`EptTables`] for memory (only guest RAM is mapped; the hypervisor is unreachable),
//! [`pvh`](super::pvh) for the boot image, [`handle_exit`] for every exit, the
//! [`Uart16550`] behind the port bus, [`ExitCounters`] per VM.

use alloc::format;
use alloc::string::String;
use core::fmt;

use super::console_out::{LineOutput, LineSink};
use super::cpuid::CpuidResult;
use super::exit_counters::ExitCounters;
use super::exit_handler::{CrashReason, ExitAction, HostCpu, PortBus, VcpuEmulation, handle_exit};
use super::guest_ram::{GuestRam, GuestRamError};
use super::msr::SWITCHED_ON_VCPU_CHANGE;
use super::pvh::{PvhError, START_INFO_GPA, build_boot_params, parse_elf};
use super::state::{InvalidTransition, TransitionEffect, VmCommand, VmState, transition};
use super::uart16550::{self, NoInterrupt, Uart16550};
use crate::vmx::ept::{EptError, EptTables, MemoryType, PAGE_SIZE, Permissions};
use crate::vmx::error::VmxError;
use crate::vmx::frames::{FrameSource, FrameTables};
use crate::vmx::hw::VmxOn;
use crate::vmx::hw::instr;
use crate::vmx::hw::vcpu::HwVcpu;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::{control, exit_info, guest};

/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// Most distinct pages outside RAM a guest may touch before it is stopped.
pub const MAX_UNMAPPED_PAGES: u32 = 64;

/// Why a VM could not be created or commanded.
#[derive(Debug)]
pub enum MachineError {
    /// The guest image is not a valid PVH ELF for this RAM size.
    Image(PvhError),
    /// Guest RAM could not be allocated or written.
    Ram(GuestRamError),
    /// Building the EPT failed.
    Ept(EptError),
    /// A VMX instruction failed.
    Vmx(VmxError),
    /// The command does not apply in the current state.
    Transition(InvalidTransition),
}

impl fmt::Display for MachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image(e) => write!(f, "{e}"),
            Self::Ram(e) => write!(f, "{e}"),
            Self::Ept(e) => write!(f, "{e}"),
            Self::Vmx(e) => write!(f, "{e}"),
            Self::Transition(e) => write!(f, "{e}"),
        }
    }
}

impl From<VmxError> for MachineError {
    fn from(e: VmxError) -> Self {
        Self::Vmx(e)
    }
}

/// What one slice did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceOutcome {
    /// The slice ran to its end (or the guest is waiting).
    Ran {
        /// Exits handled in the slice.
        exits: u32,
    },
    /// The guest halted with nothing to wake it (no interrupt models yet).
    Halted,
    /// The VM crashed in this slice.
    Crashed(CrashReason),
    /// The VM is not in the running state.
    NotRunning,
}

/// The VM configuration the machine keeps to reboot.
struct BootImage {
    elf: &'static [u8],
    cmdline: String,
}

/// One VM on VT-x.
pub struct Machine<O: LineOutput> {
    name: String,
    state: VmState,
    boot: BootImage,
    ram: GuestRam,
    ept: EptTables,
    eptp: u64,
    vpid: u16,
    vcpu: Option<HwVcpu>,
    emu: VcpuEmulation,
    uart: Uart16550<NoInterrupt, LineSink<O>>,
    counters: ExitCounters,
    void_frame: Option<u64>,
    unmapped_pages: u32,
    halted: bool,
    crash: Option<CrashReason>,
    syscall_msrs: [u64; SWITCHED_ON_VCPU_CHANGE.len()],
}

struct Bus<'a, O: LineOutput>(&'a mut Uart16550<NoInterrupt, LineSink<O>>);

impl<O: LineOutput> PortBus for Bus<'_, O> {
    fn read(&mut self, port: u16, _size: u8) -> Option<u32> {
        let offset = port.checked_sub(COM1)?;
        (offset < uart16550::PORT_COUNT).then(|| u32::from(self.0.read(offset as u8)))
    }

    fn write(&mut self, port: u16, _size: u8, value: u32) -> bool {
        match port.checked_sub(COM1) {
            Some(offset) if offset < uart16550::PORT_COUNT => {
                self.0.write(offset as u8, value.to_le_bytes()[0]);
                true
            }
            _ => false,
        }
    }
}

struct HwHost {
    xsave: bool,
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
        // No TSC offset is programmed yet: the guest sees the host TSC.
        // SAFETY: RDTSC is unprivileged and CR4.TSD is clear in the hypervisor.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    fn set_xcr0(&mut self, value: u64) {
        if self.xsave {
            // SAFETY: `handle_exit` validated `value` against `supported_xcr0`, and
            // `vmx::hw::enable` set CR4.OSXSAVE when the CPU has XSAVE.
            unsafe { instr::xsetbv(0, value) };
        }
    }

    fn supported_xcr0(&self) -> u64 {
        if !self.xsave {
            return 1;
        }
        let r = core::arch::x86_64::__cpuid_count(0xd, 0);
        u64::from(r.eax) | (u64::from(r.edx) << 32)
    }
}

fn host_has_xsave() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 26) != 0
}

impl<O: LineOutput> Machine<O> {
    /// Create a VM named `name` with `ram_bytes` of RAM booting the PVH ELF `elf` with
    /// `cmdline`; its guest output goes to `out`, line by line. `vpid` must be unique
    /// among live VMs (1..=0xffff). The VM starts in [`VmState::Created`].
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        name: &str,
        elf: &'static [u8],
        ram_bytes: u64,
        cmdline: &str,
        vpid: u16,
        out: O,
    ) -> Result<Self, MachineError> {
        parse_elf(elf, ram_bytes).map_err(MachineError::Image)?;
        build_boot_params(ram_bytes, cmdline).map_err(MachineError::Image)?;
        let ram = GuestRam::allocate(frames, ram_bytes).map_err(MachineError::Ram)?;
        let mut tables = FrameTables(frames);
        let ept = match EptTables::new(&mut tables) {
            Ok(ept) => ept,
            Err(e) => {
                ram.free(frames);
                return Err(MachineError::Ept(e));
            }
        };
        let mut machine = Self {
            name: name.into(),
            state: VmState::Created,
            boot: BootImage {
                elf,
                cmdline: cmdline.into(),
            },
            eptp: ept.eptp(vmx.config.ept.accessed_dirty),
            ram,
            ept,
            vpid,
            vcpu: None,
            emu: VcpuEmulation::default(),
            uart: Uart16550::new(NoInterrupt, LineSink::new(name, out)),
            counters: ExitCounters::default(),
            void_frame: None,
            unmapped_pages: 0,
            halted: false,
            crash: None,
            syscall_msrs: [0; SWITCHED_ON_VCPU_CHANGE.len()],
        };
        if let Err(e) = machine.map_ram(frames) {
            machine.destroy(vmx, frames);
            return Err(e);
        }
        Ok(machine)
    }

    fn map_ram(&mut self, frames: &mut impl FrameSource) -> Result<(), MachineError> {
        let mut tables = FrameTables(frames);
        self.ram
            .map_into(&mut self.ept, &mut tables)
            .map_err(MachineError::Ept)
    }

    /// Load the image and boot parameters into (zeroed) RAM and create a fresh vCPU.
    fn boot(&mut self, vmx: &mut VmxOn, frames: &mut impl FrameSource) -> Result<(), MachineError> {
        if let Some(old) = self.vcpu.take() {
            old.destroy(vmx, frames)?;
        }
        let size = self.ram.size();
        self.ram
            .fill(frames, 0, size, 0)
            .map_err(MachineError::Ram)?;
        let image = parse_elf(self.boot.elf, size).map_err(MachineError::Image)?;
        let ram = &self.ram;
        let src = &*frames;
        image
            .load(
                self.boot.elf,
                |gpa, bytes| ram.write(src, gpa, bytes),
                |gpa, len| ram.fill(src, gpa, len, 0),
            )
            .map_err(MachineError::Image)?;
        let params = build_boot_params(size, &self.boot.cmdline).map_err(MachineError::Image)?;
        self.ram
            .write(frames, params.gpa, &params.bytes)
            .map_err(MachineError::Ram)?;
        vmx.invept(self.eptp)?;
        self.vcpu = Some(HwVcpu::new(
            vmx,
            frames,
            self.eptp,
            self.vpid,
            image.entry,
            START_INFO_GPA as u32,
        )?);
        self.emu = VcpuEmulation::default();
        self.counters = ExitCounters::default();
        self.halted = false;
        self.crash = None;
        self.syscall_msrs = [0; SWITCHED_ON_VCPU_CHANGE.len()];
        Ok(())
    }

    /// Apply an operator command (`vm start|pause|resume|stop`).
    pub fn command(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        command: VmCommand,
    ) -> Result<(), MachineError> {
        let (next, effect) = transition(self.state, command).map_err(MachineError::Transition)?;
        if effect == TransitionEffect::Boot {
            self.boot(vmx, frames)?;
        }
        self.state = next;
        Ok(())
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Life-cycle state.
    pub fn state(&self) -> VmState {
        self.state
    }

    /// Exit counters of the current boot.
    pub fn counters(&self) -> &ExitCounters {
        &self.counters
    }

    /// Why the VM crashed, if it did.
    pub fn crash_reason(&self) -> Option<CrashReason> {
        self.crash
    }

    /// RAM size in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram.size()
    }

    /// Feed console input to the guest's UART; returns how many bytes it took.
    pub fn serial_input(&mut self, bytes: &[u8]) -> usize {
        self.uart.receive(bytes)
    }

    fn say(&mut self, line: &str) {
        let name = self.name.clone();
        self.uart.sink_mut().output_mut().line(&name, line);
    }

    /// Run the vCPU for at most `slice_ticks` TSC ticks.
    pub fn run_slice(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        slice_ticks: u64,
    ) -> Result<SliceOutcome, VmxError> {
        if self.state != VmState::Running {
            return Ok(SliceOutcome::NotRunning);
        }
        if self.halted {
            return Ok(SliceOutcome::Halted);
        }
        let Some(mut vcpu) = self.vcpu.take() else {
            return Ok(SliceOutcome::NotRunning);
        };
        let result = self.run_vcpu(vmx, frames, &mut vcpu, slice_ticks);
        self.vcpu = Some(vcpu);
        let outcome = result?;
        if let SliceOutcome::Crashed(reason) = outcome {
            self.crash = Some(reason);
            self.state = VmState::Crashed;
            self.uart.sink_mut().flush();
            let dump = self.state_dump(vmx);
            self.say(&format!("CRASHED: {reason}"));
            self.say(&dump);
        }
        Ok(outcome)
    }

    fn run_vcpu(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        vcpu: &mut HwVcpu,
        slice_ticks: u64,
    ) -> Result<SliceOutcome, VmxError> {
        let mut host = HwHost {
            xsave: host_has_xsave(),
        };
        host.set_xcr0(self.emu.xcr0);
        self.load_syscall_msrs();
        let start = host.guest_tsc();
        let mut exits = 0u32;
        let outcome = loop {
            let elapsed = host.guest_tsc().wrapping_sub(start);
            if elapsed >= slice_ticks {
                break SliceOutcome::Ran { exits };
            }
            let (exit, raw) = vcpu.run_slice(vmx, slice_ticks - elapsed)?;
            exits += 1;
            self.counters.record(raw.basic_reason());
            let cfg = vmx.config;
            let emu = &mut self.emu;
            let uart = &mut self.uart;
            let action = vcpu.with_vmcs(vmx, |vmcs, regs| {
                handle_exit(exit, &raw, vmcs, regs, emu, &cfg, &mut host, &mut Bus(uart))
            })?;
            match action {
                ExitAction::Continue => {}
                ExitAction::SliceEnd => break SliceOutcome::Ran { exits },
                ExitAction::Halted => {
                    self.halted = true;
                    break SliceOutcome::Halted;
                }
                ExitAction::Unmapped { gpa, write } => {
                    if let Err(reason) = self.map_void_page(vmx, frames, gpa, write) {
                        break SliceOutcome::Crashed(reason);
                    }
                }
                // Nothing is write-protected until migration's dirty tracking exists.
                ExitAction::DirtyWrite { gpa } => {
                    break SliceOutcome::Crashed(CrashReason::Unhandled {
                        reason: crate::vmx::exit::reason::EPT_VIOLATION,
                        qualification: gpa,
                    });
                }
                ExitAction::Crash(reason) => break SliceOutcome::Crashed(reason),
            }
        };
        self.save_syscall_msrs();
        // Restore the host's XCR0 (x87 only: the hypervisor is soft-float).
        host.set_xcr0(1);
        Ok(outcome)
    }

    /// An access outside guest RAM: back that page with this VM's single "void" frame
    /// (so the guest continues, and whatever it writes there stays inside its own
    /// allocation), up to [`MAX_UNMAPPED_PAGES`] distinct pages.
    fn map_void_page(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        gpa: u64,
        write: bool,
    ) -> Result<(), CrashReason> {
        let page = gpa & !(PAGE_SIZE - 1);
        let crash = CrashReason::Unhandled {
            reason: crate::vmx::exit::reason::EPT_VIOLATION,
            qualification: gpa,
        };
        self.unmapped_pages += 1;
        if self.unmapped_pages > MAX_UNMAPPED_PAGES {
            return Err(crash);
        }
        self.say(&format!(
            "[tern] {} outside guest RAM at {gpa:#x}: backed by a scratch page ({} of {})",
            if write { "write" } else { "read" },
            self.unmapped_pages,
            MAX_UNMAPPED_PAGES
        ));
        let void = match self.void_frame {
            Some(f) => f,
            None => {
                let f = frames.allocate_zeroed().ok_or(crash)?;
                self.void_frame = Some(f);
                f
            }
        };
        let mut tables = FrameTables(frames);
        let rw = Permissions {
            read: true,
            write: true,
            execute: false,
        };
        self.ept
            .map(
                &mut tables,
                page,
                void,
                PAGE_SIZE,
                rw,
                MemoryType::WriteBack,
            )
            .map_err(|_| crash)?;
        vmx.invept(self.eptp).map_err(|_| crash)
    }

    fn load_syscall_msrs(&self) {
        for (msr, value) in SWITCHED_ON_VCPU_CHANGE.iter().zip(self.syscall_msrs) {
            // SAFETY: these MSRs exist on every x86-64 CPU; the values are the guest's own
            // (saved from hardware after its last slice, or 0), and the hypervisor does not
            // use SYSCALL/SWAPGS/RDTSCP itself.
            unsafe { instr::wrmsr(*msr, value) };
        }
    }

    fn save_syscall_msrs(&mut self) {
        for (slot, msr) in self.syscall_msrs.iter_mut().zip(SWITCHED_ON_VCPU_CHANGE) {
            // SAFETY: as in `load_syscall_msrs`.
            *slot = unsafe { instr::rdmsr(msr) };
        }
    }

    /// A one-line register dump of the vCPU for crash reports.
    pub fn state_dump(&mut self, vmx: &mut VmxOn) -> String {
        let Some(vcpu) = self.vcpu.as_mut() else {
            return String::from("(no vCPU)");
        };
        let dump = vcpu.with_vmcs(vmx, |vmcs, regs| {
            Ok(format!(
                "rip={:#x} rsp={:#x} rflags={:#x} cr0={:#x} cr3={:#x} cr4={:#x} efer={:#x} \
                 exit_reason={:#x} qualification={:#x} {regs:?}",
                vmcs.read_natural(guest::RIP)?,
                vmcs.read_natural(guest::RSP)?,
                vmcs.read_natural(guest::RFLAGS)?,
                vmcs.read_natural(control::CR0_READ_SHADOW)?,
                vmcs.read_natural(guest::CR3)?,
                vmcs.read_natural(control::CR4_READ_SHADOW)?,
                vmcs.read64(guest::IA32_EFER)?,
                vmcs.read32(exit_info::EXIT_REASON)?,
                vmcs.read_natural(exit_info::QUALIFICATION)?,
            ))
        });
        dump.unwrap_or_else(|e| format!("(state unreadable: {e})"))
    }

    /// `vm info` text.
    pub fn write_info(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        writeln!(
            out,
            "{}: {} ram={} MiB vpid={} exits={}",
            self.name,
            self.state.name(),
            self.ram.size() >> 20,
            self.vpid,
            self.counters.total()
        )?;
        if let Some(reason) = self.crash {
            writeln!(out, "  crashed: {reason}")?;
        }
        for (reason, name, count) in self.counters.nonzero() {
            writeln!(out, "  exit {reason:>2} {name:<24} {count}")?;
        }
        Ok(())
    }

    /// Free everything: vCPU, EPT tables, RAM, the void frame.
    pub fn destroy(mut self, vmx: &mut VmxOn, frames: &mut impl FrameSource) {
        if let Some(vcpu) = self.vcpu.take() {
            // Best effort on teardown: a VMCLEAR failure leaves one frame unreturned.
            let _ = vcpu.destroy(vmx, frames);
        }
        let _ = vmx.invept(self.eptp);
        self.ept.destroy(&mut FrameTables(frames));
        if let Some(f) = self.void_frame {
            frames.free(f);
        }
        self.ram.free(frames);
    }
}
