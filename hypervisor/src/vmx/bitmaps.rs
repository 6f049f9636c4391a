//! The MSR bitmap and the I/O bitmaps: which RDMSR/WRMSR and IN/OUT cause exits.
//!
//! MSR bitmap (SDM Vol. 3C §25.6.9): one 4 KiB page, four 1 KiB quarters — reads of MSRs
//! 0x0000_0000-0x0000_1fff, reads of 0xc000_0000-0xc000_1fff, then writes of the same two
//! ranges; a set bit means "exit". MSRs outside both ranges always exit.
//! I/O bitmaps (§25.6.4): A covers ports 0x0000-0x7fff, B 0x8000-0xffff, one bit per port,
//! set = exit. tern intercepts every port: all devices are emulated.

use super::ept::PAGE_SIZE;

/// Bytes in one bitmap page.
pub const BITMAP_BYTES: usize = PAGE_SIZE as usize;

/// Byte offset of the quarter and bit index for `msr`, or `None` if the MSR is outside the
/// two ranges the bitmap covers.
fn msr_slot(msr: u32) -> Option<(usize, usize)> {
    match msr {
        0..=0x1fff => Some((0, msr as usize)),
        0xc000_0000..=0xc000_1fff => Some((1024, (msr - 0xc000_0000) as usize)),
        _ => None,
    }
}

/// Fill `bitmap` so that every MSR access exits except reads and writes of `passthrough`.
/// Returns the first MSR that cannot be passed through (outside the bitmap's ranges), with
/// the bitmap then left intercepting everything from that MSR on.
pub fn build_msr_bitmap(bitmap: &mut [u8; BITMAP_BYTES], passthrough: &[u32]) -> Option<u32> {
    bitmap.fill(0xff);
    for &msr in passthrough {
        let Some((quarter, bit)) = msr_slot(msr) else {
            return Some(msr);
        };
        for base in [quarter, quarter + 2048] {
            bitmap[base + bit / 8] &= !(1 << (bit % 8));
        }
    }
    None
}

/// Whether `bitmap` makes a read (`write == false`) or write of `msr` exit.
pub fn msr_exits(bitmap: &[u8; BITMAP_BYTES], msr: u32, write: bool) -> bool {
    match msr_slot(msr) {
        Some((quarter, bit)) => {
            let base = quarter + if write { 2048 } else { 0 };
            bitmap[base + bit / 8] & (1 << (bit % 8)) != 0
        }
        None => true,
    }
}

/// Fill both I/O bitmaps so that every port access exits.
pub fn build_io_bitmaps(a: &mut [u8; BITMAP_BYTES], b: &mut [u8; BITMAP_BYTES]) {
    a.fill(0xff);
    b.fill(0xff);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::msr::{PASSTHROUGH_VMCS, SWITCHED_ON_VCPU_CHANGE, index};

    #[test]
    fn passthrough_msrs_do_not_exit_and_others_do() {
        let mut bm = [0u8; BITMAP_BYTES];
        let all: alloc::vec::Vec<u32> = PASSTHROUGH_VMCS
            .iter()
            .chain(&SWITCHED_ON_VCPU_CHANGE)
            .copied()
            .collect();
        assert_eq!(build_msr_bitmap(&mut bm, &all), None);
        for msr in &all {
            assert!(
                !msr_exits(&bm, *msr, false) && !msr_exits(&bm, *msr, true),
                "{msr:#x}"
            );
        }
        for msr in [
            index::IA32_APIC_BASE,
            index::IA32_TSC,
            0x1fff,
            0xc000_1fff,
            0x4000_0000,
        ] {
            assert!(
                msr_exits(&bm, msr, false) && msr_exits(&bm, msr, true),
                "{msr:#x}"
            );
        }
        // EFER = 0xc000_0080: high-read quarter at 1024, byte 16, bit 0.
        assert_eq!(bm[1024 + 16] & 1, 0);
        assert_eq!(bm[3072 + 16] & 1, 0);
        assert_eq!(build_msr_bitmap(&mut bm, &[0x4000_0000]), Some(0x4000_0000));
    }
}
