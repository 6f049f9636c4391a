//! Header checks on a synthetic bzImage (every rejection case) and on the real Debian
//! kernel when `cargo xtask build` has cached it.

use super::*;
use alloc::vec;
use alloc::vec::Vec;

/// A minimal valid bzImage: 4 setup sectors, a 0x1000-byte protected-mode part.
fn image() -> Vec<u8> {
    let mut f = vec![0u8; 5 * 512 + 0x1000];
    f[0x1f1] = 4;
    f[0x1fe..0x200].copy_from_slice(&BOOT_FLAG.to_le_bytes());
    f[0x201] = 0x6a; // header ends at 0x26c (protocol 2.15)
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    f[0x211] = LOADED_HIGH;
    f[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    f[0x234] = 1;
    f[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
    f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
    f[0x248..0x24c].copy_from_slice(&0x100u32.to_le_bytes());
    f[0x24c..0x250].copy_from_slice(&0x800u32.to_le_bytes());
    f[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
    f[0x260..0x264].copy_from_slice(&0x4000u32.to_le_bytes());
    f
}

fn with(change: impl FnOnce(&mut Vec<u8>)) -> Result<BzImage, BzImageError> {
    let mut f = image();
    change(&mut f);
    BzImage::parse(&f)
}

#[test]
fn a_valid_header_is_read() {
    let f = image();
    let k = BzImage::parse(&f).unwrap();
    assert_eq!(k.protocol, 0x020f);
    assert_eq!(k.kernel_offset, 5 * 512);
    assert_eq!(k.kernel_len, 0x1000);
    assert_eq!(k.init_size, 0x4000);
    assert_eq!(k.pref_address, 0x100_0000);
    assert_eq!(k.kernel_alignment, 0x20_0000);
    assert!(k.relocatable);
    assert_eq!(k.initrd_addr_max, 0x7fff_ffff);
    assert_eq!(k.cmdline_size, 2047);
    assert_eq!(k.header_end, 0x26c);
    assert_eq!(k.kernel(&f).unwrap().len(), 0x1000);
    assert_eq!(k.setup_header(&f).unwrap().len(), 0x26c - 0x1f1);
}

#[test]
fn zero_setup_sects_means_four() {
    let k = with(|f| f[0x1f1] = 0).unwrap();
    assert_eq!(k.setup_sects, 4);
    assert_eq!(k.kernel_offset, 5 * 512);
}

#[test]
fn every_broken_header_is_refused_with_its_reason() {
    use BzImageError::*;
    assert_eq!(BzImage::parse(&[0; 0x100]), Err(TooShort { len: 0x100 }));
    assert_eq!(with(|f| f[0x1fe] = 0), Err(NotBzImage));
    assert_eq!(with(|f| f[0x202] = b'X'), Err(NotBzImage));
    assert_eq!(
        with(|f| f[0x206..0x208].copy_from_slice(&0x020bu16.to_le_bytes())),
        Err(ProtocolTooOld { protocol: 0x020b })
    );
    assert_eq!(with(|f| f[0x236] &= !1), Err(Not64Bit));
    assert_eq!(with(|f| f[0x211] = 0), Err(NotLoadedHigh));
    assert_eq!(with(|f| f[0x201] = 0), Err(BadHeaderLength(0x202)));
    assert!(matches!(
        with(|f| f.truncate(5 * 512)),
        Err(SetupBeyondFile { .. })
    ));
    assert!(matches!(
        with(|f| f[0x1f1] = 200),
        Err(SetupBeyondFile { .. })
    ));
    assert!(matches!(
        with(|f| f[0x24c..0x250].copy_from_slice(&0x1000u32.to_le_bytes())),
        Err(PayloadOutsideKernel { .. })
    ));
    assert!(matches!(
        with(|f| f[0x24c..0x250].copy_from_slice(&0u32.to_le_bytes())),
        Err(PayloadOutsideKernel { .. })
    ));
    assert!(matches!(
        with(|f| f[0x260..0x264].copy_from_slice(&0x800u32.to_le_bytes())),
        Err(InitSizeTooSmall { .. })
    ));
    assert_eq!(
        with(|f| f[0x230..0x234].copy_from_slice(&0x3000u32.to_le_bytes())),
        Err(BadAlignment(0x3000))
    );
    assert_eq!(
        with(|f| f[0x230..0x234].copy_from_slice(&0u32.to_le_bytes())),
        Err(BadAlignment(0))
    );
}

#[test]
fn no_prefix_of_a_kernel_panics_the_parser() {
    let f = image();
    for len in 0..f.len() {
        let _ = BzImage::parse(&f[..len]);
    }
    // Nor does any single corrupted byte of the header.
    for at in 0x1f1..0x26c {
        for value in [0u8, 0xff, 0x80] {
            let _ = with(|f| f[at] = value);
        }
    }
}

#[test]
fn messages_name_what_is_wrong() {
    let msg = alloc::format!("{}", BzImageError::ProtocolTooOld { protocol: 0x020a });
    assert!(msg.contains("2.10") && msg.contains("2.12"), "{msg}");
    let msg = alloc::format!("{}", BzImageError::Not64Bit);
    assert!(msg.contains("64-bit"), "{msg}");
}

/// The real Debian cloud kernel (`cargo xtask build` caches it in build/linux/); skipped
/// with a note when it is not there.
#[test]
fn the_debian_kernel_parses() {
    extern crate std;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/linux/vmlinuz");
    let Ok(file) = std::fs::read(&path) else {
        std::eprintln!("skipped: {} not built (cargo xtask build)", path.display());
        return;
    };
    let k = BzImage::parse(&file).unwrap();
    assert!(k.protocol >= 0x020f, "{:#x}", k.protocol);
    assert!(k.relocatable);
    assert_eq!(k.pref_address, 0x100_0000);
    assert_eq!(k.kernel_alignment, 0x20_0000);
    assert!(k.init_size > k.kernel_len as u64);
    assert_ne!(k.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G, 0);
}

#[test]
fn memory_needed_counts_kernel_room_and_initrd_in_pages() {
    let k = BzImage::parse(&image()).unwrap();
    assert_eq!(k.memory_needed(0), 0x100_0000 + 0x4000);
    assert_eq!(k.memory_needed(1), 0x100_0000 + 0x4000 + 0x1000);
    assert_eq!(k.memory_needed(0x1001), 0x100_0000 + 0x4000 + 0x2000);
}
