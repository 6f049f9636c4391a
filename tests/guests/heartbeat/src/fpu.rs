//! `hb.fpu=N`: keep known values in the x87, SSE and (when offered) AVX registers for the
//! guest's whole life and check after every pass that they are still there.
//!
//! Why: a hypervisor must give each VM its own register file (SDM Vol. 1 ch. 13; VMX does
//! not switch it). The guest is soft-float, so no code but this module touches those
//! registers: any change between two checks is the hypervisor's doing (another VM's
//! values, a lost state after migration) and is reported as `CORRUPT fpu ...`. `N` seeds
//! the values, so two VMs on one host hold different ones.

use crate::say;

/// FXSAVE/XSAVE area offsets (SDM Vol. 1 §10.5.1 Table 10-2, §13.4): FCW, MXCSR, the eight
/// 80-bit x87 registers in 16-byte slots, XMM0-15, and the upper YMM halves (component 2,
/// at the offset CPUID.(0xD,2):EBX reports).
const FCW: usize = 0;
const MXCSR: usize = 24;
const ST0: usize = 32;
const XMM0: usize = 160;
const XMM_END: usize = 416;

/// Most `CORRUPT fpu` lines in the guest's life.
const MAX_REPORTS: u32 = 16;

#[repr(C, align(64))]
struct Area([u8; 4096]);

/// The register values of seed `seed` and what a save of them looks like.
pub struct FpuCheck {
    seed: u64,
    avx: Option<usize>,
    values: [u64; 64],
    x87: [u64; 8],
    control: [u32; 2],
    expected: Area,
    reports: u32,
    /// Checks done so far.
    pub checks: u64,
}

fn read_cr0() -> u64 {
    let v;
    // SAFETY: reading CR0 has no side effect (CPL 0).
    unsafe { core::arch::asm!("mov {}, cr0", out(reg) v, options(nomem, nostack)) };
    v
}

fn read_cr4() -> u64 {
    let v;
    // SAFETY: reading CR4 has no side effect (CPL 0).
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}

fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// A splitmix64 step: distinct, non-zero-looking values from one seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FpuCheck {
    /// Turn on SSE (and AVX with XSAVE when CPUID offers it), load the values of `seed`.
    pub fn start(seed: u64) -> Self {
        let cr0 = (read_cr0() & !((1 << 2) | (1 << 3))) | (1 << 1); // EM, TS off; MP on
        let [_, _, ecx1, _] = cpuid(1, 0);
        let xsave = ecx1 & (1 << 26) != 0;
        let avx_cpu = ecx1 & (1 << 28) != 0;
        let mut cr4 = read_cr4() | (1 << 9) | (1 << 10); // OSFXSR, OSXMMEXCPT
        let avx = if xsave && avx_cpu && cpuid(0xd, 0)[0] & 0b110 == 0b110 {
            cr4 |= 1 << 18; // OSXSAVE
            Some(cpuid(0xd, 2)[1] as usize).filter(|&o| o >= 576 && o + 256 <= 4096)
        } else {
            None
        };
        // SAFETY: the bits changed enable x87/SSE/XSAVE for this guest, which runs at CPL 0
        // and has no other code using them.
        unsafe {
            core::arch::asm!("mov cr0, {}", in(reg) cr0, options(nomem, nostack));
            core::arch::asm!("mov cr4, {}", in(reg) cr4, options(nomem, nostack));
        }
        if avx.is_some() {
            // SAFETY: CR4.OSXSAVE is set and CPUID.(0xD,0) reports x87, SSE and AVX.
            unsafe { core::arch::asm!("xsetbv", in("ecx") 0, in("eax") 0b111, in("edx") 0) };
        }
        let mut values = [0u64; 64];
        for (i, v) in values.iter_mut().enumerate() {
            *v = mix(seed.wrapping_mul(1000).wrapping_add(i as u64));
        }
        let mut x87 = [0u64; 8];
        for (i, v) in x87.iter_mut().enumerate() {
            // Integers an 80-bit register holds exactly (below 2^63).
            *v = mix(seed.wrapping_mul(7777).wrapping_add(i as u64)) >> 2;
        }
        // FCW: all exceptions masked, rounding mode and precision from the seed; MXCSR:
        // all exceptions masked, rounding mode from the seed.
        let control = [
            0x003f | (((seed & 3) as u32) << 10) | (if seed & 4 != 0 { 0b11 } else { 0b10 } << 8),
            0x1f80 | (((seed & 3) as u32) << 13),
        ];
        let mut check = Self {
            seed,
            avx,
            values,
            x87,
            control,
            expected: Area([0; 4096]),
            reports: 0,
            checks: 0,
        };
        check.load();
        let mut expected = Area([0; 4096]);
        check.save(&mut expected);
        check.expected = expected;
        say!(
            "HB-FPU seed={seed} sse=yes avx={} ymm_hi_offset={}",
            if avx.is_some() { "yes" } else { "no" },
            avx.unwrap_or(0)
        );
        check
    }

    /// Load every register with the seed's values.
    fn load(&self) {
        let v = self.values.as_ptr();
        let x = self.x87.as_ptr();
        let c = self.control.as_ptr();
        // SAFETY: the pointers address this struct's arrays (64 u64 = 512 bytes, 8 u64,
        // 2 u32), read only; SSE is enabled (`start`) and no compiled code uses the
        // registers, which is the point (they are deliberately not declared clobbered).
        unsafe {
            core::arch::asm!(
                "fninit",
                "fldcw word ptr [{c}]",
                "ldmxcsr dword ptr [{c} + 4]",
                "fild qword ptr [{x}]",
                "fild qword ptr [{x} + 8]",
                "fild qword ptr [{x} + 16]",
                "fild qword ptr [{x} + 24]",
                "fild qword ptr [{x} + 32]",
                "fild qword ptr [{x} + 40]",
                "fild qword ptr [{x} + 48]",
                "fild qword ptr [{x} + 56]",
                "movdqu xmm0, xmmword ptr [{v}]",
                "movdqu xmm1, xmmword ptr [{v} + 16]",
                "movdqu xmm2, xmmword ptr [{v} + 32]",
                "movdqu xmm3, xmmword ptr [{v} + 48]",
                "movdqu xmm4, xmmword ptr [{v} + 64]",
                "movdqu xmm5, xmmword ptr [{v} + 80]",
                "movdqu xmm6, xmmword ptr [{v} + 96]",
                "movdqu xmm7, xmmword ptr [{v} + 112]",
                "movdqu xmm8, xmmword ptr [{v} + 128]",
                "movdqu xmm9, xmmword ptr [{v} + 144]",
                "movdqu xmm10, xmmword ptr [{v} + 160]",
                "movdqu xmm11, xmmword ptr [{v} + 176]",
                "movdqu xmm12, xmmword ptr [{v} + 192]",
                "movdqu xmm13, xmmword ptr [{v} + 208]",
                "movdqu xmm14, xmmword ptr [{v} + 224]",
                "movdqu xmm15, xmmword ptr [{v} + 240]",
                c = in(reg) c,
                x = in(reg) x,
                v = in(reg) v,
                options(nostack, readonly),
            );
        }
        if self.avx.is_some() {
            // SAFETY: AVX is enabled (`start`: CR4.OSXSAVE, XCR0 = x87|SSE|AVX); the
            // pointer addresses the second half of `values` (256 bytes), read only.
            // VINSERTF128 writes only the upper halves' source: the lower halves keep the
            // values loaded above.
            unsafe {
                core::arch::asm!(
                    "vinsertf128 ymm0, ymm0, xmmword ptr [{v}], 1",
                    "vinsertf128 ymm1, ymm1, xmmword ptr [{v} + 16], 1",
                    "vinsertf128 ymm2, ymm2, xmmword ptr [{v} + 32], 1",
                    "vinsertf128 ymm3, ymm3, xmmword ptr [{v} + 48], 1",
                    "vinsertf128 ymm4, ymm4, xmmword ptr [{v} + 64], 1",
                    "vinsertf128 ymm5, ymm5, xmmword ptr [{v} + 80], 1",
                    "vinsertf128 ymm6, ymm6, xmmword ptr [{v} + 96], 1",
                    "vinsertf128 ymm7, ymm7, xmmword ptr [{v} + 112], 1",
                    "vinsertf128 ymm8, ymm8, xmmword ptr [{v} + 128], 1",
                    "vinsertf128 ymm9, ymm9, xmmword ptr [{v} + 144], 1",
                    "vinsertf128 ymm10, ymm10, xmmword ptr [{v} + 160], 1",
                    "vinsertf128 ymm11, ymm11, xmmword ptr [{v} + 176], 1",
                    "vinsertf128 ymm12, ymm12, xmmword ptr [{v} + 192], 1",
                    "vinsertf128 ymm13, ymm13, xmmword ptr [{v} + 208], 1",
                    "vinsertf128 ymm14, ymm14, xmmword ptr [{v} + 224], 1",
                    "vinsertf128 ymm15, ymm15, xmmword ptr [{v} + 240], 1",
                    v = in(reg) self.values[32..].as_ptr(),
                    options(nostack, readonly),
                );
            }
        }
    }

    /// Save the registers into `area` (cleared first: a component XSAVE reports as initial
    /// is not written, and must then compare as lost).
    fn save(&self, area: &mut Area) {
        area.0.fill(0);
        let p = area.0.as_mut_ptr();
        if self.avx.is_some() {
            // SAFETY: CR4.OSXSAVE set, XCR0 = 0b111; the area is 64-byte aligned and 4096
            // bytes, past the end of the AVX component (checked in `start`).
            unsafe {
                core::arch::asm!("xsave64 [{}]", in(reg) p, in("eax") 0b111, in("edx") 0,
                    options(nostack))
            };
        } else {
            // SAFETY: CR4.OSFXSR set; the area is 16-byte aligned and at least 512 bytes.
            unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) p, options(nostack)) };
        }
    }

    /// The byte ranges that hold the values: FCW, MXCSR, ST0-7 (10 of each 16 bytes),
    /// XMM0-15 and, with AVX, the upper YMM halves.
    fn compared(avx: Option<usize>) -> impl Iterator<Item = (&'static str, usize, usize)> {
        let st = (0..8).map(|i| ("st", ST0 + 16 * i, ST0 + 16 * i + 10));
        [
            ("fcw", FCW, FCW + 2),
            ("mxcsr", MXCSR, MXCSR + 4),
            ("xmm", XMM0, XMM_END),
        ]
        .into_iter()
        .chain(st)
        .chain(avx.map(|o| ("ymm_hi", o, o + 256)))
    }

    /// Compare the registers with the seed's values; report and reload on a difference.
    pub fn check(&mut self) {
        self.checks += 1;
        let mut now = Area([0; 4096]);
        self.save(&mut now);
        let mut changed = false;
        for (name, start, end) in Self::compared(self.avx) {
            let (e, f) = (&self.expected.0[start..end], &now.0[start..end]);
            if e != f {
                changed = true;
                if self.reports < MAX_REPORTS {
                    self.reports += 1;
                    let at = e.iter().zip(f).position(|(a, b)| a != b).unwrap_or(0);
                    say!(
                        "CORRUPT fpu seed={} register={name} area_offset={} expected={:#04x} found={:#04x} check={}",
                        self.seed,
                        start + at,
                        e[at],
                        f[at],
                        self.checks
                    );
                }
            }
        }
        if changed {
            self.load();
        }
    }
}
