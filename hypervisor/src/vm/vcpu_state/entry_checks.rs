//! The VM-entry checks on the guest-state area (SDM Vol. 3C §27.3.1, "Checks on the Guest
//! State Area"; §26.3.1 in editions before 2023), applied to a [`VcpuState`] that came from
//! a peer **before** the destination acknowledges the commit.
//!
//! Why here and not at the first VM entry: after `CommitAck` the source releases its copy,
//! so a state that cannot enter would leave the VM nowhere. Every rule below refuses with
//! the field it concerns, which the source's operator reads in the `Abort`.
//!
//! Scope: tern always runs guests with "unrestricted guest" (PE/PG may be 0, SS.RPL need
//! not equal CS.RPL, DPL checks relaxed), "load debug controls", "load IA32_EFER/PAT", the
//! "IA-32e mode guest" entry control equal to EFER.LMA (`vcpu_state::apply`), no
//! virtual-8086 guests, no SMM, and only hardware exceptions injected at entry; rules for
//! other settings are left out. CR0/CR4 arrive as the guest sees them; the checks apply to
//! the values the VMCS will hold ([`super::vmcs_cr0`], [`super::vmcs_cr4`]), after refusing
//! bits this host cannot run at all. tern's own limits come first ([`check_tern_limits`]):
//! the MSR list is exactly [`super::CARRIED_MSRS`] (plus, in version 2, all of
//! [`super::MTRR_RANGE_MSRS`], each valid for WRMSR, and maybe [`super::OPTIONAL_MSRS`]), and the state tern cannot load yet
//! (CR2, CR8, DR0-DR3, DR6, PDPTEs, XSAVE, a pending NMI) must be empty. The SYSCALL-family MSRs are written with WRMSR **in host mode** before
//! entry, where a bad value is a host #GP: [`check_switched_msrs`] holds them to the WRMSR
//! rules (SDM Vol. 4 and the WRMSR reference: canonical addresses, reserved bits 0).

use core::fmt;

use migration_proto::message::{EventKind, SegmentRegister, VcpuState};

use super::{CARRIED_MSRS, MTRR_RANGE_MSRS, OPTIONAL_MSRS, msr_value, vmcs_cr0, vmcs_cr4};
use crate::vm::cpuid::XCR0_OFFERED;
use crate::vm::msr::mtrr;
use crate::vm::msr::{SWITCHED_ON_VCPU_CHANGE, index, pat_valid, xcr0_valid};
use crate::vm::xsave::{XsaveLayout, validate as validate_xsave};
use crate::vmx::caps::{CR0_PE, CR0_PG};
use crate::vmx::setup::controls::VmxConfig;
use crate::vmx::setup::cr::{CR4_PAE, CR4_VMXE, EFER_LMA, EFER_LME};

/// What the checks need to know about this host's VMX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestStateLimits {
    /// IA32_VMX_CR0_FIXED0/1 (SDM A.7).
    pub cr0_fixed0: u64,
    /// See `cr0_fixed0`.
    pub cr0_fixed1: u64,
    /// IA32_VMX_CR4_FIXED0/1 (SDM A.8).
    pub cr4_fixed0: u64,
    /// See `cr4_fixed0`.
    pub cr4_fixed1: u64,
    /// MAXPHYADDR (CPUID 0x80000008 EAX[7:0]).
    pub phys_addr_bits: u32,
    /// What this host's XRSTOR accepts (`vm::xsave`; [`XsaveLayout::none`] without XSAVE).
    pub xsave: XsaveLayout,
}

impl GuestStateLimits {
    /// This host's limits: the VMX configuration, MAXPHYADDR from CPUID and the host's
    /// XSAVE layout (`machine::host_layout`).
    pub fn of_host(config: &VmxConfig, xsave: XsaveLayout) -> Self {
        let phys = core::arch::x86_64::__cpuid(0x8000_0008).eax & 0xff;
        Self {
            cr0_fixed0: config.cr0_fixed0,
            cr0_fixed1: config.cr0_fixed1,
            cr4_fixed0: config.cr4_fixed0,
            cr4_fixed1: config.cr4_fixed1,
            // CPUs without the leaf report 0: assume the smallest width of 64-bit CPUs.
            phys_addr_bits: if phys == 0 { 36 } else { phys.min(52) },
            xsave,
        }
    }
}

/// A field that would fail VM entry (or a host WRMSR), and the rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestStateError {
    /// The field, as the SDM names it.
    pub field: &'static str,
    /// The rule.
    pub rule: &'static str,
}

impl fmt::Display for GuestStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vCPU state cannot enter: {}: {} (SDM Vol. 3C §27.3.1)",
            self.field, self.rule
        )
    }
}

fn fail(field: &'static str, rule: &'static str) -> Result<(), GuestStateError> {
    Err(GuestStateError { field, rule })
}

/// Whether `v` is canonical for 48-bit linear addresses (bits 63:47 all equal). tern's
/// guests never see CR4.LA57 (CPUID hides it), so 48 bits is the width for them and for
/// the host's own WRMSRs.
pub fn is_canonical(v: u64) -> bool {
    let top = v >> 47;
    top == 0 || top == (u64::MAX >> 47)
}

const CR4_PCIDE: u64 = 1 << 17;
/// EFER bits that exist on Intel CPUs: SCE, LME, LMA, NXE (SDM Vol. 3A §2.2.1).
const EFER_VALID: u64 = 1 | (1 << 8) | (1 << 10) | (1 << 11);
/// IA32_DEBUGCTL bits 5:2 and 63:16 are reserved (SDM Vol. 3B §18.4.1; bit 15 RTM kept).
const DEBUGCTL_RESERVED: u64 = !0xffc3;
const DEBUGCTL_BTF: u64 = 1 << 1;
const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_VM: u64 = 1 << 17;
/// Interruptibility: blocking by STI (0), MOV SS (1), SMI (2), NMI (3); 31:4 reserved.
const BLOCK_STI: u64 = 1;
const BLOCK_MOV_SS: u64 = 2;
const BLOCK_SMI: u64 = 4;
/// Pending debug exceptions: B3:B0 (3:0), enabled breakpoint (12), BS (14), RTM (16).
const PENDING_DEBUG_VALID: u64 = 0xf | (1 << 12) | (1 << 14) | (1 << 16);
const PENDING_DEBUG_BS: u64 = 1 << 14;
const ACTIVITY_HLT: u64 = 1;

/// A segment's access-rights word, decoded (SDM §25.4.1, Table 25-2).
#[derive(Clone, Copy)]
struct Segment {
    selector: u64,
    base: u64,
    limit: u64,
    ar: u64,
}

impl Segment {
    fn of(s: &SegmentRegister) -> Self {
        Segment {
            selector: u64::from(s.selector),
            base: s.base,
            limit: u64::from(s.limit),
            ar: u64::from(s.access_rights),
        }
    }
    fn kind(self) -> u64 {
        self.ar & 0xf
    }
    fn s(self) -> bool {
        self.ar & (1 << 4) != 0
    }
    fn dpl(self) -> u64 {
        (self.ar >> 5) & 3
    }
    fn present(self) -> bool {
        self.ar & (1 << 7) != 0
    }
    fn long(self) -> bool {
        self.ar & (1 << 13) != 0
    }
    fn default_big(self) -> bool {
        self.ar & (1 << 14) != 0
    }
    fn granular(self) -> bool {
        self.ar & (1 << 15) != 0
    }
    fn usable(self) -> bool {
        self.ar & (1 << 16) == 0
    }

    /// Present, reserved bits 11:8 and 31:17 clear, limit consistent with G.
    fn common(self, name: &'static str) -> Result<(), GuestStateError> {
        if !self.present() {
            return fail(name, "access rights: segment not present (P = 0)");
        }
        if self.ar & 0xf00 != 0 || self.ar >> 17 != 0 {
            return fail(name, "access rights: reserved bits 11:8 or 31:17 set");
        }
        if self.limit & 0xfff != 0xfff && self.granular() {
            return fail(name, "G = 1 but limit bits 11:0 are not all 1");
        }
        if self.limit >> 20 != 0 && !self.granular() {
            return fail(name, "G = 0 but limit bits 31:20 are not all 0");
        }
        Ok(())
    }
}

/// Checks every guest-state field the VM entry would check (see the module doc).
pub fn check_guest_state(s: &VcpuState, limits: &GuestStateLimits) -> Result<(), GuestStateError> {
    check_tern_limits(s, limits)?;
    check_control_registers(s, limits)?;
    check_segments(s)?;
    check_descriptor_tables(s)?;
    check_rip_rflags(s)?;
    check_non_register_state(s)?;
    check_pending_event(s)?;
    let mut switched = [0u64; SWITCHED_ON_VCPU_CHANGE.len()];
    for (slot, &msr) in switched.iter_mut().zip(&SWITCHED_ON_VCPU_CHANGE) {
        *slot = msr_value(s, msr).unwrap_or(0);
    }
    check_switched_msrs(&switched)
}

/// The MTRRs: DEF_TYPE and, in a version-2 MSR list, every range MSR, each a value WRMSR
/// would accept on this host (SDM Vol. 3A §11.11); the ranges come all or none.
fn check_mtrrs(s: &VcpuState, phys_bits: u32) -> Result<(), GuestStateError> {
    let def_type = msr_value(s, crate::vm::msr::index::IA32_MTRR_DEF_TYPE).unwrap_or(0);
    if !mtrr::write_valid(mtrr::DEF_TYPE, def_type, phys_bits) {
        return fail(
            "IA32_MTRR_DEF_TYPE",
            "reserved bits set or not an MTRR memory type (SDM Vol. 3A §11.11.2.1)",
        );
    }
    let present = MTRR_RANGE_MSRS
        .iter()
        .filter(|&&m| msr_value(s, m).is_some())
        .count();
    if present != 0 && present != MTRR_RANGE_MSRS.len() {
        return fail("MTRRs", "some but not all MTRR range MSRs in the MSR list");
    }
    for msr in MTRR_RANGE_MSRS {
        if let Some(v) = msr_value(s, msr)
            && !mtrr::write_valid(msr, v, phys_bits)
        {
            return fail(
                "MTRRs",
                "a range MSR with reserved bits set or not an MTRR memory type (SDM Vol. 3A §11.11.2)",
            );
        }
    }
    Ok(())
}

/// What tern can load at all: exactly the carried MSRs (version 1 or 2, `super`'s module
/// doc), valid MTRRs, a one-byte APIC ID, an XCR0 and a PAT the host can set, and nothing in
/// the fields tern does not save yet (module doc).
fn check_tern_limits(s: &VcpuState, limits: &GuestStateLimits) -> Result<(), GuestStateError> {
    if s.vcpu_index > 0xff {
        return fail("vCPU index", "above 255 (the APIC ID is one byte)");
    }
    for m in &s.msrs {
        let carried = CARRIED_MSRS.iter().any(|(index, _)| *index == m.index)
            || MTRR_RANGE_MSRS.contains(&m.index)
            || OPTIONAL_MSRS.contains(&m.index);
        if !carried {
            return fail(
                "MSRs",
                "an MSR tern does not carry (see docs/migration-protocol.md)",
            );
        }
        if s.msrs.iter().filter(|o| o.index == m.index).count() > 1 {
            return fail("MSRs", "an MSR listed twice");
        }
    }
    for (index, name) in CARRIED_MSRS {
        if msr_value(s, index).is_none() {
            return fail(name, "missing from the MSR list");
        }
    }
    check_mtrrs(s, limits.phys_addr_bits)?;
    let msr = |index| msr_value(s, index).unwrap_or(0);
    if !pat_valid(msr(index::IA32_PAT)) {
        return fail("IA32_PAT", "a byte is not a memory type (0, 1, 4-7)");
    }
    if msr(index::IA32_SYSENTER_CS) >> 32 != 0 {
        return fail("IA32_SYSENTER_CS", "bits 63:32 are reserved");
    }
    if !xcr0_valid(s.xcr0, XCR0_OFFERED) {
        return fail("XCR0", "not x87 plus components tern offers (SSE, AVX)");
    }
    // XSETBV of a component the host lacks would #GP (SDM Vol. 1 §13.3).
    if s.xcr0 & !limits.xsave.loadable_xcr0() != 0 {
        return fail(
            "XCR0",
            "enables a state component this host does not support",
        );
    }
    // An empty area comes from a tern that did not switch FPU state: reset state.
    if !s.xsave.is_empty() {
        validate_xsave(&s.xsave, &limits.xsave).map_err(|refusal| GuestStateError {
            field: "XSAVE area",
            rule: refusal.rule(),
        })?;
    }
    let unsupported = [
        ("CR8", s.cr8 != 0),
        ("DR0-DR3", s.dr0_3 != [0; 4]),
        ("DR6", s.dr6 != 0),
        ("PDPTEs", s.pdptes != [0; 4]),
        ("NMI pending", s.nmi_pending),
    ];
    for (name, set) in unsupported {
        if set {
            return fail(name, "tern cannot load this state yet (must be 0 / empty)");
        }
    }
    Ok(())
}

/// SDM §27.2.1.3 (checks on VM-entry event injection), for the one kind tern injects.
fn check_pending_event(s: &VcpuState) -> Result<(), GuestStateError> {
    let Some(e) = s.pending_event else {
        return Ok(());
    };
    if e.kind != EventKind::HardwareException {
        return fail("pending event", "tern only injects hardware exceptions");
    }
    if e.vector > 31 || e.vector == 2 {
        return fail("pending event", "vector is not an exception (0-31 but 2)");
    }
    let pe = s.cr0 & CR0_PE != 0;
    let pushes_code = pe && matches!(e.vector, 8 | 10 | 11 | 12 | 13 | 14 | 17);
    if e.error_code.is_some() != pushes_code {
        return fail(
            "pending event",
            "error code present exactly for #DF, #TS, #NP, #SS, #GP, #PF, #AC in protected mode",
        );
    }
    if e.error_code.is_some_and(|c| c >> 15 != 0) {
        return fail("pending event", "error code bits 31:15 set");
    }
    Ok(())
}

/// §27.3.1.1: CR0, CR4, CR3, DR7, DEBUGCTL, SYSENTER, EFER and their consistency.
fn check_control_registers(s: &VcpuState, l: &GuestStateLimits) -> Result<(), GuestStateError> {
    // The guest's view first: bits the host cannot run at all, and VMX itself.
    if s.cr0 >> 32 != 0 {
        return fail("CR0", "bits 63:32 are reserved");
    }
    if s.cr0 & !l.cr0_fixed1 != 0 {
        return fail("CR0", "a bit IA32_VMX_CR0_FIXED1 forbids is set");
    }
    if s.cr4 >> 32 != 0 {
        return fail("CR4", "bits 63:32 are reserved");
    }
    if s.cr4 & CR4_VMXE != 0 {
        return fail("CR4", "VMXE set (VMX is hidden from guests)");
    }
    if s.cr4 & !l.cr4_fixed1 != 0 {
        return fail("CR4", "a bit IA32_VMX_CR4_FIXED1 forbids is set");
    }
    // Then the values the VMCS will hold.
    let cr0 = vmcs_cr0(s.cr0, l);
    let cr4 = vmcs_cr4(s.cr4, l);
    let efer = s.efer;
    // Unrestricted guest exempts PE and PG from FIXED0 (§27.3.1.1).
    let cr0_must = l.cr0_fixed0 & !(CR0_PE | CR0_PG);
    if cr0 & cr0_must != cr0_must {
        return fail("CR0", "a bit IA32_VMX_CR0_FIXED0 requires is clear");
    }
    if cr0 & !l.cr0_fixed1 != 0 {
        return fail("CR0", "a bit IA32_VMX_CR0_FIXED1 forbids is set");
    }
    if cr0 & CR0_PG != 0 && cr0 & CR0_PE == 0 {
        return fail("CR0", "PG set without PE");
    }
    if cr4 & l.cr4_fixed0 != l.cr4_fixed0 {
        return fail("CR4", "a bit IA32_VMX_CR4_FIXED0 requires is clear");
    }
    if cr4 & !l.cr4_fixed1 != 0 {
        return fail("CR4", "a bit IA32_VMX_CR4_FIXED1 forbids is set");
    }
    if s.cr3 >> l.phys_addr_bits != 0 {
        return fail("CR3", "bits beyond the physical-address width are set");
    }
    if s.dr7 >> 32 != 0 {
        return fail("DR7", "bits 63:32 are reserved");
    }
    let msr = |index| msr_value(s, index).unwrap_or(0);
    if msr(index::IA32_DEBUGCTL) & DEBUGCTL_RESERVED != 0 {
        return fail("IA32_DEBUGCTL", "reserved bits set");
    }
    if !is_canonical(msr(index::IA32_SYSENTER_ESP)) {
        return fail("IA32_SYSENTER_ESP", "not canonical");
    }
    if !is_canonical(msr(index::IA32_SYSENTER_EIP)) {
        return fail("IA32_SYSENTER_EIP", "not canonical");
    }
    if efer & !EFER_VALID != 0 {
        return fail("IA32_EFER", "reserved bits set");
    }
    let ia32e = efer & EFER_LMA != 0;
    if ia32e && (cr0 & CR0_PG == 0 || cr4 & CR4_PAE == 0) {
        return fail(
            "IA32_EFER",
            "LMA (IA-32e mode guest) needs CR0.PG and CR4.PAE",
        );
    }
    if !ia32e && cr4 & CR4_PCIDE != 0 {
        return fail("CR4", "PCIDE set outside IA-32e mode");
    }
    if cr0 & CR0_PG != 0 && (efer & EFER_LMA != 0) != (efer & EFER_LME != 0) {
        return fail("IA32_EFER", "LMA differs from LME while CR0.PG = 1");
    }
    Ok(())
}

/// §27.3.1.2: selectors, bases, access rights of CS, SS, DS, ES, FS, GS, TR, LDTR.
fn check_segments(s: &VcpuState) -> Result<(), GuestStateError> {
    let ia32e = s.efer & EFER_LMA != 0;
    // The protocol's order: ES, CS, SS, DS, FS, GS, LDTR, TR.
    let [es, cs, ss, ds, fs, gs, ldtr, tr] = s.segments.each_ref().map(Segment::of);
    let data = [("DS", ds), ("ES", es), ("FS", fs), ("GS", gs)];
    // Selectors and bases.
    if tr.selector & 4 != 0 {
        return fail("TR", "selector TI flag set");
    }
    if ldtr.usable() && ldtr.selector & 4 != 0 {
        return fail("LDTR", "selector TI flag set");
    }
    for (name, seg) in [("TR", tr), ("FS", data[2].1), ("GS", data[3].1)] {
        if !is_canonical(seg.base) {
            return fail(name, "base not canonical");
        }
    }
    if ldtr.usable() && !is_canonical(ldtr.base) {
        return fail("LDTR", "base not canonical");
    }
    if cs.base >> 32 != 0 {
        return fail("CS", "base bits 63:32 set");
    }
    for (name, seg) in [("SS", ss), ("DS", data[0].1), ("ES", data[1].1)] {
        if seg.usable() && seg.base >> 32 != 0 {
            return fail(name, "base bits 63:32 set");
        }
    }
    // CS: accessed code (or read/write accessed data, type 3, with unrestricted guest).
    if !matches!(cs.kind(), 3 | 9 | 11 | 13 | 15) {
        return fail("CS", "access rights: type is not 3, 9, 11, 13 or 15");
    }
    if !cs.s() {
        return fail("CS", "access rights: S = 0 (system segment)");
    }
    match cs.kind() {
        3 if cs.dpl() != 0 => return fail("CS", "access rights: type 3 needs DPL 0"),
        9 | 11 if ss.usable() && cs.dpl() != ss.dpl() => {
            return fail(
                "CS",
                "access rights: non-conforming code DPL differs from SS.DPL",
            );
        }
        13 | 15 if ss.usable() && cs.dpl() > ss.dpl() => {
            return fail("CS", "access rights: conforming code DPL above SS.DPL");
        }
        _ => {}
    }
    cs.common("CS")?;
    if ia32e && cs.long() && cs.default_big() {
        return fail("CS", "access rights: L and D/B both set in IA-32e mode");
    }
    if ss.usable() {
        if !matches!(ss.kind(), 3 | 7) {
            return fail("SS", "access rights: type is not 3 or 7");
        }
        if !ss.s() {
            return fail("SS", "access rights: S = 0 (system segment)");
        }
        let pe = s.cr0 & CR0_PE != 0;
        if (cs.kind() == 3 || !pe) && ss.dpl() != 0 {
            return fail(
                "SS",
                "access rights: DPL must be 0 in real mode or with CS type 3",
            );
        }
        ss.common("SS")?;
    }
    for (name, seg) in data {
        if !seg.usable() {
            continue;
        }
        if seg.kind() & 1 == 0 {
            return fail(name, "access rights: type not accessed");
        }
        if seg.kind() & 8 != 0 && seg.kind() & 2 == 0 {
            return fail(name, "access rights: execute-only code segment");
        }
        if !seg.s() {
            return fail(name, "access rights: S = 0 (system segment)");
        }
        seg.common(name)?;
    }
    // TR: a busy TSS, 64-bit in IA-32e mode; always usable.
    if !tr.usable() {
        return fail("TR", "access rights: unusable");
    }
    if !(tr.kind() == 11 || (!ia32e && tr.kind() == 3)) {
        return fail("TR", "access rights: type is not a busy TSS for this mode");
    }
    if tr.s() {
        return fail("TR", "access rights: S = 1 (not a system segment)");
    }
    tr.common("TR")?;
    if ldtr.usable() {
        if ldtr.kind() != 2 {
            return fail("LDTR", "access rights: type is not 2 (LDT)");
        }
        if ldtr.s() {
            return fail("LDTR", "access rights: S = 1 (not a system segment)");
        }
        ldtr.common("LDTR")?;
    }
    Ok(())
}

/// §27.3.1.3: GDTR and IDTR.
fn check_descriptor_tables(s: &VcpuState) -> Result<(), GuestStateError> {
    // The limits are 16 bits wide in the protocol, so bits 31:16 are clear by type.
    for (name, table) in [("GDTR", s.gdtr), ("IDTR", s.idtr)] {
        if !is_canonical(table.base) {
            return fail(name, "base not canonical");
        }
    }
    Ok(())
}

/// §27.3.1.4: RIP and RFLAGS.
fn check_rip_rflags(s: &VcpuState) -> Result<(), GuestStateError> {
    let ia32e = s.efer & EFER_LMA != 0;
    let cs_long = s.segments[1].access_rights & (1 << 13) != 0;
    let rip = s.rip;
    if ia32e && cs_long {
        if !is_canonical(rip) {
            return fail("RIP", "not canonical");
        }
    } else if rip >> 32 != 0 {
        return fail("RIP", "bits 63:32 set outside 64-bit mode");
    }
    let rflags = s.rflags;
    // Bit 1 reads as 1; bits 63:22, 15, 5 and 3 are reserved (SDM Vol. 1 §3.4.3).
    if rflags & 0x2 == 0 || rflags & !0x3f_7fd7 != 0 {
        return fail("RFLAGS", "reserved bits set or bit 1 clear");
    }
    let pe = s.cr0 & CR0_PE != 0;
    if (ia32e || !pe) && rflags & RFLAGS_VM != 0 {
        return fail("RFLAGS", "VM set in IA-32e mode or real mode");
    }
    Ok(())
}

/// §27.3.1.5: activity state, interruptibility state, pending debug exceptions.
fn check_non_register_state(s: &VcpuState) -> Result<(), GuestStateError> {
    let activity = u64::from(s.activity_state);
    let interruptibility = u64::from(s.interruptibility);
    let rflags = s.rflags;
    let ss_dpl = u64::from(s.segments[2].access_rights >> 5) & 3;
    // tern only ever saves active (0) or HLT (1); shutdown and wait-for-SIPI depend on
    // IA32_VMX_MISC and make no sense for a VM that was running.
    if activity > ACTIVITY_HLT {
        return fail("activity state", "only active (0) and HLT (1) are accepted");
    }
    if activity == ACTIVITY_HLT && ss_dpl != 0 {
        return fail("activity state", "HLT with SS.DPL != 0");
    }
    if interruptibility >> 4 != 0 {
        return fail("interruptibility state", "reserved bits 31:4 set");
    }
    if interruptibility & (BLOCK_STI | BLOCK_MOV_SS) == BLOCK_STI | BLOCK_MOV_SS {
        return fail(
            "interruptibility state",
            "blocking by STI and by MOV SS both set",
        );
    }
    if rflags & RFLAGS_IF == 0 && interruptibility & BLOCK_STI != 0 {
        return fail(
            "interruptibility state",
            "blocking by STI with RFLAGS.IF = 0",
        );
    }
    if interruptibility & BLOCK_SMI != 0 {
        return fail("interruptibility state", "blocking by SMI outside SMM");
    }
    let pending = s.pending_debug_exceptions;
    if pending & !PENDING_DEBUG_VALID != 0 {
        return fail("pending debug exceptions", "reserved bits set");
    }
    let btf = msr_value(s, index::IA32_DEBUGCTL).unwrap_or(0) & DEBUGCTL_BTF != 0;
    let blocked = interruptibility & (BLOCK_STI | BLOCK_MOV_SS) != 0 || activity == ACTIVITY_HLT;
    if blocked {
        let single_step = rflags & RFLAGS_TF != 0 && !btf;
        if single_step != (pending & PENDING_DEBUG_BS != 0) {
            return fail(
                "pending debug exceptions",
                "BS must equal RFLAGS.TF and not DEBUGCTL.BTF while events are blocked",
            );
        }
    }
    Ok(())
}

/// The MSRs written with WRMSR in host mode before each entry (`SWITCHED_ON_VCPU_CHANGE`
/// order: STAR, LSTAR, CSTAR, FMASK, KERNEL_GS_BASE, TSC_AUX): a value WRMSR refuses would
/// be a #GP in the hypervisor, which halts the host with every VM on it.
pub fn check_switched_msrs(
    msrs: &[u64; SWITCHED_ON_VCPU_CHANGE.len()],
) -> Result<(), GuestStateError> {
    let [_star, lstar, cstar, fmask, kernel_gs_base, tsc_aux] = *msrs;
    // STAR has no reserved bits; its selectors are only used by SYSCALL/SYSRET.
    if !is_canonical(lstar) {
        return fail("IA32_LSTAR", "not canonical (WRMSR would #GP in the host)");
    }
    if !is_canonical(cstar) {
        return fail("IA32_CSTAR", "not canonical (WRMSR would #GP in the host)");
    }
    if fmask >> 32 != 0 {
        return fail("IA32_FMASK", "bits 63:32 are reserved");
    }
    if !is_canonical(kernel_gs_base) {
        return fail(
            "IA32_KERNEL_GS_BASE",
            "not canonical (WRMSR would #GP in the host)",
        );
    }
    if tsc_aux >> 32 != 0 {
        return fail("IA32_TSC_AUX", "bits 63:32 are reserved");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
