//! `hb_main` and the normal mode: heartbeat lines and the dirtying, verified working set.

use heartbeat::params::{Mode, Params};
use heartbeat::pattern::{PAGE_SIZE, Sweep, WORDS_PER_PAGE, word, word_generation};
use heartbeat::tsc_rate::{TscRate, hypervisor_tsc_khz};

use crate::start_info::{self, E820_RAM, StartInfoError};
use crate::{bench, cpu, escape, interrupts, say, serial};

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The guest image's physical extent.
pub fn image_range() -> (u64, u64) {
    (
        core::ptr::addr_of!(__image_start) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    )
}

/// Most `CORRUPT` lines per verification pass.
const MAX_REPORTS_PER_PASS: u32 = 8;

/// Entered from the 32-bit boot code in long mode with identity paging.
#[unsafe(no_mangle)]
extern "C" fn hb_main(start_info_paddr: u64) -> ! {
    serial::init();
    let info = match start_info::parse(start_info_paddr) {
        Ok(info) => info,
        Err(StartInfoError::Missing) => {
            say!("HB-ERROR no start_info (ebx=0): not booted by PVH?");
            cpu::halt_forever()
        }
        Err(StartInfoError::BadMagic(m)) => {
            say!("HB-ERROR start_info at {start_info_paddr:#x} has bad magic {m:#x}");
            cpu::halt_forever()
        }
    };
    let params = Params::parse(info.cmdline, |token, reason| {
        say!("HB-WARN ignoring '{token}': {reason}");
    });
    let tsc = TscRate::choose(params.tsc_khz, hypervisor_tsc_khz(cpu::cpuid));
    let (image_start, image_end) = image_range();
    say!(
        "HB-START mode={} interval_ms={} wss_mib={} dirty_pages_per_sec={} dirty_words={} \
         tsc_khz={} tsc_from={} start_info={:#x} version={} memmap_entries={} image={:#x}-{:#x}",
        params.mode.name(),
        params.interval_ms,
        params.wss_mib,
        params.dirty_pages_per_sec,
        params.dirty_words,
        tsc.khz,
        tsc.source.name(),
        start_info_paddr,
        info.version,
        info.memmap_len,
        image_start,
        image_end,
    );
    // The command line exactly as it arrived, between quotes (it may contain spaces): a test
    // checks that the hypervisor passed the operator's line on unchanged.
    say!(
        "HB-CMDLINE bytes={} \"{}\"",
        info.cmdline.len(),
        info.cmdline
    );
    for r in info.regions() {
        say!(
            "HB-MEMMAP addr={:#x} size={:#x} type={}",
            r.addr,
            r.size,
            r.kind
        );
    }
    match params.mode {
        Mode::TripleFault => {
            say!("HB-TRIPLE-FAULT loading an empty IDT and executing UD2");
            cpu::triple_fault()
        }
        Mode::Escape => escape::run(&info),
        Mode::Bench => bench::run(tsc.khz),
        Mode::Normal => run_heartbeat(&params, &info, tsc.khz),
    }
}

/// Place the working set right after the image, shrunk to the RAM region that holds it.
fn place_working_set(params: &Params, info: &start_info::BootInfo) -> (u64, u64) {
    let (_, image_end) = image_range();
    let start = image_end.next_multiple_of(PAGE_SIZE);
    let wanted = params.wss_mib * 1024 * 1024 / PAGE_SIZE;
    if info.memmap_len == 0 {
        say!("HB-WARN no memory map: trusting that {wanted} pages after the image are RAM");
        return (start, wanted);
    }
    let available = info
        .regions()
        .iter()
        .filter(|r| r.kind == E820_RAM && r.addr <= start)
        .map(|r| (r.addr.saturating_add(r.size).saturating_sub(start)) / PAGE_SIZE)
        .max()
        .unwrap_or(0);
    if available < wanted {
        say!("HB-WARN working set shrunk from {wanted} to {available} pages to fit RAM");
    }
    (start, wanted.min(available))
}

fn page_ptr(base: u64, page: u64) -> *mut u64 {
    (base + page * PAGE_SIZE) as *mut u64
}

/// Writes the first `words` words of `page` at `generation` (all of them for a fresh page).
fn fill_page(base: u64, page: u64, generation: u64, words: u64) {
    let p = page_ptr(base, page);
    for w in 0..words.min(WORDS_PER_PAGE) {
        // SAFETY: the working set lies in RAM after our image (checked against the memory
        // map) and nothing else uses it.
        unsafe { core::ptr::write_volatile(p.add(w as usize), word(page, generation, w)) };
    }
}

/// Restores a whole page to what it should hold (after a reported corruption).
fn repair_page(base: u64, page: u64, generation: u64, dirty_words: u64) {
    let p = page_ptr(base, page);
    for w in 0..WORDS_PER_PAGE {
        let value = word(page, word_generation(generation, w, dirty_words), w);
        // SAFETY: as in `fill_page`.
        unsafe { core::ptr::write_volatile(p.add(w as usize), value) };
    }
}

/// Verify every page; report up to a few mismatches and repair each reported page so that a
/// single corruption is reported once. Returns the number of corrupt pages.
fn verify(base: u64, sweep: &Sweep, dirty_words: u64) -> u64 {
    let mut corrupt = 0;
    let mut reported = 0;
    for page in 0..sweep.pages() {
        let generation = sweep.generation_of(page);
        let p = page_ptr(base, page);
        for w in 0..WORDS_PER_PAGE {
            // SAFETY: as in `fill_page`.
            let found = unsafe { core::ptr::read_volatile(p.add(w as usize)) };
            let expected = word(page, word_generation(generation, w, dirty_words), w);
            if found != expected {
                corrupt += 1;
                if reported < MAX_REPORTS_PER_PASS {
                    reported += 1;
                    say!(
                        "CORRUPT addr={:#x} expected={expected:#018x} found={found:#018x} page={page} generation={generation}",
                        p as u64 + w * 8
                    );
                }
                repair_page(base, page, generation, dirty_words);
                break;
            }
        }
    }
    corrupt
}

fn run_heartbeat(params: &Params, info: &start_info::BootInfo, tsc_khz: u64) -> ! {
    let (base, pages) = place_working_set(params, info);
    let tsc_hz = u128::from(tsc_khz) * 1000;
    let interval_ticks = u64::try_from(tsc_hz * u128::from(params.interval_ms) / 1000)
        .unwrap_or(u64::MAX)
        .max(1);
    let mut sweep = Sweep::new(pages);
    for page in 0..pages {
        fill_page(base, page, 0, WORDS_PER_PAGE);
    }
    say!(
        "HB-WSS base={base:#x} pages={pages} bytes={}",
        pages * PAGE_SIZE
    );
    let irq = interrupts::start(params, tsc_khz);
    if let Some((source, count)) = irq {
        say!("HB-IRQ source={source} hz={} count={count}", params.irq_hz);
    }
    let start = cpu::rdtsc();
    let mut next_beat = start;
    let mut seq = 0u64;
    let mut dirtied = 0u64;
    let mut passes = 0u64;
    let mut corrupt_total = 0u64;
    loop {
        let now = cpu::rdtsc();
        let elapsed = u128::from(now.wrapping_sub(start));
        let target = u64::try_from(elapsed * u128::from(params.dirty_pages_per_sec) / tsc_hz)
            .unwrap_or(u64::MAX);
        // Catch up at most one sweep per pass so a long stall (e.g. migration downtime) does
        // not turn into an endless rewrite burst; the skipped debt is dropped.
        let due = target.saturating_sub(dirtied);
        for _ in 0..due.min(pages) {
            if let Some((page, generation)) = sweep.advance() {
                fill_page(base, page, generation, params.dirty_words);
            }
        }
        dirtied = dirtied.saturating_add(due);
        corrupt_total += verify(base, &sweep, params.dirty_words);
        passes += 1;
        if now >= next_beat {
            if irq.is_some() {
                say!(
                    "HB seq={seq} tsc={now} dirtied={dirtied} passes={passes} corrupt={corrupt_total} irqs={}",
                    interrupts::ticks()
                );
            } else {
                say!(
                    "HB seq={seq} tsc={now} dirtied={dirtied} passes={passes} corrupt={corrupt_total}"
                );
            }
            seq += 1;
            next_beat = next_beat.saturating_add(interval_ticks);
            if next_beat <= now {
                // We fell behind (paused VM, slow emulator): resynchronise instead of
                // printing a burst of beats.
                next_beat = now.saturating_add(interval_ticks);
            }
        }
        if irq.is_some() {
            // Idle until the next tick: the hypervisor should not run this vCPU meanwhile.
            interrupts::wait();
        }
    }
}
