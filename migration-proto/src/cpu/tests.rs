//! CPU descriptor comparison and codec checks.

use super::*;
use alloc::vec;
use alloc::vec::Vec;

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

#[test]
fn refusals_name_the_missing_features() {
    let bits = Incompatibility::MissingFeatureBits {
        leaf: 7,
        subleaf: 0,
        register: CpuidRegister::Ebx,
        bits: (1 << 5) | (1 << 8),
    };
    assert_eq!(bits.to_string(), "avx2 bmi2 missing (CPUID 0x7.0 Ebx)");
    let unnamed = Incompatibility::MissingFeatureBits {
        leaf: 7,
        subleaf: 0,
        register: CpuidRegister::Ebx,
        bits: 1 << 16,
    };
    assert_eq!(
        unnamed.to_string(),
        "CPUID 0x7.0 Ebx bits 0x00010000 missing on the destination"
    );
    let partly = Incompatibility::MissingFeatureBits {
        leaf: 7,
        subleaf: 0,
        register: CpuidRegister::Ebx,
        bits: (1 << 16) | (1 << 5),
    };
    assert_eq!(
        partly.to_string(),
        "CPUID 0x7.0 Ebx bits 0x00010020 missing on the destination (avx2)"
    );
    let xsave = Incompatibility::MissingFeatureBits {
        leaf: 0xd,
        subleaf: 0,
        register: CpuidRegister::Eax,
        bits: 0b111,
    };
    assert_eq!(
        xsave.to_string(),
        "x87 sse avx state missing (CPUID 0xd.0 Eax 0x7)"
    );
    assert_eq!(
        Incompatibility::MissingXcr0Bits(0x4).to_string(),
        "XCR0 bits 0x4 not supported on the destination (avx)"
    );
}
