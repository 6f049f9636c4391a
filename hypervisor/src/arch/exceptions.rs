//! CPU exception entry and the crash dump.
//!
//! Each vector has a naked stub that makes the stack uniform (pushes a 0 error code where the
//! CPU pushes none, then the vector number) and jumps to a common stub that saves all general
//! purpose registers and calls [`exception_handler`] with a pointer to the resulting
//! [`ExceptionFrame`]. The handler prints a full register dump on the console and halts: in a
//! hypervisor an unexpected exception is a bug, and continuing would risk guest data.
//! (`extern "x86-interrupt"` is unstable on our toolchain, hence naked functions.)

use core::fmt::Write;

use super::cpu::{control_registers, halt_forever};
use super::serial::emergency_writer;

/// The stack as the common stub leaves it: saved GPRs (last pushed first), then what the
/// vector stub pushed, then what the CPU pushed (SDM Vol. 3A §6.14.2 "64-Bit Mode Stack Frame").
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Architectural names of vectors 0..31 (SDM Vol. 3A Table 6-1).
pub const VECTOR_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range exceeded",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack-segment fault",
    "#GP general protection",
    "#PF page fault",
    "reserved (15)",
    "#MF x87 floating-point error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating-point",
    "#VE virtualization exception",
    "#CP control protection",
    "reserved (22)",
    "reserved (23)",
    "reserved (24)",
    "reserved (25)",
    "reserved (26)",
    "reserved (27)",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security exception",
    "reserved (31)",
];

/// Called by the common stub with interrupts disabled; never returns.
extern "C" fn exception_handler(frame: &ExceptionFrame) -> ! {
    let mut w = emergency_writer();
    let name = VECTOR_NAMES
        .get(frame.vector as usize)
        .copied()
        .unwrap_or("unknown");
    let cr = control_registers();
    let _ = writeln!(
        w,
        "\n*** CPU EXCEPTION {}: {name} at rip {:#018x}",
        frame.vector, frame.rip
    );
    let _ = writeln!(w, "error code {:#x}", frame.error_code);
    if frame.vector == 8 {
        let _ = writeln!(
            w,
            "CR2 {:#018x}: if it is just below rsp, this is a stack overflow into a guard page",
            cr.cr2
        );
    }
    if frame.vector == 14 {
        let _ = writeln!(
            w,
            "faulting address (CR2) {:#018x} ({}{}{})",
            cr.cr2,
            if frame.error_code & 1 != 0 {
                "protection violation"
            } else {
                "not present"
            },
            if frame.error_code & 2 != 0 {
                ", write"
            } else {
                ", read"
            },
            if frame.error_code & 16 != 0 {
                ", instruction fetch"
            } else {
                ""
            },
        );
    }
    let _ = writeln!(
        w,
        "rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n\
         rsi {:#018x} rdi {:#018x} rbp {:#018x} rsp {:#018x}\n\
         r8  {:#018x} r9  {:#018x} r10 {:#018x} r11 {:#018x}\n\
         r12 {:#018x} r13 {:#018x} r14 {:#018x} r15 {:#018x}\n\
         rip {:#018x} cs {:#06x} ss {:#06x} rflags {:#010x}\n\
         cr0 {:#018x} cr2 {:#018x} cr3 {:#018x} cr4 {:#018x}",
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.rsp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.rip,
        frame.cs,
        frame.ss,
        frame.rflags,
        cr.cr0,
        cr.cr2,
        cr.cr3,
        cr.cr4,
    );
    let _ = writeln!(
        w,
        "*** halted: this is a hypervisor bug; please report the dump above"
    );
    halt_forever()
}

/// Saves the GPRs in [`ExceptionFrame`] order and calls the handler.
#[unsafe(naked)]
unsafe extern "C" fn exception_common() {
    core::arch::naked_asm!(
        "push rax",
        "push rbx",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push rbp",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rdi, rsp",
        // The System V ABI wants a 16-byte aligned stack at the call.
        "and rsp, -16",
        "cld",
        "call {handler}",
        "ud2",
        handler = sym exception_handler,
    )
}

/// A stub for a vector without a CPU-pushed error code.
macro_rules! stub_without_error_code {
    ($name:ident, $vector:literal) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                "push 0",
                "push {vector}",
                "jmp {common}",
                vector = const $vector,
                common = sym exception_common,
            )
        }
    };
}

/// A stub for a vector where the CPU pushes an error code (SDM Vol. 3A Table 6-1).
macro_rules! stub_with_error_code {
    ($name:ident, $vector:literal) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                "push {vector}",
                "jmp {common}",
                vector = const $vector,
                common = sym exception_common,
            )
        }
    };
}

stub_without_error_code!(vector_0, 0);
stub_without_error_code!(vector_1, 1);
stub_without_error_code!(vector_2, 2);
stub_without_error_code!(vector_3, 3);
stub_without_error_code!(vector_4, 4);
stub_without_error_code!(vector_5, 5);
stub_without_error_code!(vector_6, 6);
stub_without_error_code!(vector_7, 7);
stub_with_error_code!(vector_8, 8);
stub_without_error_code!(vector_9, 9);
stub_with_error_code!(vector_10, 10);
stub_with_error_code!(vector_11, 11);
stub_with_error_code!(vector_12, 12);
stub_with_error_code!(vector_13, 13);
stub_with_error_code!(vector_14, 14);
stub_without_error_code!(vector_15, 15);
stub_without_error_code!(vector_16, 16);
stub_with_error_code!(vector_17, 17);
stub_without_error_code!(vector_18, 18);
stub_without_error_code!(vector_19, 19);
stub_without_error_code!(vector_20, 20);
stub_with_error_code!(vector_21, 21);
stub_without_error_code!(vector_22, 22);
stub_without_error_code!(vector_23, 23);
stub_without_error_code!(vector_24, 24);
stub_without_error_code!(vector_25, 25);
stub_without_error_code!(vector_26, 26);
stub_without_error_code!(vector_27, 27);
stub_without_error_code!(vector_28, 28);
stub_with_error_code!(vector_29, 29);
stub_with_error_code!(vector_30, 30);
stub_without_error_code!(vector_31, 31);

/// Entry stubs indexed by vector.
pub static ENTRY_STUBS: [unsafe extern "C" fn(); 32] = [
    vector_0, vector_1, vector_2, vector_3, vector_4, vector_5, vector_6, vector_7, vector_8,
    vector_9, vector_10, vector_11, vector_12, vector_13, vector_14, vector_15, vector_16,
    vector_17, vector_18, vector_19, vector_20, vector_21, vector_22, vector_23, vector_24,
    vector_25, vector_26, vector_27, vector_28, vector_29, vector_30, vector_31,
];
