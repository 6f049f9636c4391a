//! The migration engines' traits over this kernel's VMs: [`SourceVm`] (a running
//! `Machine` being sent), [`KernelFactory`] / [`IncomingMachine`] (a blank `Machine` being
//! received), plus the CPU descriptor and session nonces.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use migration_proto::cpu::{CpuDescriptor, CpuidEntry};
use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::{DeviceState, VcpuState, VmIdentity};

use crate::arch::random::{self, HardwareRandom};
use crate::arch::tsc;
use crate::kernel::cpu_models::{host_cpuid, host_offer};
use crate::migration::destination::{IncomingVm, IncomingVmFactory};
use crate::migration::dirty::DirtyTrackingMode;
use crate::migration::nonce::{NonceInputs, session_nonce};
use crate::migration::source::MigratableVm;
use crate::migration::vm_error::VmError;
use crate::vm::board::Board;
use crate::vm::cpu_model::FeatureMasks;
use crate::vm::cpuid::{VcpuView, XCR0_OFFERED, guest_cpuid};
use crate::vm::machine::{Machine, MachineContext};
use crate::vm::state::{VmCommand, VmState};
use crate::vm::vcpu_state::entry_checks::{GuestStateLimits, check_guest_state};

use super::super::vms::{ConsoleLines, KernelFrames};

/// Device-state id of the COM1 UART.
pub const UART_DEVICE: &str = "com1";
/// Device-state id of the guest's console line in progress (bytes after the last newline).
pub const CONSOLE_LINE_DEVICE: &str = "com1-line";
/// Device-state id of the TSC rate the VM shows its guest (CPUID 0x4000_0010): u32 kHz LE.
pub const TSC_RATE_DEVICE: &str = "tsc-rate";
/// Device-state id of the VM's CPU model: its feature masks (`FeatureMasks::to_bytes`).
pub const CPU_MODEL_DEVICE: &str = "cpu-model";

/// A VM of this host while it is being sent.
pub struct SourceVm<'a> {
    pub machine: &'a mut Machine<ConsoleLines>,
    pub ctx: &'a mut MachineContext<KernelFrames>,
    /// Whether the migration paused it (so only then it resumes it).
    pub paused_here: &'a mut bool,
}

impl MigratableVm for SourceVm<'_> {
    fn identity(&self) -> VmIdentity {
        let hash = blake3::hash(self.machine.name().as_bytes());
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&hash.as_bytes()[..16]);
        VmIdentity {
            uuid,
            name: self.machine.name().into(),
            memory_bytes: self.machine.ram_bytes(),
            vcpu_count: 1,
        }
    }

    fn read_memory(&mut self, gpa: u64, out: &mut [u8]) -> Result<(), VmError> {
        self.machine
            .read_ram(&self.ctx.frames, gpa, out)
            .map_err(VmError::ReadMemory)
    }

    fn pause(&mut self) {
        if self.machine.state() == VmState::Running {
            let ctx = &mut *self.ctx;
            match self
                .machine
                .command(&mut ctx.vmx, &mut ctx.frames, VmCommand::Pause)
            {
                Ok(()) => *self.paused_here = true,
                Err(e) => log::error!("migrate: pausing {}: {e}", self.machine.name()),
            }
        }
    }

    fn resume(&mut self) {
        if *self.paused_here {
            let ctx = &mut *self.ctx;
            if let Err(e) = self
                .machine
                .command(&mut ctx.vmx, &mut ctx.frames, VmCommand::Resume)
            {
                log::error!("migrate: resuming {}: {e}", self.machine.name());
            }
            *self.paused_here = false;
        }
    }

    fn set_throttle(&mut self, percent: u8) {
        self.machine.set_throttle(percent);
    }

    fn set_dirty_limit(&mut self, pages_per_sec: Option<u64>) {
        let tsc_hz = crate::kernel::host::get().map_or(1_000_000_000, |h| h.tsc_hz);
        self.machine.set_dirty_limit(pages_per_sec, tsc_hz);
    }

    fn start_dirty_tracking(&mut self, mode: DirtyTrackingMode) -> Result<(), VmError> {
        let ctx = &mut *self.ctx;
        let used = self
            .machine
            .start_dirty_tracking(&mut ctx.vmx, &mut ctx.frames, mode)
            .map_err(|e| VmError::StartDirtyTracking(format!("{e}")))?;
        super::say(&alloc::format!(
            "migrate: dirty tracking by {}",
            match used {
                DirtyTrackingMode::Pml => "page-modification logging (PML)",
                DirtyTrackingMode::WriteProtect => "EPT write-protection",
            }
        ));
        Ok(())
    }

    fn harvest_dirty(&mut self) -> Result<DirtyBitmap, VmError> {
        let ctx = &mut *self.ctx;
        self.machine
            .harvest_dirty(&mut ctx.vmx, &mut ctx.frames)
            .map_err(|e| VmError::HarvestDirty(format!("{e}")))
    }

    fn stop_dirty_tracking(&mut self) {
        let ctx = &mut *self.ctx;
        self.machine
            .stop_dirty_tracking(&mut ctx.vmx, &mut ctx.frames);
    }

    fn vcpu_states(&mut self) -> Result<Vec<VcpuState>, VmError> {
        // The complete architectural state, in the protocol's format (`vm::vcpu_state`).
        let state = self
            .machine
            .save_vcpu_state(&mut self.ctx.vmx)
            .map_err(|e| VmError::SaveVcpu(format!("{e}")))?;
        Ok(vec![state])
    }

    fn device_states(&mut self) -> Result<Vec<DeviceState>, VmError> {
        let mut states = vec![
            DeviceState {
                id: UART_DEVICE.into(),
                version: 1,
                data: self.machine.uart_state(),
            },
            DeviceState {
                id: CONSOLE_LINE_DEVICE.into(),
                version: 1,
                data: self.machine.console_line(),
            },
            DeviceState {
                id: TSC_RATE_DEVICE.into(),
                version: 1,
                data: self.machine.tsc_khz().to_le_bytes().to_vec(),
            },
            DeviceState {
                id: CPU_MODEL_DEVICE.into(),
                version: 1,
                data: self.machine.cpu_features().to_bytes(),
            },
        ];
        // After `tsc-rate`: the destination loads these on the VM's clock.
        states.extend(
            self.machine
                .board_devices()
                .into_iter()
                .map(|d| DeviceState {
                    id: d.id.into(),
                    version: d.version.into(),
                    data: d.data,
                }),
        );
        Ok(states)
    }
}

/// A VM being received: its machine, plus the vCPU state to load before it runs
/// (loading needs VMX root, which the engine's traits do not carry).
pub struct IncomingMachine {
    pub machine: Machine<ConsoleLines>,
    /// The checked vCPU state, once it arrived.
    pub vcpu: Option<VcpuState>,
    /// This host's VMX limits, to check the incoming vCPU before the commit.
    pub limits: GuestStateLimits,
}

impl IncomingVm for IncomingMachine {
    fn page_mut(&mut self, gpa: u64) -> Option<&mut [u8]> {
        self.machine.ram_page_mut(&KernelFrames, gpa)
    }

    fn load_vcpu(&mut self, state: &VcpuState) -> Result<(), VmError> {
        if state.vcpu_index != 0 || self.vcpu.is_some() {
            return Err(VmError::UnexpectedVcpu {
                index: state.vcpu_index,
            });
        }
        // Before CommitAck: a state that cannot enter is refused now, while the source
        // still has the VM, naming the field (SDM Vol. 3C §27.3.1).
        check_guest_state(state, &self.limits).map_err(VmError::VcpuCannotEnter)?;
        self.vcpu = Some(state.clone());
        Ok(())
    }

    fn load_device(&mut self, state: &DeviceState) -> Result<(), VmError> {
        match (state.id.as_str(), state.version) {
            (UART_DEVICE, 1) => self
                .machine
                .load_uart_state(&state.data)
                .map_err(VmError::UartState),
            (CONSOLE_LINE_DEVICE, 1) if state.data.len() <= crate::vm::console_out::MAX_LINE => {
                self.machine.load_console_line(&state.data);
                Ok(())
            }
            (TSC_RATE_DEVICE, 1) => {
                let khz = <[u8; 4]>::try_from(state.data.as_slice())
                    .map(u32::from_le_bytes)
                    .map_err(|_| VmError::TscRateLength {
                        bytes: state.data.len(),
                    })?;
                self.machine.set_arriving_tsc_khz(khz);
                Ok(())
            }
            (CPU_MODEL_DEVICE, 1) => {
                let features =
                    FeatureMasks::from_bytes(&state.data).ok_or(VmError::CpuModelLength {
                        bytes: state.data.len(),
                    })?;
                // The offer check already refused a descriptor this host cannot match; this
                // holds even for a peer whose descriptor and model disagree.
                let missing = features.missing_from(&host_offer());
                if !missing.is_empty() {
                    return Err(VmError::CpuFeaturesMissing(missing));
                }
                self.machine.set_cpu_features(features);
                Ok(())
            }
            (id, version) if Board::owns_device(id, version) => self
                .machine
                .load_board_device(id, &state.data)
                .map_err(VmError::DeviceState),
            (id, version) => Err(VmError::UnknownDevice {
                id: id.into(),
                version,
            }),
        }
    }

    fn read_memory(&mut self, gpa: u64, out: &mut [u8]) -> Result<(), VmError> {
        self.machine
            .read_ram(&KernelFrames, gpa, out)
            .map_err(VmError::ReadMemory)
    }
}

/// Builds incoming machines in this host's VMX context.
pub struct KernelFactory<'a> {
    pub ctx: &'a mut MachineContext<KernelFrames>,
    pub vpid: u16,
    /// Names of the VMs this host has (an incoming VM must not clash).
    pub taken: Vec<String>,
}

impl IncomingVmFactory for KernelFactory<'_> {
    type Vm = IncomingMachine;

    fn create(&mut self, identity: &VmIdentity) -> Result<IncomingMachine, VmError> {
        if self
            .taken
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&identity.name))
        {
            return Err(VmError::NameTaken(identity.name.clone()));
        }
        if identity.vcpu_count != 1 {
            return Err(VmError::TooManyVcpus(identity.vcpu_count));
        }
        let ctx = &mut *self.ctx;
        let machine = Machine::create_incoming(
            &mut ctx.vmx,
            &mut ctx.frames,
            &identity.name,
            identity.memory_bytes,
            self.vpid,
            ConsoleLines,
        )
        .map_err(|e| VmError::Build(format!("{e}")))?;
        Ok(IncomingMachine {
            machine,
            vcpu: None,
            limits: GuestStateLimits::of_host(&ctx.vmx.config),
        })
    }

    fn discard(&mut self, vm: IncomingMachine) {
        let ctx = &mut *self.ctx;
        vm.machine.destroy(&mut ctx.vmx, &mut ctx.frames);
    }
}

/// The factory of a host that cannot run VMs (no VT-x): every offer is refused with the
/// reason, so the source's operator reads it in the `Abort` and the session ends at once
/// instead of holding the incoming slot.
pub struct NoVmFactory {
    pub why: String,
}

impl IncomingVmFactory for NoVmFactory {
    type Vm = IncomingMachine;

    fn create(&mut self, _identity: &VmIdentity) -> Result<IncomingMachine, VmError> {
        Err(VmError::NoVirtualization(self.why.clone()))
    }

    fn discard(&mut self, vm: IncomingMachine) {
        // `create` never succeeds, so there is never a machine to free; keep the memory
        // rather than guess at a VMX context that does not exist.
        log::error!("migrate: discarding '{}' without VT-x", vm.machine.name());
        core::mem::forget(vm);
    }
}

/// The CPU a guest with CPU-model `features` sees (the same policy `handle_exit` applies to
/// CPUID): what a source offers for its VM, and, with this host's whole offer, what a
/// destination can give.
pub fn cpu_descriptor(features: FeatureMasks) -> CpuDescriptor {
    const LEAVES: [u32; 8] = [
        0,
        1,
        7,
        0xd,
        0x8000_0000,
        0x8000_0001,
        0x8000_0007,
        0x8000_0008,
    ];
    let view = VcpuView {
        apic_id: 0,
        cr4_osxsave: false,
        // The rate leaves are not among LEAVES: the VM's rates travel with it.
        tsc_khz: 0,
        apic_timer_khz: 0,
        features,
    };
    let cpuid = LEAVES
        .iter()
        .map(|&leaf| {
            let g = guest_cpuid(leaf, 0, host_cpuid(leaf, 0), view);
            CpuidEntry {
                leaf,
                subleaf: 0,
                eax: g.eax,
                ebx: g.ebx,
                ecx: g.ecx,
                edx: g.edx,
            }
        })
        .collect();
    CpuDescriptor {
        cpuid,
        xcr0_supported: XCR0_OFFERED & features.xcr0(),
        feature_msrs: Vec::new(),
    }
}

/// A session nonce (`migration::nonce`): 256 bits of RDSEED/RDRAND when the CPU delivers
/// them, mixed with the TSC, a per-boot counter and the host name; returns which hardware
/// source was used, if any.
pub fn nonce(counter: u64, host_name: &str) -> ([u8; 32], Option<HardwareRandom>) {
    let mut words = [0u64; 4];
    let mut source = None;
    for w in &mut words {
        match random::random_u64() {
            Some((v, s)) => {
                *w = v;
                source = Some(s);
            }
            None => {
                source = None;
                break;
            }
        }
    }
    let inputs = NonceInputs {
        hardware: source.map(|_| words),
        tsc: tsc::rdtsc(),
        counter,
        host_name,
    };
    (session_nonce(&inputs), source)
}
