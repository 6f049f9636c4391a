//! The heartbeat test guest. Booted by the PVH convention (QEMU `-kernel`, tern), it prints a
//! line every `hb.interval_ms` of guest time, rewrites and verifies a working set, and has
//! failure modes for hypervisor tests. See `README.md` beside this crate.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod escape;
#[cfg(target_os = "none")]
mod interrupts;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
mod serial;
#[cfg(target_os = "none")]
mod start_info;

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;
    let _ = writeln!(serial::Com1, "HB-PANIC {info}");
    cpu::halt_forever()
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "heartbeat is a guest kernel: cargo build -p heartbeat --target x86_64-unknown-none --release"
    );
    std::process::exit(2);
}
