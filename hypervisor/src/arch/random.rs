//! Hardware random numbers: RDSEED and RDRAND, when the CPU has them.
//!
//! Intel's DRNG guide (Digital Random Number Generator Software Implementation Guide,
//! §5.2.1) says RDRAND may transiently fail (CF = 0) and should be retried up to 10 times
//! before the caller treats the generator as failed; RDSEED fails more often under load
//! (§5.3.1), so it is retried with a PAUSE in between. Availability: CPUID.01H:ECX[30]
//! (RDRAND) and CPUID.(EAX=07H,ECX=0):EBX[18] (RDSEED), SDM Vol. 2B "RDRAND"/"RDSEED".

use core::arch::asm;

/// Retries per value (DRNG guide §5.2.1).
const RETRIES: usize = 10;

/// Which hardware source produced a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HardwareRandom {
    /// RDSEED (conditioned entropy).
    Rdseed,
    /// RDRAND (DRBG output reseeded from the entropy source).
    Rdrand,
}

impl HardwareRandom {
    /// Name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rdseed => "RDSEED",
            Self::Rdrand => "RDRAND",
        }
    }
}

fn has_rdrand() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 30) != 0
}

fn has_rdseed() -> bool {
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    max_leaf >= 7 && core::arch::x86_64::__cpuid_count(7, 0).ebx & (1 << 18) != 0
}

fn rdseed_once() -> Option<u64> {
    let value: u64;
    let ok: u8;
    // SAFETY: only executed after CPUID reported RDSEED; it writes a register and CF only.
    unsafe {
        asm!("rdseed {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok,
             options(nomem, nostack));
    }
    (ok != 0).then_some(value)
}

fn rdrand_once() -> Option<u64> {
    let value: u64;
    let ok: u8;
    // SAFETY: only executed after CPUID reported RDRAND; it writes a register and CF only.
    unsafe {
        asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok,
             options(nomem, nostack));
    }
    (ok != 0).then_some(value)
}

/// One 64-bit value from RDSEED, else RDRAND, each retried per the DRNG guide; `None` when
/// the CPU has neither or both keep failing.
pub fn random_u64() -> Option<(u64, HardwareRandom)> {
    if has_rdseed() {
        for _ in 0..RETRIES {
            if let Some(v) = rdseed_once() {
                return Some((v, HardwareRandom::Rdseed));
            }
            core::hint::spin_loop();
        }
    }
    if has_rdrand() {
        for _ in 0..RETRIES {
            if let Some(v) = rdrand_once() {
                return Some((v, HardwareRandom::Rdrand));
            }
        }
    }
    None
}
