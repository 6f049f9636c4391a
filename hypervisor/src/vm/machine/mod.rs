//! A VM on real VT-x: guest RAM, EPT, one hardware vCPU, the COM1 UART, exit counters and
//! the life cycle, driven in preemption-timer-bounded slices by the kernel's main loop.
//!
//! This is the bare-metal composition of the portable pieces: [`GuestRam`] and
//! [`EptTables`] for memory (only guest RAM is mapped; the hypervisor is unreachable),
//! [`pvh`](super::pvh) for the boot image, [`handle_exit`] for every exit, the
//! [`Uart16550`] behind the port bus, [`ExitCounters`] per VM.

use alloc::format;
use alloc::string::String;

mod boot_image;
mod devices;
mod digest;
mod disk;
mod error;
mod guest_fpu;
mod interrupt_path;
mod managed;
mod migration;
mod mmio_exit;
mod outside_ram;
mod pml;
mod power;
mod report;
mod snapshot;

use boot_image::BootImage;
pub use boot_image::GuestImage;
pub use devices::{COM1, host_cpuid, host_offer};
pub use error::MachineError;
use guest_fpu::GuestFpu;
pub use guest_fpu::host_layout;
pub use managed::{MachineContext, ManagedMachine};
pub use migration::MigrationHooks;
pub use snapshot::SnapshotError;

use devices::{Bus, HwHost, host_has_rdtscp, host_has_xsave};
use mmio_exit::MmioExit;

use crate::arch::cpu::{rdmsr, wrmsr};
use crate::storage::VmDisk;
use crate::vm::board::Board;
use crate::vm::console_out::{LineOutput, LineSink};
use crate::vm::cpu_model::FeatureMasks;
use crate::vm::exit_counters::ExitCounters;
use crate::vm::exit_handler::{CrashReason, ExitAction, HostCpu, VcpuEmulation, handle_exit};
use crate::vm::guest_ram::GuestRam;
use crate::vm::interrupts::injector::GuestInterruptibility;
use crate::vm::msr::SWITCHED_ON_VCPU_CHANGE;
use crate::vm::msr::index::IA32_TSC_AUX;
use crate::vm::state::{TransitionEffect, VmCommand, VmState, transition};
use crate::vm::uart16550::{NoInterrupt, Uart16550};
use crate::vm::virtio_blk::VirtioBlkMmio;
use crate::vmx::ept::{EptTables, GUEST_PHYS_LIMIT};
use crate::vmx::error::VmxError;
use crate::vmx::frames::{FrameSource, FrameTables};
use crate::vmx::hw::VmxOn;
use crate::vmx::hw::vcpu::HwVcpu;

pub use outside_ram::MAX_UNMAPPED_PAGES;

/// What one slice did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceOutcome {
    /// The slice ran to its end (or the guest is waiting).
    Ran {
        /// Exits handled in the slice.
        exits: u32,
    },
    /// The guest executed HLT: the rest of its slice is given up (see [`Machine::run_slice`]).
    Halted,
    /// The VM crashed in this slice.
    Crashed(CrashReason),
    /// The VM is not in the running state.
    NotRunning,
    /// The guest powered itself off (ACPI S5, `power.rs`): the VM is now stopped.
    PoweredOff,
}

/// One VM on VT-x.
pub struct Machine<O: LineOutput> {
    pub(super) name: String,
    pub(super) state: VmState,
    boot: BootImage,
    pub(super) ram: GuestRam,
    ept: EptTables,
    eptp: u64,
    pub(super) vpid: u16,
    pub(super) vcpu: Option<HwVcpu>,
    pub(super) emu: VcpuEmulation,
    uart: Uart16550<NoInterrupt, LineSink<O>>,
    pub(super) counters: ExitCounters,
    void_frame: Option<u64>,
    unmapped_pages: u32,
    pub(super) crash: Option<CrashReason>,
    pub(super) syscall_msrs: [u64; SWITCHED_ON_VCPU_CHANGE.len()],
    pub(super) tsc_offset: u64,
    /// Slices run since the last boot (`vm info`).
    pub(super) slices: u64,
    /// Dirty tracking and throttle while the VM migrates.
    pub(super) migration: MigrationHooks,
    /// x87/SSE/AVX registers and CR2 while the vCPU does not run.
    pub(super) fpu: GuestFpu,
    /// Interrupt controllers, PIT and RTC (see `interrupt_path.rs`).
    pub(super) board: Board,
    /// The vCPU sleeps in HLT, with the interruptibility it halted with.
    pub(super) halted: Option<GuestInterruptibility>,
    /// Polls that found the vCPU asleep in HLT and did not enter it (`vm info`).
    pub(super) halt_skips: u64,
    /// The VM's virtio-blk disk (`[vm] disk =`), if it has one (`disk.rs`).
    pub(super) disk: Option<VirtioBlkMmio<VmDisk>>,
    /// How the last `block_migrate` ended (`info block`).
    pub(super) block_migrate_outcome: Option<crate::storage::mirror::MirrorOutcome>,
}

impl<O: LineOutput> Machine<O> {
    /// Create a VM named `name` with `ram_bytes` of RAM booting `image` (a PVH ELF or a Linux
    /// kernel + initrd) with `cmdline` (passed to the guest exactly as given); its guest output goes to `out`, line
    /// by line. `vpid` must be unique among live VMs (1..=0xffff). `tsc_khz` is the TSC rate
    /// the VM is shown through CPUID (the host's calibrated rate); it stays the VM's for its
    /// life, across reboots and migrations. The VM starts in [`VmState::Created`].
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        name: &str,
        image: GuestImage,
        ram_bytes: u64,
        cmdline: &str,
        vpid: u16,
        tsc_khz: u32,
        out: O,
    ) -> Result<Self, MachineError> {
        let fpu = GuestFpu::at_reset().map_err(MachineError::Xsave)?;
        let boot = BootImage {
            image,
            cmdline: cmdline.into(),
        };
        boot.check(ram_bytes)?;
        let memory = Self::allocate_memory(frames, ram_bytes)?;
        let mut machine = Self::assemble(
            vmx,
            name,
            VmState::Created,
            boot,
            memory,
            vpid,
            tsc_khz,
            out,
            fpu,
        );
        if let Err(e) = machine.map_ram(frames) {
            machine.destroy(vmx, frames);
            return Err(e);
        }
        Ok(machine)
    }

    /// A VM's RAM and its (empty) EPT, or nothing allocated.
    fn allocate_memory(
        frames: &mut impl FrameSource,
        ram_bytes: u64,
    ) -> Result<(GuestRam, EptTables), MachineError> {
        let ram = GuestRam::allocate(frames, ram_bytes).map_err(MachineError::Ram)?;
        match EptTables::new(&mut FrameTables(frames)) {
            Ok(ept) => Ok((ram, ept)),
            Err(e) => {
                ram.free(frames);
                Err(MachineError::Ept(e))
            }
        }
    }

    /// The one place a `Machine` value is put together (a booted VM and an incoming one
    /// differ only in `state` and `boot`): no vCPU yet, RAM not yet mapped.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        vmx: &VmxOn,
        name: &str,
        state: VmState,
        boot: BootImage,
        (ram, ept): (GuestRam, EptTables),
        vpid: u16,
        tsc_khz: u32,
        out: O,
        fpu: GuestFpu,
    ) -> Self {
        let ram_bytes = ram.size();
        Self {
            name: name.into(),
            state,
            boot,
            eptp: ept.eptp(vmx.config.ept.accessed_dirty),
            ram,
            ept,
            vpid,
            vcpu: None,
            emu: VcpuEmulation::at_reset(tsc_khz, FeatureMasks::all()),
            uart: Uart16550::new(NoInterrupt, LineSink::new(name, out)),
            counters: ExitCounters::default(),
            void_frame: None,
            unmapped_pages: 0,
            crash: None,
            syscall_msrs: [0; SWITCHED_ON_VCPU_CHANGE.len()],
            tsc_offset: 0,
            slices: 0,
            migration: MigrationHooks::default(),
            fpu,
            board: Board::new(tsc_khz, ram_bytes, 0, 0),
            halted: None,
            halt_skips: 0,
            disk: None,
            block_migrate_outcome: None,
        }
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
        // Scratch-page mappings of the previous boot go: a fresh boot starts with only
        // guest RAM mapped (the INVEPT below flushes them).
        self.ept
            .unmap(&mut FrameTables(frames), size, GUEST_PHYS_LIMIT - size)
            .map_err(MachineError::Ept)?;
        self.unmapped_pages = 0;
        if let Some(f) = self.void_frame {
            self.ram_fill_frame(frames, f);
        }
        self.ram
            .fill(frames, 0, size, 0)
            .map_err(MachineError::Ram)?;
        let disk = self
            .disk
            .is_some()
            .then_some(crate::vm::virtio_blk::placement::DISK_ACPI_DEVICE);
        let entry = self.boot.load(&self.ram, &*frames, disk)?;
        vmx.invept(self.eptp)?;
        self.vcpu = Some(HwVcpu::new(vmx, frames, self.eptp, self.vpid, &entry)?);
        // A reboot resets the disk's transport like a power cycle (its contents stay).
        if let Some(disk) = self.disk.as_mut() {
            disk.reset();
        }
        // A reboot resets the vCPU but not the VM's TSC rate or CPU model.
        self.emu = VcpuEmulation::at_reset(self.emu.tsc_khz, self.emu.features);
        self.counters = ExitCounters::default();
        self.crash = None;
        self.syscall_msrs = [0; SWITCHED_ON_VCPU_CHANGE.len()];
        self.fpu.reset();
        self.tsc_offset = 0;
        self.slices = 0;
        let now = HwHost {
            xsave: false,
            tsc_offset: 0,
        }
        .guest_tsc();
        self.board = Board::new(self.emu.tsc_khz, size, now, 0);
        self.halted = None;
        self.halt_skips = 0;
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

    /// Slices run since the last boot.
    pub fn slices(&self) -> u64 {
        self.slices
    }

    /// Run the vCPU for at most `slice_ticks` TSC ticks.
    ///
    /// HLT ends the slice early, and the vCPU then sleeps: later slices return
    /// [`SliceOutcome::Halted`] without entering the guest until an interrupt or NMI can
    /// wake it (`interrupt_path.rs`); timers are brought up to date at each such poll.
    pub fn run_slice(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        slice_ticks: u64,
    ) -> Result<SliceOutcome, VmxError> {
        if self.state != VmState::Running {
            return Ok(SliceOutcome::NotRunning);
        }
        if self.throttle_skips_slice() {
            // Auto-converge: this slice is taken away from the guest.
            return Ok(SliceOutcome::Halted);
        }
        let now = HwHost {
            xsave: false,
            tsc_offset: self.tsc_offset,
        }
        .guest_tsc();
        if self.sleeps(now) {
            return Ok(SliceOutcome::Halted);
        }
        let Some(mut vcpu) = self.vcpu.take() else {
            return Ok(SliceOutcome::NotRunning);
        };
        self.slices = self.slices.saturating_add(1);
        let result = self.run_vcpu(vmx, frames, &mut vcpu, slice_ticks);
        self.vcpu = Some(vcpu);
        self.poll_disk(frames);
        let outcome = result?;
        if outcome == SliceOutcome::PoweredOff {
            self.on_power_off();
        }
        if let SliceOutcome::Crashed(reason) = outcome {
            self.crash = Some(reason);
            // A failed VM entry leaves the guest state as it was (SDM Vol. 3C §27.8): the
            // guest never ran, so keep it paused with its state (it may have just arrived
            // by migration, with no other copy left) rather than crash it.
            let entry_failed = matches!(reason, CrashReason::EntryFailure(_));
            self.state = if entry_failed {
                VmState::Paused
            } else {
                VmState::Crashed
            };
            self.uart.sink_mut().flush();
            let dump = self.state_dump(vmx);
            self.say(&format!("CRASHED: {reason}"));
            self.say(&dump);
            if entry_failed {
                self.say(
                    "kept PAUSED with its state (the guest did not run): vm info shows it; \
                     migrate it to a host that can run it",
                );
            }
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
            tsc_offset: self.tsc_offset,
        };
        self.fpu.enter(&mut host, self.emu.xcr0);
        self.load_syscall_msrs();
        // Whatever the slice's end (a VMX failure included), the guest's registers are
        // saved and the host's XCR0 comes back.
        let outcome = self.run_exits(vmx, frames, vcpu, slice_ticks, &mut host);
        self.save_syscall_msrs();
        self.fpu.leave(&mut host);
        outcome
    }

    /// The entries and exits of one slice (the guest's registers are loaded).
    fn run_exits(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        vcpu: &mut HwVcpu,
        slice_ticks: u64,
        host: &mut HwHost,
    ) -> Result<SliceOutcome, VmxError> {
        let start = host.guest_tsc();
        let mut exits = 0u32;
        let outcome = loop {
            let elapsed = host.guest_tsc().wrapping_sub(start);
            if elapsed >= slice_ticks {
                break SliceOutcome::Ran { exits };
            }
            let budget = self.before_entry(vmx, vcpu, host.guest_tsc(), slice_ticks - elapsed)?;
            let (exit, raw) = vcpu.run_slice(vmx, budget)?;
            exits += 1;
            self.counters.record(raw.basic_reason());
            if let Err(reason) = self.after_exit(vmx, vcpu, raw.qualification)? {
                break SliceOutcome::Crashed(reason);
            }
            let cfg = vmx.config;
            let emu = &mut self.emu;
            let mut bus = Bus {
                uart: &mut self.uart,
                board: &mut self.board,
                now: host.guest_tsc(),
            };
            let action = vcpu.with_vmcs(vmx, |vmcs, regs| {
                handle_exit(exit, &raw, vmcs, regs, emu, &cfg, host, &mut bus)
            })?;
            // A write of IA32_TSC_ADJUST moves the offset (`vm::msr`); keep the VM's copy.
            self.tsc_offset = host.tsc_offset;
            match action {
                ExitAction::Continue => {}
                ExitAction::SliceEnd => break SliceOutcome::Ran { exits },
                // Sleep until an interrupt or timer wakes the vCPU (`interrupt_path.rs`).
                ExitAction::Halted => {
                    self.enter_halt(vmx, vcpu)?;
                    break SliceOutcome::Halted;
                }
                ExitAction::Unmapped { gpa, write } => {
                    match self.mmio_exit(vmx, frames, vcpu, gpa)? {
                        MmioExit::Done => {}
                        MmioExit::Crash(reason) => break SliceOutcome::Crashed(reason),
                        MmioExit::NotADevice => {
                            if let Err(reason) = self.map_void_page(vmx, frames, gpa, write) {
                                break SliceOutcome::Crashed(reason);
                            }
                        }
                    }
                }
                // Dirty tracking (see `migration.rs`): record the page, make it writable,
                // retry the write; without tracking this crashes the VM.
                ExitAction::PmlFull => {
                    if let Err(reason) = self.on_pml_full(vmx, frames, vcpu) {
                        break SliceOutcome::Crashed(reason);
                    }
                }
                ExitAction::DirtyWrite { gpa } => {
                    if let Err(reason) = self.on_dirty_write(frames, gpa) {
                        break SliceOutcome::Crashed(reason);
                    }
                }
                ExitAction::Crash(reason) => break SliceOutcome::Crashed(reason),
            }
            if self.guest_powered_off() {
                break SliceOutcome::PoweredOff;
            }
        };
        Ok(outcome)
    }

    fn load_syscall_msrs(&self) {
        let rdtscp = host_has_rdtscp();
        for (msr, value) in SWITCHED_ON_VCPU_CHANGE.iter().zip(self.syscall_msrs) {
            if *msr == IA32_TSC_AUX && !rdtscp {
                continue;
            }
            // SAFETY: STAR/LSTAR/CSTAR/FMASK/KERNEL_GS_BASE exist on every x86-64 CPU and
            // TSC_AUX when RDTSCP does (checked); the values are either read back from
            // hardware after the guest's last slice, 0, or loaded by `restore_vcpu_state`,
            // which refuses any value WRMSR would #GP on (`check_switched_msrs`: canonical
            // addresses, reserved bits clear) because those came from a peer. The
            // hypervisor does not use SYSCALL/SWAPGS/RDTSCP itself.
            unsafe { wrmsr(*msr, value) };
        }
    }

    fn save_syscall_msrs(&mut self) {
        let rdtscp = host_has_rdtscp();
        for (slot, msr) in self.syscall_msrs.iter_mut().zip(SWITCHED_ON_VCPU_CHANGE) {
            if msr == IA32_TSC_AUX && !rdtscp {
                continue;
            }
            // SAFETY: as in `load_syscall_msrs`.
            *slot = unsafe { rdmsr(msr) };
        }
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
