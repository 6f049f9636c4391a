//! `hb.mode=escape`: try to reach memory that is not ours. Write every RAM page of the
//! memory map except our own image, read it all back, then read and write back a word at
//! addresses outside RAM (LAPIC, IOAPIC, HPET, PCIe ECAM, just past RAM, high addresses).
//! Under a correct hypervisor none of this touches host memory and the VM survives; the
//! test harness checks that the host is still healthy and that `ESCAPE-DONE` was printed.
//! Each probe writes back the value it read, so under QEMU (real chipset devices at those
//! addresses) the probes are harmless.

use crate::run::image_range;
use crate::start_info::{BootInfo, E820_RAM};
use crate::{cpu, say};

unsafe extern "C" {
    static mut hb_pdpt: [u64; 512];
    static mut hb_pd_high: [[u64; 512]; 2];
}

const GIB: u64 = 1 << 30;
/// High probes, each mapped through its own page directory (boot paging covers 4 GiB).
const HIGH_PROBES: [u64; 2] = [64 * GIB, 256 * GIB];

fn pattern(addr: u64) -> u64 {
    addr ^ 0xe5ca_be00_e5ca_be00
}

fn ram_pages(info: &BootInfo, mut each: impl FnMut(u64)) {
    let (image_start, image_end) = image_range();
    for r in info.regions().iter().filter(|r| r.kind == E820_RAM) {
        let mut page = r.addr.next_multiple_of(4096);
        let end = r.addr.saturating_add(r.size) & !0xfff;
        while page < end && page < 4 * GIB {
            if page + 4096 <= image_start || page >= image_end {
                each(page);
            }
            page += 4096;
        }
    }
}

fn map_high_probes() {
    for (i, addr) in HIGH_PROBES.iter().enumerate() {
        // SAFETY: we own the boot page tables; the PD is ours and the PDPT slot for this
        // GiB is unused by the boot mapping (which covers PDPT[0..4]).
        unsafe {
            let pd = core::ptr::addr_of_mut!(hb_pd_high[i]);
            (*pd)[0] = addr | 0x83;
            let pdpt = core::ptr::addr_of_mut!(hb_pdpt);
            (*pdpt)[(addr / GIB) as usize] = pd as u64 | 3;
        }
    }
    cpu::flush_tlb();
}

/// Run the escape attempt; never returns.
pub fn run(info: &BootInfo) -> ! {
    say!("ESCAPE-START");
    let mut pages = 0u64;
    ram_pages(info, |page| {
        for off in (0..4096).step_by(8) {
            // SAFETY: the page is RAM per the memory map, outside our image; the start info
            // was already copied out, so overwriting it is fine.
            unsafe { core::ptr::write_volatile((page + off) as *mut u64, pattern(page + off)) };
        }
        pages += 1;
    });
    let mut mismatched = 0u64;
    ram_pages(info, |page| {
        for off in (0..4096).step_by(8) {
            // SAFETY: as above.
            let v = unsafe { core::ptr::read_volatile((page + off) as *const u64) };
            if v != pattern(page + off) {
                mismatched += 1;
            }
        }
    });
    say!("ESCAPE-RAM pages_written={pages} words_mismatched={mismatched}");
    let ram_top = info
        .regions()
        .iter()
        .filter(|r| r.kind == E820_RAM)
        .map(|r| r.addr.saturating_add(r.size))
        .max()
        .unwrap_or(0);
    map_high_probes();
    let low_probes = [0xfee0_0000, 0xfec0_0000, 0xfed0_0000, 0xe000_0000, ram_top];
    for addr in low_probes.into_iter().chain(HIGH_PROBES) {
        if addr >= 4 * GIB && !HIGH_PROBES.contains(&addr) {
            continue;
        }
        let p = addr as *mut u32;
        // SAFETY: the address is mapped by our page tables; what answers there is the
        // hypervisor's business, which is the point of this test. We write back what we read.
        let value = unsafe { core::ptr::read_volatile(p) };
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(p, value) };
        say!("ESCAPE-PROBE addr={addr:#x} read={value:#010x}");
    }
    say!("ESCAPE-DONE ram_pages={pages} ram_mismatches={mismatched}");
    cpu::halt_forever()
}
