//! The hypervisor kernel binary. On bare metal it is entered at `_start` by the loader; on the
//! host it is a stub that says how to build the real thing.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod entry {
    /// Entered from the loader with `rdi` = physical (= identity-mapped) address of the
    /// `BootInfo`, interrupts disabled, on the loader's temporary stack. Switch to our own
    /// stack at once and never return.
    #[unsafe(naked)]
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".text.entry")]
    pub extern "C" fn _start() -> ! {
        core::arch::naked_asm!(
            "lea rsp, [rip + {stack} + {size}]",
            "xor rbp, rbp",
            "call {main}",
            "2: cli",
            "hlt",
            "jmp 2b",
            stack = sym hypervisor::kernel::BOOT_STACK,
            size = const hypervisor::kernel::BOOT_STACK_SIZE,
            main = sym hypervisor::kernel::kernel_main,
        )
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the tern hypervisor runs on bare metal: build it with `cargo xtask build`");
    std::process::exit(2);
}
