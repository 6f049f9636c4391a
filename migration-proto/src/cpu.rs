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
use core::fmt;

use crate::wire::{DecodeError, Reader, Writer};

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

/// A CPUID output register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuidRegister {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

/// One reason a guest cannot move from the source CPU to the destination CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incompatibility {
    /// The CPU vendors differ (CPUID leaf 0 EBX/EDX/ECX).
    VendorMismatch {
        /// Source vendor string.
        source: [u8; 12],
        /// Destination vendor string.
        destination: [u8; 12],
    },
    /// A leaf the comparison needs is absent on the destination.
    MissingLeaf {
        /// Leaf.
        leaf: u32,
        /// Subleaf.
        subleaf: u32,
    },
    /// Feature bits the guest sees are absent on the destination.
    MissingFeatureBits {
        /// Leaf.
        leaf: u32,
        /// Subleaf.
        subleaf: u32,
        /// Register.
        register: CpuidRegister,
        /// The missing bits.
        bits: u32,
    },
    /// A limit field (max leaf, address width) is smaller on the destination.
    LimitTooSmall {
        /// Leaf.
        leaf: u32,
        /// Subleaf.
        subleaf: u32,
        /// Register.
        register: CpuidRegister,
        /// Value the guest saw.
        source: u32,
        /// Value the destination offers.
        destination: u32,
    },
    /// XCR0 bits the guest may use are not supported on the destination.
    MissingXcr0Bits(u64),
    /// A feature MSR is not provided on the destination.
    MissingMsr(u32),
    /// Bits of a feature MSR are absent on the destination.
    MissingMsrBits {
        /// MSR index.
        index: u32,
        /// The missing bits.
        bits: u64,
    },
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incompatibility::VendorMismatch {
                source,
                destination,
            } => write!(
                f,
                "CPU vendor {} on the source, {} on the destination",
                core::str::from_utf8(source).unwrap_or("?"),
                core::str::from_utf8(destination).unwrap_or("?")
            ),
            Incompatibility::MissingLeaf { leaf, subleaf } => {
                write!(
                    f,
                    "CPUID leaf {leaf:#x}.{subleaf} missing on the destination"
                )
            }
            Incompatibility::MissingFeatureBits {
                leaf,
                subleaf,
                register,
                bits,
            } => write!(
                f,
                "CPUID {leaf:#x}.{subleaf} {register:?} bits {bits:#010x} missing on the destination"
            ),
            Incompatibility::LimitTooSmall {
                leaf,
                subleaf,
                register,
                source,
                destination,
            } => write!(
                f,
                "CPUID {leaf:#x}.{subleaf} {register:?} limit {destination:#x} on the destination is below {source:#x}"
            ),
            Incompatibility::MissingXcr0Bits(bits) => {
                write!(f, "XCR0 bits {bits:#x} not supported on the destination")
            }
            Incompatibility::MissingMsr(index) => {
                write!(f, "feature MSR {index:#x} missing on the destination")
            }
            Incompatibility::MissingMsrBits { index, bits } => {
                write!(
                    f,
                    "MSR {index:#x} bits {bits:#x} missing on the destination"
                )
            }
        }
    }
}

/// How a register of a known leaf is compared.
#[derive(Clone, Copy)]
enum Rule {
    /// Feature bits under the mask: source bits must be present on the destination.
    Subset(u32),
    /// A field `(value >> shift) & mask` that must not shrink.
    Limit { shift: u32, mask: u32 },
    /// Several limit fields and feature bits are not needed: ignored.
    Ignore,
}

/// Comparison table: (leaf, subleaf, [eax, ebx, ecx, edx] rules). Leaf 1 ECX bit 27 (OSXSAVE)
/// mirrors CR4 and is excluded; leaf 1 EAX/EBX (signature, APIC id) are informative.
const RULES: &[(u32, u32, [Rule; 4])] = {
    use Rule::*;
    const ALL: Rule = Subset(u32::MAX);
    const MAX: Rule = Limit {
        shift: 0,
        mask: u32::MAX,
    };
    &[
        (0x0, 0, [MAX, Ignore, Ignore, Ignore]),
        (0x1, 0, [Ignore, Ignore, Subset(!(1 << 27)), ALL]),
        (0x7, 0, [MAX, ALL, ALL, ALL]),
        (0x7, 1, [ALL, ALL, ALL, ALL]),
        (0xd, 0, [ALL, Ignore, Ignore, ALL]),
        (0xd, 1, [ALL, Ignore, ALL, ALL]),
        (0x8000_0000, 0, [MAX, Ignore, Ignore, Ignore]),
        (0x8000_0001, 0, [Ignore, Ignore, ALL, ALL]),
        (0x8000_0007, 0, [Ignore, Ignore, Ignore, ALL]),
        (
            0x8000_0008,
            0,
            [
                Limit {
                    shift: 0,
                    mask: 0xff,
                },
                ALL,
                Ignore,
                Ignore,
            ],
        ),
    ]
};

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

    /// Every reason a guest shown `self` (the source) cannot run on `destination`. Empty
    /// means compatible.
    pub fn compare(&self, destination: &CpuDescriptor) -> Vec<Incompatibility> {
        let mut out = Vec::new();
        if let (Some(s), Some(d)) = (self.vendor(), destination.vendor())
            && s != d
        {
            out.push(Incompatibility::VendorMismatch {
                source: s,
                destination: d,
            });
        }
        for &(leaf, subleaf, rules) in RULES {
            let Some(src) = self.leaf(leaf, subleaf) else {
                continue;
            };
            let Some(dst) = destination.leaf(leaf, subleaf) else {
                out.push(Incompatibility::MissingLeaf { leaf, subleaf });
                continue;
            };
            let regs = [
                (CpuidRegister::Eax, src.eax, dst.eax),
                (CpuidRegister::Ebx, src.ebx, dst.ebx),
                (CpuidRegister::Ecx, src.ecx, dst.ecx),
                (CpuidRegister::Edx, src.edx, dst.edx),
            ];
            for (rule, (register, s, d)) in rules.iter().zip(regs) {
                match *rule {
                    Rule::Subset(mask) => {
                        let bits = s & mask & !d;
                        if bits != 0 {
                            out.push(Incompatibility::MissingFeatureBits {
                                leaf,
                                subleaf,
                                register,
                                bits,
                            });
                        }
                    }
                    Rule::Limit { shift, mask } => {
                        let (s, d) = ((s >> shift) & mask, (d >> shift) & mask);
                        if d < s {
                            out.push(Incompatibility::LimitTooSmall {
                                leaf,
                                subleaf,
                                register,
                                source: s,
                                destination: d,
                            });
                        }
                    }
                    Rule::Ignore => {}
                }
            }
        }
        let xcr0 = self.xcr0_supported & !destination.xcr0_supported;
        if xcr0 != 0 {
            out.push(Incompatibility::MissingXcr0Bits(xcr0));
        }
        for msr in &self.feature_msrs {
            match destination
                .feature_msrs
                .iter()
                .find(|m| m.index == msr.index)
            {
                None => out.push(Incompatibility::MissingMsr(msr.index)),
                Some(d) => {
                    let bits = msr.value & !d.value;
                    if bits != 0 {
                        out.push(Incompatibility::MissingMsrBits {
                            index: msr.index,
                            bits,
                        });
                    }
                }
            }
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(leaf: u32, subleaf: u32, regs: [u32; 4]) -> CpuidEntry {
        CpuidEntry {
            leaf,
            subleaf,
            eax: regs[0],
            ebx: regs[1],
            ecx: regs[2],
            edx: regs[3],
        }
    }

    fn intel(max_leaf: u32, leaf1_ecx: u32, leaf7_ebx: u32, phys_bits: u32) -> CpuDescriptor {
        CpuDescriptor {
            cpuid: vec![
                // "GenuineIntel"
                leaf(0, 0, [max_leaf, 0x756e_6547, 0x6c65_746e, 0x4965_6e69]),
                leaf(1, 0, [0x906ea, 0x0100_0800, leaf1_ecx, 0x1f8b_fbff]),
                leaf(7, 0, [0, leaf7_ebx, 0, 0]),
                leaf(0x8000_0008, 0, [0x3000 | phys_bits, 0, 0, 0]),
            ],
            xcr0_supported: 0x7,
            feature_msrs: vec![FeatureMsr {
                index: 0x10a,
                value: 0b1011,
            }],
        }
    }

    #[test]
    fn superset_destination_is_compatible() {
        let src = intel(0xd, 0x0000_0201, 0x1, 39);
        let dst = intel(0x16, 0x8000_0201 | (1 << 27), 0x3, 46);
        assert_eq!(src.compare(&dst), Vec::new());
    }

    #[test]
    fn compare_lists_every_incompatibility() {
        let src = intel(0x16, 0x0000_0203, 0x3, 46);
        let mut dst = intel(0xd, 0x0000_0201, 0x1, 39);
        dst.xcr0_supported = 0x3;
        dst.feature_msrs[0].value = 0b0011;
        dst.cpuid.retain(|e| e.leaf != 7);
        let found = src.compare(&dst);
        assert_eq!(
            found,
            vec![
                Incompatibility::LimitTooSmall {
                    leaf: 0,
                    subleaf: 0,
                    register: CpuidRegister::Eax,
                    source: 0x16,
                    destination: 0xd
                },
                Incompatibility::MissingFeatureBits {
                    leaf: 1,
                    subleaf: 0,
                    register: CpuidRegister::Ecx,
                    bits: 0x2
                },
                Incompatibility::MissingLeaf {
                    leaf: 7,
                    subleaf: 0
                },
                Incompatibility::LimitTooSmall {
                    leaf: 0x8000_0008,
                    subleaf: 0,
                    register: CpuidRegister::Eax,
                    source: 46,
                    destination: 39
                },
                Incompatibility::MissingXcr0Bits(0x4),
                Incompatibility::MissingMsrBits {
                    index: 0x10a,
                    bits: 0b1000
                },
            ]
        );
        let mut amd = dst.clone();
        amd.cpuid[0].ebx = 0x6874_7541;
        amd.feature_msrs.clear();
        let found = src.compare(&amd);
        assert!(matches!(found[0], Incompatibility::VendorMismatch { .. }));
        assert!(found.contains(&Incompatibility::MissingMsr(0x10a)));
    }

    #[test]
    fn duplicate_leaves_are_rejected() {
        let mut d = intel(0xd, 0, 0, 39);
        d.cpuid.push(d.cpuid[1]);
        let mut buf = Vec::new();
        d.encode(&mut Writer::new(&mut buf));
        assert!(matches!(
            CpuDescriptor::decode(&mut Reader::new(&buf)),
            Err(DecodeError::Duplicate { .. })
        ));
    }
}
