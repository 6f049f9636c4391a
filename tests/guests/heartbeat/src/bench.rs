//! `hb.mode=bench`: what a VM exit and a slice boundary cost, seen from inside the guest with
//! its own TSC. Under Bochs the TSC advances one per instruction, so the figures are
//! instruction counts of the hypervisor's work (plus Bochs' fixed cost of the VMX
//! transitions), independent of host load.
//!
//! - `cpuid`: N × CPUID leaf 0 (always exits under VT-x, SDM Vol. 3C §26.1.2), minus the same
//!   loop with a NOP: the round trip guest → hypervisor → guest.
//! - `io_out`: N × OUT to port 0x80 (no device; exits through the I/O bitmap, dropped).
//! - `slices`: a busy loop reading the TSC for `BENCH_SLICE_MS` of guest time; a step of at
//!   least `GAP_THRESHOLD` ticks is time the vCPU did not run (preemption-timer exit, the
//!   host's main-loop round, VM entry). Mean gap = cost of a slice boundary; mean run = the
//!   guest's share of a slice.
//!
//! Output: `BENCH ...` lines, then `BENCH-DONE`, then the guest halts.

use heartbeat::gaps::GapStats;

use crate::{cpu, say};

/// Iterations of each exit loop.
const ITERATIONS: u64 = 10_000;
/// Guest time the slice loop runs.
const BENCH_SLICE_MS: u64 = 1000;
/// A TSC step of at least this many ticks is a gap: a loop iteration is ~10 ticks, a CPUID
/// exit round trip ~540 under tern in Bochs, a slice boundary more than that.
const GAP_THRESHOLD: u64 = 300;

fn cpuid0() {
    // SAFETY: CPUID has no side effects; RBX is saved and restored around it because LLVM
    // reserves it.
    unsafe {
        core::arch::asm!(
            "mov {tmp}, rbx",
            "cpuid",
            "mov rbx, {tmp}",
            tmp = out(reg) _,
            inout("eax") 0u32 => _,
            inout("ecx") 0u32 => _,
            out("edx") _,
            options(nomem, nostack)
        )
    };
}

fn nop() {
    // SAFETY: NOP does nothing.
    unsafe { core::arch::asm!("nop", options(nomem, nostack)) };
}

fn timed(mut f: impl FnMut()) -> u64 {
    let start = cpu::rdtsc();
    for _ in 0..ITERATIONS {
        f();
    }
    cpu::rdtsc().wrapping_sub(start)
}

/// Run the benchmarks and halt.
pub fn run(tsc_khz: u64) -> ! {
    let baseline = timed(nop);
    let cpuid = timed(cpuid0);
    let io = timed(|| cpu::outb(0x80, 0));
    let per = |total: u64| total.saturating_sub(baseline) / ITERATIONS;
    say!(
        "BENCH cpuid iterations={ITERATIONS} ticks={cpuid} baseline_ticks={baseline} per_exit={}",
        per(cpuid)
    );
    say!(
        "BENCH io_out iterations={ITERATIONS} ticks={io} baseline_ticks={baseline} per_exit={}",
        per(io)
    );
    let duration = tsc_khz.saturating_mul(BENCH_SLICE_MS);
    let mut stats = GapStats::new(GAP_THRESHOLD);
    let start = cpu::rdtsc();
    let mut last = start;
    while last.wrapping_sub(start) < duration {
        let now = cpu::rdtsc();
        stats.step(now.wrapping_sub(last));
        last = now;
    }
    say!(
        "BENCH slices duration_ticks={duration} gap_threshold={GAP_THRESHOLD} gaps={} \
         gap_mean={} gap_min={} gap_max={} run_mean={}",
        stats.gaps,
        stats.mean(),
        if stats.gaps == 0 { 0 } else { stats.min },
        stats.max,
        stats.mean_run()
    );
    say!("BENCH-DONE");
    cpu::halt_forever()
}
