//! CPU compatibility descriptor: what a guest can see of its CPU (CPUID leaves, the XCR0
//! bits it may enable, feature MSRs), and the comparison that decides whether a guest that
//! runs on one host can continue on another.
//!
//! The rule is "the destination offers at least what the guest was shown": every feature bit
//! the source exposes must also be available on the destination, limits (max leaf, address
//! widths) must not shrink, and the vendor must be the same. `compare` lists *every*
//! incompatibility, so the operator sees the whole picture at once.
//!
//! Leaves the comparison does not know (cache topology, brand string, ...) are informative
//! only: the hypervisor fixes them in its CPUID model and they do not constrain migration.

use alloc::vec::Vec;

use crate::wire::{DecodeError, Reader, Writer};

mod compare;
pub mod features;
#[cfg(test)]
mod tests;

pub use compare::{CpuidRegister, Incompatibility};

/// Most CPUID entries in a descriptor.
pub const MAX_CPUID_ENTRIES: usize = 128;
/// Most feature MSRs in a descriptor.
pub const MAX_FEATURE_MSRS: usize = 64;

/// One CPUID leaf/subleaf as the guest sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidEntry {
    /// EAX input.
    pub leaf: u32,
    /// ECX input (0 for leaves without subleaves).
    pub subleaf: u32,
    /// Output registers.
    pub eax: u32,
    /// Output EBX.
    pub ebx: u32,
    /// Output ECX.
    pub ecx: u32,
    /// Output EDX.
    pub edx: u32,
}

/// A feature MSR (e.g. IA32_ARCH_CAPABILITIES 0x10a) whose bits are guest-visible features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureMsr {
    /// MSR index.
    pub index: u32,
    /// Feature bits exposed to the guest.
    pub value: u64,
}

/// Everything about the CPU a guest can observe and depend on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CpuDescriptor {
    /// Guest-visible CPUID, no (leaf, subleaf) twice.
    pub cpuid: Vec<CpuidEntry>,
    /// XCR0 bits the guest may enable (the XSAVE feature mask).
    pub xcr0_supported: u64,
    /// Feature MSRs, no index twice.
    pub feature_msrs: Vec<FeatureMsr>,
}

impl CpuDescriptor {
    /// The entry for (leaf, subleaf).
    pub fn leaf(&self, leaf: u32, subleaf: u32) -> Option<&CpuidEntry> {
        self.cpuid
            .iter()
            .find(|e| e.leaf == leaf && e.subleaf == subleaf)
    }

    /// The 12-byte vendor string from leaf 0, if present.
    pub fn vendor(&self) -> Option<[u8; 12]> {
        let e = self.leaf(0, 0)?;
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&e.ebx.to_le_bytes());
        v[4..8].copy_from_slice(&e.edx.to_le_bytes());
        v[8..].copy_from_slice(&e.ecx.to_le_bytes());
        Some(v)
    }

    /// Appends the wire form.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.count16(self.cpuid.len());
        for e in &self.cpuid {
            for v in [e.leaf, e.subleaf, e.eax, e.ebx, e.ecx, e.edx] {
                w.u32(v);
            }
        }
        w.u64(self.xcr0_supported);
        w.count16(self.feature_msrs.len());
        for m in &self.feature_msrs {
            w.u32(m.index);
            w.u64(m.value);
        }
    }

    /// Reads the wire form, rejecting over-long lists and duplicate keys.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count16("cpu.cpuid_count", MAX_CPUID_ENTRIES)?;
        let mut cpuid = Vec::with_capacity(n);
        for _ in 0..n {
            let e = CpuidEntry {
                leaf: r.u32("cpu.leaf")?,
                subleaf: r.u32("cpu.subleaf")?,
                eax: r.u32("cpu.eax")?,
                ebx: r.u32("cpu.ebx")?,
                ecx: r.u32("cpu.ecx")?,
                edx: r.u32("cpu.edx")?,
            };
            if cpuid
                .iter()
                .any(|o: &CpuidEntry| o.leaf == e.leaf && o.subleaf == e.subleaf)
            {
                let key = (u64::from(e.leaf) << 32) | u64::from(e.subleaf);
                return Err(DecodeError::Duplicate {
                    field: "cpu.cpuid",
                    key,
                });
            }
            cpuid.push(e);
        }
        let xcr0_supported = r.u64("cpu.xcr0_supported")?;
        let n = r.count16("cpu.msr_count", MAX_FEATURE_MSRS)?;
        let mut feature_msrs = Vec::with_capacity(n);
        for _ in 0..n {
            let m = FeatureMsr {
                index: r.u32("cpu.msr_index")?,
                value: r.u64("cpu.msr_value")?,
            };
            if feature_msrs.iter().any(|o: &FeatureMsr| o.index == m.index) {
                return Err(DecodeError::Duplicate {
                    field: "cpu.feature_msrs",
                    key: m.index.into(),
                });
            }
            feature_msrs.push(m);
        }
        Ok(CpuDescriptor {
            cpuid,
            xcr0_supported,
            feature_msrs,
        })
    }

    /// Checks the limits `decode` enforces, before encoding.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.cpuid.len() > MAX_CPUID_ENTRIES {
            return Err(DecodeError::TooLong {
                field: "cpu.cpuid_count",
                len: self.cpuid.len(),
                max: MAX_CPUID_ENTRIES,
            });
        }
        if self.feature_msrs.len() > MAX_FEATURE_MSRS {
            return Err(DecodeError::TooLong {
                field: "cpu.msr_count",
                len: self.feature_msrs.len(),
                max: MAX_FEATURE_MSRS,
            });
        }
        Ok(())
    }
}
