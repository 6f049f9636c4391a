//! Basic exit reasons (SDM Vol. 3C Appendix C, "VMX Basic Exit Reasons").

#![allow(missing_docs)]

pub const EXCEPTION_OR_NMI: u16 = 0;
pub const EXTERNAL_INTERRUPT: u16 = 1;
pub const TRIPLE_FAULT: u16 = 2;
pub const INIT_SIGNAL: u16 = 3;
pub const SIPI: u16 = 4;
pub const INTERRUPT_WINDOW: u16 = 7;
pub const NMI_WINDOW: u16 = 8;
pub const TASK_SWITCH: u16 = 9;
pub const CPUID: u16 = 10;
pub const GETSEC: u16 = 11;
pub const HLT: u16 = 12;
pub const INVD: u16 = 13;
pub const INVLPG: u16 = 14;
pub const RDPMC: u16 = 15;
pub const RDTSC: u16 = 16;
pub const RSM: u16 = 17;
pub const VMCALL: u16 = 18;
pub const VMCLEAR: u16 = 19;
pub const VMLAUNCH: u16 = 20;
pub const VMPTRLD: u16 = 21;
pub const VMPTRST: u16 = 22;
pub const VMREAD: u16 = 23;
pub const VMRESUME: u16 = 24;
pub const VMWRITE: u16 = 25;
pub const VMXOFF: u16 = 26;
pub const VMXON: u16 = 27;
pub const CR_ACCESS: u16 = 28;
pub const DR_ACCESS: u16 = 29;
pub const IO_INSTRUCTION: u16 = 30;
pub const RDMSR: u16 = 31;
pub const WRMSR: u16 = 32;
pub const ENTRY_FAIL_GUEST_STATE: u16 = 33;
pub const ENTRY_FAIL_MSR_LOADING: u16 = 34;
pub const MWAIT: u16 = 36;
pub const MONITOR_TRAP_FLAG: u16 = 37;
pub const MONITOR: u16 = 39;
pub const PAUSE: u16 = 40;
pub const ENTRY_FAIL_MACHINE_CHECK: u16 = 41;
pub const TPR_BELOW_THRESHOLD: u16 = 43;
pub const APIC_ACCESS: u16 = 44;
pub const VIRTUALIZED_EOI: u16 = 45;
pub const GDTR_IDTR_ACCESS: u16 = 46;
pub const LDTR_TR_ACCESS: u16 = 47;
pub const EPT_VIOLATION: u16 = 48;
pub const EPT_MISCONFIG: u16 = 49;
pub const INVEPT: u16 = 50;
pub const RDTSCP: u16 = 51;
pub const PREEMPTION_TIMER: u16 = 52;
pub const INVVPID: u16 = 53;
pub const WBINVD: u16 = 54;
pub const XSETBV: u16 = 55;
pub const APIC_WRITE: u16 = 56;
pub const RDRAND: u16 = 57;
pub const INVPCID: u16 = 58;
pub const VMFUNC: u16 = 59;
pub const ENCLS: u16 = 60;
pub const RDSEED: u16 = 61;
pub const PML_FULL: u16 = 62;
pub const XSAVES: u16 = 63;
pub const XRSTORS: u16 = 64;

/// Bit 31 of the exit-reason field: the exit is a VM-entry failure (SDM §25.9.1).
pub const ENTRY_FAILURE_BIT: u32 = 1 << 31;

/// Number of distinct basic reasons the per-VM counters track (0..=64, plus one "other").
pub const COUNTED_REASONS: usize = 66;

/// A short name for a basic exit reason, for counters and dumps.
pub fn name(reason: u16) -> &'static str {
    match reason {
        EXCEPTION_OR_NMI => "exception/nmi",
        EXTERNAL_INTERRUPT => "external-interrupt",
        TRIPLE_FAULT => "triple-fault",
        INIT_SIGNAL => "init",
        SIPI => "sipi",
        INTERRUPT_WINDOW => "interrupt-window",
        NMI_WINDOW => "nmi-window",
        TASK_SWITCH => "task-switch",
        CPUID => "cpuid",
        GETSEC => "getsec",
        HLT => "hlt",
        INVD => "invd",
        INVLPG => "invlpg",
        RDPMC => "rdpmc",
        RDTSC => "rdtsc",
        RSM => "rsm",
        VMCALL => "vmcall",
        VMCLEAR..=VMXON => "vmx-instruction",
        CR_ACCESS => "cr-access",
        DR_ACCESS => "dr-access",
        IO_INSTRUCTION => "io",
        RDMSR => "rdmsr",
        WRMSR => "wrmsr",
        ENTRY_FAIL_GUEST_STATE => "entry-fail-guest-state",
        ENTRY_FAIL_MSR_LOADING => "entry-fail-msr-loading",
        MWAIT => "mwait",
        MONITOR_TRAP_FLAG => "monitor-trap-flag",
        MONITOR => "monitor",
        PAUSE => "pause",
        ENTRY_FAIL_MACHINE_CHECK => "entry-fail-machine-check",
        TPR_BELOW_THRESHOLD => "tpr-below-threshold",
        APIC_ACCESS => "apic-access",
        VIRTUALIZED_EOI => "virtualized-eoi",
        GDTR_IDTR_ACCESS => "gdtr/idtr-access",
        LDTR_TR_ACCESS => "ldtr/tr-access",
        EPT_VIOLATION => "ept-violation",
        EPT_MISCONFIG => "ept-misconfig",
        INVEPT => "invept",
        RDTSCP => "rdtscp",
        PREEMPTION_TIMER => "preemption-timer",
        INVVPID => "invvpid",
        WBINVD => "wbinvd",
        XSETBV => "xsetbv",
        APIC_WRITE => "apic-write",
        RDRAND => "rdrand",
        INVPCID => "invpcid",
        VMFUNC => "vmfunc",
        ENCLS => "encls",
        RDSEED => "rdseed",
        PML_FULL => "pml-full",
        XSAVES => "xsaves",
        XRSTORS => "xrstors",
        _ => "other",
    }
}
