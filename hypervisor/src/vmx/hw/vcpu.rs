//! A hardware vCPU: its VMCS, bitmaps and registers, created for a PVH entry and run in
//! slices bounded by the VMX preemption timer.

use super::entry::{self, exit_landing_address};
use super::instr::{self, segment_state};
use super::{LoadedVmcs, Vmcs, VmxOn};
use crate::arch::cpu::rdmsr;
use crate::vm::msr::{PASSTHROUGH_VMCS, SWITCHED_ON_VCPU_CHANGE};
use crate::vmx::bitmaps::{BITMAP_BYTES, build_io_bitmaps, build_msr_bitmap};
use crate::vmx::caps::preemption_timer_value;
use crate::vmx::error::VmxError;
use crate::vmx::exit::{RawExit, VmExit};
use crate::vmx::frames::FrameSource;
use crate::vmx::regs::GuestRegisters;
use crate::vmx::setup::{
    ControlAddresses, GuestEntry, HostState, tss_base, write_controls, write_guest_entry_state,
    write_host_state,
};
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::guest;

const IA32_SYSENTER_CS: u32 = 0x174;
const IA32_SYSENTER_ESP: u32 = 0x175;
const IA32_SYSENTER_EIP: u32 = 0x176;
const IA32_PAT: u32 = 0x277;
const IA32_EFER: u32 = 0xc000_0080;
const IA32_FS_BASE: u32 = 0xc000_0100;
const IA32_GS_BASE: u32 = 0xc000_0101;

/// Capture the running hypervisor's state for the host-state area.
pub fn capture_host_state() -> HostState {
    let seg = segment_state();
    let tr_index = u64::from(seg.tr & !0x7);
    // SAFETY: TR selects a TSS descriptor (16 bytes in long mode) inside the GDT, which is
    // mapped: SGDT returned its linear address and the CPU uses it right now.
    let (low, high) = unsafe {
        let desc = (seg.gdt_base + tr_index) as *const u64;
        (desc.read_unaligned(), desc.add(1).read_unaligned())
    };
    // SAFETY: these MSRs exist on every x86-64 CPU with VMX.
    let msr = |m| unsafe { rdmsr(m) };
    HostState {
        cr0: instr::read_cr0(),
        cr3: instr::read_cr3(),
        cr4: instr::read_cr4(),
        cs: seg.cs,
        ss: seg.ss,
        ds: seg.ds,
        es: seg.es,
        fs: seg.fs,
        gs: seg.gs,
        tr: seg.tr,
        fs_base: msr(IA32_FS_BASE),
        gs_base: msr(IA32_GS_BASE),
        tr_base: tss_base(low, high),
        gdtr_base: seg.gdt_base,
        idtr_base: seg.idt_base,
        sysenter_cs: (msr(IA32_SYSENTER_CS) & 0xffff_ffff) as u32,
        sysenter_esp: msr(IA32_SYSENTER_ESP),
        sysenter_eip: msr(IA32_SYSENTER_EIP),
        efer: msr(IA32_EFER),
        pat: msr(IA32_PAT),
        rip: exit_landing_address(),
    }
}

/// One virtual CPU on VT-x.
pub struct HwVcpu {
    vmcs: Vmcs,
    /// Guest GPRs (RSP/RIP are in the VMCS).
    pub regs: GuestRegisters,
    io_bitmap_a: u64,
    io_bitmap_b: u64,
    msr_bitmap: u64,
    vpid: u16,
}

fn bitmap<'a>(frames: &impl FrameSource, phys: u64) -> &'a mut [u8; BITMAP_BYTES] {
    // SAFETY: `phys` is a frame we just allocated (exclusively ours, reachable through
    // `phys_to_virt`); the reference does not outlive the setup below.
    unsafe { &mut *(frames.phys_to_virt(phys) as *mut [u8; BITMAP_BYTES]) }
}

impl HwVcpu {
    /// Create a vCPU whose guest starts as `entry` says (PVH or Linux 64-bit),
    /// translating through `eptp`, tagged with `vpid` (1..=0xffff, unique per VM).
    pub fn new(
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        eptp: u64,
        vpid: u16,
        entry: &GuestEntry,
    ) -> Result<Self, VmxError> {
        let mut allocated = [0u64; 3];
        for slot in allocated.iter_mut() {
            match frames.allocate_zeroed() {
                Some(p) => *slot = p,
                None => {
                    for p in allocated.iter().filter(|p| **p != 0) {
                        frames.free(*p);
                    }
                    return Err(VmxError::OutOfMemory);
                }
            }
        }
        let [io_a, io_b, msr] = allocated;
        build_io_bitmaps(bitmap(frames, io_a), bitmap(frames, io_b));
        let passthrough: [u32; 13] = {
            let mut all = [0u32; 13];
            all[..7].copy_from_slice(&PASSTHROUGH_VMCS);
            all[7..].copy_from_slice(&SWITCHED_ON_VCPU_CHANGE);
            all
        };
        // Every listed MSR is in the bitmap's ranges (tested in `vmx::bitmaps`).
        let _ = build_msr_bitmap(bitmap(frames, msr), &passthrough);
        let vmcs = match Vmcs::new(vmx, frames) {
            Ok(vmcs) => vmcs,
            Err(e) => {
                for p in allocated {
                    frames.free(p);
                }
                return Err(e);
            }
        };
        let mut vcpu = Self {
            vmcs,
            regs: GuestRegisters::default(),
            io_bitmap_a: io_a,
            io_bitmap_b: io_b,
            msr_bitmap: msr,
            vpid,
        };
        let cfg = vmx.config;
        let addrs = ControlAddresses {
            io_bitmap_a: io_a,
            io_bitmap_b: io_b,
            msr_bitmap: msr,
            eptp,
            vpid,
        };
        let host = capture_host_state();
        let mut regs = GuestRegisters::default();
        let setup = vmx.load(&mut vcpu.vmcs).and_then(|mut loaded| {
            write_controls(&mut loaded, &cfg, &addrs)?;
            write_host_state(&mut loaded, &host)?;
            write_guest_entry_state(&mut loaded, &cfg, entry, &mut regs)
        });
        if let Err(e) = setup.and_then(|()| vmx.invvpid(vpid)) {
            // Best effort: the VMCS is being discarded because of `e`, which we report.
            let _ = vcpu.destroy(vmx, frames);
            return Err(e);
        }
        vcpu.regs = regs;
        Ok(vcpu)
    }

    /// The VPID of this vCPU.
    pub fn vpid(&self) -> u16 {
        self.vpid
    }

    /// Run the guest for at most `slice_tsc_ticks` TSC ticks (VMX preemption timer) or until
    /// its next exit, whichever is first. Returns the decoded exit and its raw fields.
    pub fn run_slice(
        &mut self,
        vmx: &mut VmxOn,
        slice_tsc_ticks: u64,
    ) -> Result<(VmExit, RawExit), VmxError> {
        let timer =
            preemption_timer_value(slice_tsc_ticks, u64::from(vmx.config.preemption_timer_rate));
        let mut loaded = vmx.load(&mut self.vmcs)?;
        loaded.write32(guest::PREEMPTION_TIMER_VALUE, timer)?;
        // SAFETY: the VMCS was fully set up by `new` (controls, host state with the exit
        // landing, PVH guest state) and its bitmaps are owned by `self`; the EPT behind
        // `eptp` is owned by the VM, which outlives its vCPUs.
        let raw = unsafe { entry::run(&mut loaded, &mut self.regs)? };
        let exit = VmExit::decode(&raw, &self.regs);
        Ok((exit, raw))
    }

    /// Access the VMCS and registers between slices (exit handlers, state dumps).
    pub fn with_vmcs<R>(
        &mut self,
        vmx: &mut VmxOn,
        f: impl FnOnce(&mut LoadedVmcs<'_>, &mut GuestRegisters) -> Result<R, VmxError>,
    ) -> Result<R, VmxError> {
        let mut loaded = vmx.load(&mut self.vmcs)?;
        f(&mut loaded, &mut self.regs)
    }

    /// Clear the VMCS and free every frame of this vCPU.
    pub fn destroy(self, vmx: &mut VmxOn, frames: &mut impl FrameSource) -> Result<(), VmxError> {
        self.vmcs.destroy(vmx, frames)?;
        frames.free(self.io_bitmap_a);
        frames.free(self.io_bitmap_b);
        frames.free(self.msr_bitmap);
        Ok(())
    }
}
