//! The guest's register state VMX leaves to software: x87/SSE/AVX (an XSAVE area, see
//! `vm::xsave`) and CR2 (SDM Vol. 3C §27.3, §28.3: neither is in the guest-state area).
//!
//! [`GuestFpu::enter`] loads them before a slice's first VM entry and [`GuestFpu::leave`]
//! saves them after its last exit, so between slices the registers are the host's (other
//! VMs, and the hypervisor itself, may use them) and within a slice the exit handlers,
//! being soft-float and fault-free, leave them alone. XCR0 is switched around them: the
//! area is saved and restored with XCR0 = every component tern switches (so a guest that
//! runs with XCR0 = x87 but uses SSE through FXSR keeps its XMM registers too), and the
//! guest runs with its own XCR0.
//!
//! A host without XSAVE switches x87/SSE with FXSAVE/FXRSTOR in the same area's legacy
//! region (`XsaveLayout::legacy`), so guests on it keep their registers too and what
//! travels is the same standard-format area.
//!
//! XSAVEOPT is used when CPUID.(0xD,1):EAX[0] offers it (it skips components the guest did
//! not touch since our XRSTOR, SDM Vol. 1 §13.9). XSAVEC/XSAVES are not: they write the
//! compacted format, which is not what the protocol carries, and every save would then need
//! a conversion before a migration could send it.

use super::devices::{HwHost, host_has_xsave};
use crate::vm::cpuid::{CpuidResult, XCR0_OFFERED};
use crate::vm::exit_handler::HostCpu;
use crate::vm::xsave::{XsaveAllocError, XsaveArea, XsaveLayout};
use crate::vmx::hw::instr;

/// XCR0 while the host runs: x87 only (SDM Vol. 1 §13.3: bit 0 must be set).
pub(super) const HOST_XCR0: u64 = 1;

static HOST_LAYOUT: spin::Once<XsaveLayout> = spin::Once::new();

fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// CPUID.(0xD,1):EAX[0]: XSAVEOPT exists.
fn host_has_xsaveopt() -> bool {
    cpuid(0xd, 1).eax & 1 != 0
}

/// This host's XSAVE layout for the components tern offers guests, with the MXCSR_MASK
/// the CPU reports (measured once with an XSAVE of the SSE component, SDM Vol. 1
/// §11.6.6).
pub fn host_layout() -> XsaveLayout {
    *HOST_LAYOUT.call_once(|| {
        if !host_has_xsave() {
            // FXSR is architectural in 64-bit mode: x87/SSE switched with FXSAVE/FXRSTOR.
            let legacy = XsaveLayout::legacy(0);
            let Ok(mut probe) = XsaveArea::at_reset(&legacy) else {
                return legacy;
            };
            // SAFETY: the area is 64-byte aligned and at least 512 bytes; CR0.TS and
            // CR0.EM are clear in the hypervisor.
            unsafe { instr::fxsave(probe.as_mut_ptr()) };
            return XsaveLayout::legacy(probe.mxcsr_mask());
        }
        let layout = XsaveLayout::from_cpuid(XCR0_OFFERED, 0, cpuid);
        let Ok(mut probe) = XsaveArea::at_reset(&layout) else {
            return layout;
        };
        // SAFETY: the CPU has XSAVE, so `vmx::hw::enable` set CR4.OSXSAVE; `layout.mask`
        // is what CPUID.(0xD,0) reports as supported (plus x87), so XSETBV accepts it;
        // the probe area is 64-byte aligned and `layout.area_len` long, the standard size
        // of that mask; CR0.TS is clear in the hypervisor. XCR0 goes back to the host's.
        unsafe {
            instr::xsetbv(0, layout.mask);
            instr::xsave(probe.as_mut_ptr(), 0b10, false);
            instr::xsetbv(0, HOST_XCR0);
        }
        XsaveLayout::from_cpuid(XCR0_OFFERED, probe.mxcsr_mask(), cpuid)
    })
}

/// A vCPU's x87/SSE/AVX state and CR2 while it does not run.
pub struct GuestFpu {
    pub(super) area: XsaveArea,
    pub(super) layout: XsaveLayout,
    optimised: bool,
    /// The guest's CR2.
    pub(super) cr2: u64,
}

impl GuestFpu {
    /// The state at reset (every component initial, MXCSR 0x1f80, CR2 0).
    pub fn at_reset() -> Result<Self, XsaveAllocError> {
        let layout = host_layout();
        Ok(Self {
            area: XsaveArea::at_reset(&layout)?,
            layout,
            optimised: host_has_xsaveopt(),
            cr2: 0,
        })
    }

    /// Back to the reset state (a reboot).
    pub fn reset(&mut self) {
        self.area.reset();
        self.cr2 = 0;
    }

    /// Load the guest's registers and its XCR0 `guest_xcr0` before a VM entry.
    pub(super) fn enter(&mut self, host: &mut HwHost, guest_xcr0: u64) {
        if self.layout.fxsr_only {
            self.area.prepare_fxrstor();
            // SAFETY: the area is 64-byte aligned and at least 512 bytes; CR0.TS/EM are
            // clear; its MXCSR was written by FXSAVE on this host, by `XsaveArea::reset`
            // (0x1f80), or by `XsaveArea::import`, which refuses bits outside this host's
            // MXCSR_MASK, so FXRSTOR cannot #GP.
            unsafe { instr::fxrstor(self.area.as_mut_ptr()) };
        } else if self.layout.mask != 0 {
            host.set_xcr0(self.layout.mask);
            // SAFETY: XSAVE is present (mask != 0), so CR4.OSXSAVE is set; XCR0 is the
            // layout's mask, which the CPU supports; the area is 64-byte aligned and
            // `layout.area_len` long; its content was written only by XSAVE on this
            // host, by `XsaveArea::reset`, or by `XsaveArea::import`, which validates a
            // peer's area against this layout (SDM Vol. 1 §13.8.1), so XRSTOR cannot #GP.
            unsafe { instr::xrstor(self.area.as_mut_ptr(), self.layout.mask) };
        }
        host.set_xcr0(guest_xcr0);
        // SAFETY: the host does not read CR2 outside its page-fault handler, which panics.
        unsafe { instr::write_cr2(self.cr2) };
    }

    /// Save the guest's registers after its last exit of a slice, and give the host back
    /// its XCR0.
    pub(super) fn leave(&mut self, host: &mut HwHost) {
        self.cr2 = instr::read_cr2();
        if self.layout.fxsr_only {
            // SAFETY: as in `enter`.
            unsafe { instr::fxsave(self.area.as_mut_ptr()) };
            self.area.after_fxsave();
        } else if self.layout.mask != 0 {
            host.set_xcr0(self.layout.mask);
            // SAFETY: as in `enter`; XSAVEOPT only when CPUID says it exists. The area
            // was last loaded by XRSTOR from this same address, which is what XSAVEOPT's
            // modified optimisation assumes (SDM Vol. 1 §13.9).
            unsafe { instr::xsave(self.area.as_mut_ptr(), self.layout.mask, self.optimised) };
        }
        host.set_xcr0(HOST_XCR0);
    }
}
