//! VT-x: capability checks, EPT structures, exit decoding (portable, host-tested) and, on
//! bare metal, VMXON, typed VMCS access, INVEPT/INVVPID and the entry/exit assembly.
//!
//! SDM references are to the Intel SDM Vol. 3C in its 2023+ numbering (Chapter 25 "Virtual
//! Machine Control Structures", 27 "VM Entries", 28 "VM Exits", 29 "VMX Support for Address
//! Translation", 31 "VMX Instruction Reference"); editions before 2023 number these chapters
//! one lower (24, 26, 27, 28, 30). Appendix letters are the same in both.
//!
//! Map: `caps` (capability MSRs -> allowed controls, fixed CR bits), `setup` (what is
//! written into a VMCS: controls, PVH guest state, host state, guest CR rules), `vmcs`
//! (typed field encodings, `VmcsAccess`), `error` (`VmxError` with VM-instruction error
//! numbers), `ept` (EPT builder), `bitmaps` (MSR/I/O bitmaps), `exit` (`RawExit` ->
//! `VmExit`), `regs` (guest GPRs), `frames` (where VMX memory comes from), `hw`
//! (bare metal: VMXON, VMCS regions, entry/exit assembly, `HwVcpu`).

pub mod bitmaps;
pub mod caps;
pub mod ept;
pub mod error;
pub mod exit;
pub mod frames;
/// Bare-metal VMX: VMXON, VMCS regions, entry/exit assembly, hardware vCPUs.
#[cfg(target_os = "none")]
pub mod hw;
pub mod regs;
pub mod setup;
pub mod vmcs;
