//! CPU models: which CPUID feature bits a VM is shown (`[vm NAME] cpu = host | NAME`).
//!
//! Why: a VM that saw AVX2 on a new host cannot move to an older host without it, because
//! the guest already decided to use it. Like QEMU's `-cpu` models or vSphere's EVC, a VM
//! started with a *named baseline* sees only that baseline's features, so it can move to any
//! host that offers the baseline; a VM started with `host` sees everything this host offers
//! and can only move to hosts offering as much.
//!
//! A model is a set of feature names from [`migration_proto::cpu::features`] (the allow-list
//! of everything tern can show). What a host *offers* is its own CPUID intersected with the
//! allow-list, plus the features tern emulates itself whatever the CPU has ([`EMULATED`]:
//! the local APIC and x2APIC with the TSC-deadline timer, MTRRs). A named model runs on a
//! host only if the host offers all of it; [`FeatureMasks::missing_from`] lists what lacks.
//!
//! The masks are what migrates: the source describes the VM with its model
//! ([`FeatureMasks`] applied to CPUID, `kernel::migration::adapters::cpu_descriptor`) so the
//! destination's compatibility check (migration-proto `CpuDescriptor::compare`) names every
//! missing feature, and the masks travel as the `cpu-model` device state so the destination
//! keeps showing the same CPU.

use alloc::string::String;
use alloc::vec::Vec;

use migration_proto::cpu::CpuidRegister::{self, Ebx, Ecx, Edx};
use migration_proto::cpu::features::{self, FEATURES};

use super::cpuid::CpuidResult;

/// The feature registers a model masks, in [`FeatureMasks`] order.
pub const MASKED_REGISTERS: [(u32, CpuidRegister); 7] = [
    (1, Ecx),
    (1, Edx),
    (7, Ebx),
    (7, Ecx),
    (7, Edx),
    (0x8000_0001, Ecx),
    (0x8000_0001, Edx),
];

/// Features tern provides by emulation on every host: the local APIC model (xAPIC MMIO,
/// x2APIC MSRs, TSC-deadline timer), the MTRR MSRs and IA32_TSC_ADJUST (`vm::msr`).
pub const EMULATED: [&str; 5] = ["apic", "x2apic", "tsc_deadline_timer", "mtrr", "tsc_adjust"];

/// For each of [`MASKED_REGISTERS`], the feature bits a VM may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureMasks(pub [u32; MASKED_REGISTERS.len()]);

/// The architectural minimum every x86-64 guest relies on; every named model has it.
const X86_64_BASE: &[&str] = &[
    "fpu",
    "de",
    "pse",
    "tsc",
    "msr",
    "pae",
    "cx8",
    "apic",
    "sep",
    "mtrr",
    "pge",
    "cmov",
    "pat",
    "pse36",
    "clflush",
    "mmx",
    "fxsr",
    "sse",
    "sse2",
    "syscall",
    "nx",
    "lm",
    "x2apic",
    "tsc_deadline_timer",
    "tsc_adjust",
];
const NEHALEM: &[&str] = &[
    "pni", "ssse3", "cx16", "sse4_1", "sse4_2", "popcnt", "lahf_lm", "rdtscp",
];
const SANDYBRIDGE: &[&str] = &["pclmulqdq", "aes", "xsave", "avx"];
const HASWELL: &[&str] = &[
    "fma", "movbe", "f16c", "rdrand", "fsgsbase", "bmi1", "avx2", "smep", "bmi2", "erms", "abm",
];
const SKYLAKE: &[&str] = &[
    "rdseed",
    "adx",
    "smap",
    "clflushopt",
    "3dnowprefetch",
    "pdpe1gb",
];
const TIGERLAKE: &[&str] = &[
    "clwb",
    "sha_ni",
    "gfni",
    "vaes",
    "vpclmulqdq",
    "rdpid",
    "movdiri",
    "movdir64b",
    "fsrm",
    "md_clear",
];

/// A named baseline: a microarchitecture's features, each generation a superset of the one
/// before (as QEMU's models of the same names, restricted to what tern can show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedModel {
    /// The name used in `cpu = NAME`.
    pub name: &'static str,
    /// One line for `info cpu-models`.
    pub summary: &'static str,
    /// The feature lists it adds up.
    parts: &'static [&'static [&'static str]],
}

/// Every named model, oldest first.
pub const NAMED_MODELS: &[NamedModel] = &[
    NamedModel {
        name: "nehalem",
        summary: "SSE4.2, POPCNT (Core i7 1st gen, 2008)",
        parts: &[X86_64_BASE, NEHALEM],
    },
    NamedModel {
        name: "sandybridge",
        summary: "+ AES, PCLMULQDQ, XSAVE, AVX (2011)",
        parts: &[X86_64_BASE, NEHALEM, SANDYBRIDGE],
    },
    NamedModel {
        name: "haswell",
        summary: "+ AVX2, FMA, BMI1/2, MOVBE, RDRAND, FSGSBASE, SMEP (2013)",
        parts: &[X86_64_BASE, NEHALEM, SANDYBRIDGE, HASWELL],
    },
    NamedModel {
        name: "skylake",
        summary: "+ RDSEED, ADX, SMAP, CLFLUSHOPT, 1 GiB pages (2015)",
        parts: &[X86_64_BASE, NEHALEM, SANDYBRIDGE, HASWELL, SKYLAKE],
    },
    NamedModel {
        name: "tigerlake",
        summary: "+ SHA, GFNI, VAES, VPCLMULQDQ, RDPID, MOVDIRI, FSRM (2020; no AVX-512)",
        parts: &[
            X86_64_BASE,
            NEHALEM,
            SANDYBRIDGE,
            HASWELL,
            SKYLAKE,
            TIGERLAKE,
        ],
    },
];

/// `cpu = NAME` names no model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModel(pub String);

impl core::fmt::Display for UnknownModel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown CPU model '{}' (known: host", self.0)?;
        for m in NAMED_MODELS {
            write!(f, ", {}", m.name)?;
        }
        write!(f, ")")
    }
}

impl FeatureMasks {
    /// No feature at all.
    pub const NONE: Self = Self([0; MASKED_REGISTERS.len()]);

    /// Every feature tern can show (the allow-list).
    pub fn all() -> Self {
        let mut m = Self::NONE;
        for (slot, &(leaf, reg)) in m.0.iter_mut().zip(&MASKED_REGISTERS) {
            *slot = features::allowed_mask(leaf, 0, reg);
        }
        m
    }

    /// The features called `names`; a name outside the allow-list is a bug in a model table
    /// (the unit tests check every table), so it is skipped rather than invented.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut m = Self::NONE;
        for name in names {
            if let Some(f) = features::by_name(name) {
                m.set(f.leaf, f.register, f.mask());
            }
        }
        m
    }

    fn slot(leaf: u32, reg: CpuidRegister) -> Option<usize> {
        MASKED_REGISTERS
            .iter()
            .position(|&(l, r)| l == leaf && r == reg)
    }

    fn set(&mut self, leaf: u32, reg: CpuidRegister, bits: u32) {
        if let Some(i) = Self::slot(leaf, reg) {
            self.0[i] |= bits;
        }
    }

    /// The mask of one register (`None`: the register is not a feature register).
    pub fn mask(&self, leaf: u32, subleaf: u32, reg: CpuidRegister) -> Option<u32> {
        if subleaf != 0 {
            return None;
        }
        Self::slot(leaf, reg).map(|i| self.0[i])
    }

    /// Both masks at once.
    pub fn intersect(&self, other: &Self) -> Self {
        let mut m = *self;
        for (a, b) in m.0.iter_mut().zip(other.0) {
            *a &= b;
        }
        m
    }

    /// What a host whose CPU answers `host_cpuid` offers: its features within the
    /// allow-list, plus [`EMULATED`].
    pub fn host_offer(host_cpuid: impl Fn(u32, u32) -> CpuidResult) -> Self {
        let all = Self::all();
        let mut m = Self::NONE;
        for (i, &(leaf, reg)) in MASKED_REGISTERS.iter().enumerate() {
            let r = host_cpuid(leaf, 0);
            let value = match reg {
                CpuidRegister::Eax => r.eax,
                Ebx => r.ebx,
                Ecx => r.ecx,
                Edx => r.edx,
            };
            m.0[i] = value & all.0[i];
        }
        let emulated = Self::from_names(EMULATED);
        for (a, b) in m.0.iter_mut().zip(emulated.0) {
            *a |= b;
        }
        m
    }

    /// The names of the features of `self` that `offer` lacks, in table order.
    pub fn missing_from(&self, offer: &Self) -> Vec<&'static str> {
        FEATURES
            .iter()
            .filter(|f| {
                let want = self.mask(f.leaf, f.subleaf, f.register).unwrap_or(0);
                let have = offer.mask(f.leaf, f.subleaf, f.register).unwrap_or(0);
                want & f.mask() != 0 && have & f.mask() == 0
            })
            .map(|f| f.name)
            .collect()
    }

    /// Whether `name` is among the features.
    pub fn has(&self, name: &str) -> bool {
        features::by_name(name)
            .is_some_and(|f| self.mask(f.leaf, f.subleaf, f.register).unwrap_or(0) & f.mask() != 0)
    }

    /// The XSAVE components the model lets a guest enable: x87 and SSE with XSAVE, AVX with
    /// AVX (SDM Vol. 1 §13.3), never more than tern switches (`cpuid::XCR0_OFFERED`).
    pub fn xcr0(&self) -> u64 {
        match (self.has("xsave"), self.has("avx")) {
            (false, _) => 0b001,
            (true, false) => 0b011,
            (true, true) => 0b111,
        }
    }

    /// Wire form for the `cpu-model` device state: the masks, little-endian, in
    /// [`MASKED_REGISTERS`] order.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|m| m.to_le_bytes()).collect()
    }

    /// Reads [`to_bytes`](Self::to_bytes); bits outside the allow-list are dropped (a peer
    /// cannot make this host show what tern never shows).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != MASKED_REGISTERS.len() * 4 {
            return None;
        }
        let mut m = Self::NONE;
        for (slot, chunk) in m.0.iter_mut().zip(bytes.chunks_exact(4)) {
            *slot = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Some(m.intersect(&Self::all()))
    }
}

/// The model a VM runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuModel {
    /// Everything this host offers.
    Host,
    /// A named baseline.
    Named(&'static NamedModel),
}

impl CpuModel {
    /// The model called `name` (`host` or one of [`NAMED_MODELS`], ASCII case ignored).
    pub fn parse(name: &str) -> Result<Self, UnknownModel> {
        if name.eq_ignore_ascii_case("host") {
            return Ok(Self::Host);
        }
        NAMED_MODELS
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
            .map(Self::Named)
            .ok_or_else(|| UnknownModel(name.into()))
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Named(m) => m.name,
        }
    }

    /// The features it shows on a host offering `offer`, or the names of the features of a
    /// named model that this host lacks.
    pub fn masks_on(&self, offer: &FeatureMasks) -> Result<FeatureMasks, Vec<&'static str>> {
        match self {
            Self::Host => Ok(*offer),
            Self::Named(m) => {
                let want = m.features();
                let missing = want.missing_from(offer);
                if missing.is_empty() {
                    Ok(want)
                } else {
                    Err(missing)
                }
            }
        }
    }
}

impl NamedModel {
    /// The model's features.
    pub fn features(&self) -> FeatureMasks {
        FeatureMasks::from_names(self.parts.iter().flat_map(|p| p.iter().copied()))
    }
}

/// The name of the model whose features are exactly `masks` on a host offering `offer`:
/// a named baseline, `host`, or `custom` (e.g. a VM that arrived with the whole offer of a
/// different host). The masks are what a VM keeps and migrates; this names them for `vm info`.
pub fn model_name(masks: &FeatureMasks, offer: &FeatureMasks) -> &'static str {
    NAMED_MODELS
        .iter()
        .find(|m| m.features() == *masks)
        .map(|m| m.name)
        .unwrap_or(if masks == offer { "host" } else { "custom" })
}

/// The lines of `info cpu-models` for a host offering `offer`: each model, whether this
/// host can run it and, if not, what it lacks.
pub fn describe_models(offer: &FeatureMasks) -> Vec<String> {
    let mut lines = Vec::with_capacity(NAMED_MODELS.len() + 2);
    lines.push(alloc::format!(
        "host         yes  everything this host offers ({} features)",
        FEATURES
            .iter()
            .filter(|f| offer.mask(f.leaf, f.subleaf, f.register).unwrap_or(0) & f.mask() != 0)
            .count()
    ));
    for m in NAMED_MODELS {
        let missing = m.features().missing_from(offer);
        let line = if missing.is_empty() {
            alloc::format!("{:<12} yes  {}", m.name, m.summary)
        } else {
            alloc::format!("{:<12} no   lacks: {}", m.name, missing.join(" "))
        };
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests;
