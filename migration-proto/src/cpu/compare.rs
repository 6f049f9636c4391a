//! The compatibility rule: the destination must offer at least what the guest was shown.

use alloc::vec::Vec;
use core::fmt;

use super::{CpuDescriptor, features};

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
            } => {
                // Named features in the short form (an abort's detail has 512 bytes for
                // the whole list); bits without a name as a mask. Leaf 0xd EAX lists XSAVE
                // components by their XCR0 names.
                if (*leaf, *subleaf, *register) == (0xd, 0, CpuidRegister::Eax) {
                    for (i, name) in xcr0_names(u64::from(*bits)).enumerate() {
                        write!(f, "{}{name}", if i == 0 { "" } else { " " })?;
                    }
                    return write!(f, " state missing (CPUID 0xd.0 Eax {bits:#x})");
                }
                let named_bits = features::FEATURES
                    .iter()
                    .filter(|x| x.leaf == *leaf && x.subleaf == *subleaf && x.register == *register)
                    .fold(0u32, |m, x| m | x.mask());
                if bits & !named_bits == 0 {
                    for (i, name) in features::named(*leaf, *subleaf, *register, *bits).enumerate()
                    {
                        write!(f, "{}{name}", if i == 0 { "" } else { " " })?;
                    }
                    write!(f, " missing (CPUID {leaf:#x}.{subleaf} {register:?})")
                } else {
                    write!(
                        f,
                        "CPUID {leaf:#x}.{subleaf} {register:?} bits {bits:#010x} missing on the destination"
                    )?;
                    write_names(f, features::named(*leaf, *subleaf, *register, *bits))
                }
            }
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
                write!(f, "XCR0 bits {bits:#x} not supported on the destination")?;
                write_names(f, xcr0_names(*bits))
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

/// The names of the XSAVE components among `bits`.
fn xcr0_names(bits: u64) -> impl Iterator<Item = &'static str> {
    features::XCR0_COMPONENTS
        .iter()
        .filter(move |(bit, _)| bits & (1 << bit) != 0)
        .map(|(_, name)| *name)
}

/// Appends ` (a, b, c)` when there are names.
fn write_names<'a>(
    f: &mut fmt::Formatter<'_>,
    names: impl Iterator<Item = &'a str>,
) -> fmt::Result {
    let mut first = true;
    for name in names {
        f.write_str(if first { " (" } else { ", " })?;
        f.write_str(name)?;
        first = false;
    }
    if !first {
        f.write_str(")")?;
    }
    Ok(())
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
}
