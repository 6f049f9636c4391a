//! Host simulation: a VM's memory image migrates between a source and a destination session
//! over an in-memory link that, depending on the seed, drops, corrupts, duplicates,
//! reorders, truncates and cuts bytes. Pages are rewritten between (and during) pre-copy
//! rounds like a running guest would.
//!
//! Every run must end in exactly one of two ways:
//! - the source completed: the destination memory equals the source memory, the destination
//!   verified the digest, and the VM runs on the destination or waits there in doubt;
//! - the source failed with a clear error and still owns its VM, and the destination failed
//!   too (it never runs the VM).

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::*;
use migration_proto::digest::digest_memory;
use migration_proto::dirty::DirtyBitmap;
use migration_proto::negotiation::Capabilities;
use migration_proto::session::{
    DestinationEvent, DestinationSession, DestinationState, Instant, SessionError, SourceEvent,
    SourceSession, SourceState,
};
use migration_proto::wire::{MAX_PAGES_PER_FRAME, PAGE_SIZE};

const PAGES: usize = 2048; // 8 MiB
const PRECOPY_ROUNDS: u32 = 3;
const VCPUS: u32 = 2;
const MAX_STEPS: u64 = 2_000_000;

/// One direction of the link with seeded faults.
struct Pipe {
    queue: VecDeque<Vec<u8>>,
    rng: Rng,
    /// A fault on one chunk in this many (0: perfect link).
    fault_one_in: u64,
    cut: bool,
    eof_delivered: bool,
    faults: Vec<&'static str>,
}

impl Pipe {
    fn new(seed: u64, fault_one_in: u64) -> Self {
        Pipe {
            queue: VecDeque::new(),
            rng: Rng(seed),
            fault_one_in,
            cut: false,
            eof_delivered: false,
            faults: Vec::new(),
        }
    }

    fn write(&mut self, mut chunk: Vec<u8>) {
        if self.cut || chunk.is_empty() {
            return;
        }
        if self.fault_one_in == 0 || !self.rng.chance(self.fault_one_in) {
            self.queue.push_back(chunk);
            return;
        }
        match self.rng.below(6) {
            0 => self.faults.push("drop"),
            1 => {
                let at = self.rng.below(chunk.len() as u64) as usize;
                chunk[at] ^= 1 << self.rng.below(8);
                self.queue.push_back(chunk);
                self.faults.push("corrupt");
            }
            2 => {
                self.queue.push_back(chunk.clone());
                self.queue.push_back(chunk);
                self.faults.push("duplicate");
            }
            3 => {
                let last = self.queue.pop_back();
                self.queue.push_back(chunk);
                self.queue.extend(last);
                self.faults.push("reorder");
            }
            4 => {
                let keep = self.rng.below(chunk.len() as u64) as usize;
                chunk.truncate(keep);
                self.queue.push_back(chunk);
                self.faults.push("truncate");
            }
            _ => {
                let keep = self.rng.below(chunk.len() as u64) as usize;
                chunk.truncate(keep);
                self.queue.push_back(chunk);
                self.cut = true;
                self.faults.push("cut");
            }
        }
    }

    /// Next chunk to deliver, or `Err(())` once for end of stream after a cut.
    fn deliver(&mut self) -> Option<Result<Vec<u8>, ()>> {
        if let Some(c) = self.queue.pop_front() {
            return Some(Ok(c));
        }
        if self.cut && !self.eof_delivered {
            self.eof_delivered = true;
            return Some(Err(()));
        }
        None
    }
}

fn make_memory(rng: &mut Rng) -> Vec<u8> {
    let mut mem = vec![0u8; PAGES * PAGE_SIZE];
    for page in mem.chunks_mut(PAGE_SIZE) {
        rewrite_page(rng, page);
    }
    mem
}

/// Fills a page like a guest would: zero, text-like, random, or a few words changed.
fn rewrite_page(rng: &mut Rng, page: &mut [u8]) {
    if rng.chance(3) {
        // A counter or a pointer updated in place: what delta pages are for.
        for _ in 0..1 + rng.below(4) {
            let at = rng.below((page.len() / 8) as u64) as usize * 8;
            page[at..at + 8].copy_from_slice(&rng.next().to_le_bytes());
        }
        return;
    }
    match rng.below(10) {
        0..=2 => page.fill(0),
        3..=6 => {
            const WORDS: [&[u8]; 6] = [
                b"kernel ",
                b"page ",
                b"migration ",
                b"0x7fff ",
                b"\n",
                b"struct ",
            ];
            let mut at = 0;
            while at < page.len() {
                let w = WORDS[rng.below(6) as usize];
                let n = w.len().min(page.len() - at);
                page[at..at + n].copy_from_slice(&w[..n]);
                at += n;
            }
        }
        _ => rng.fill(page),
    }
}

#[derive(Debug, PartialEq)]
enum Phase {
    WaitAccept,
    Round {
        round: u32,
        runs: Vec<(usize, usize)>,
        next: usize,
    },
    Done,
}

struct Outcome {
    source_state: SourceState,
    faults: usize,
    /// How the source's session ended, e.g. `Frame(BadTag`, `Timeout`, `PeerAborted`.
    source_error: Option<String>,
    /// The same for the destination.
    destination_error: Option<String>,
}

/// The variant path of an error's Debug text (`Frame(BadTag { seq: 3 })` -> `Frame(BadTag`).
fn error_kind(e: &SessionError) -> String {
    let text = format!("{e:?}");
    text.split([' ', ',', ')']).next().unwrap_or("").to_string()
}

fn run(seed: u64) -> Outcome {
    let mut rng = Rng(seed.wrapping_mul(0x1234_5678_9abc_def1));
    let fault_one_in = if seed.is_multiple_of(4) {
        0
    } else {
        20 + rng.below(1000)
    };
    let mut src_mem = make_memory(&mut rng);
    let mut dst_mem = vec![0u8; PAGES * PAGE_SIZE];

    let mut sc = source_config((PAGES * PAGE_SIZE) as u64, VCPUS);
    sc.idle_timeout = Duration::from_secs(2);
    sc.keepalive_interval = Duration::from_millis(500);
    sc.output_limit = 128 * 1024;
    if rng.chance(2) {
        sc.offered = sc.offered.difference(Capabilities::ENCRYPTION);
    }
    if rng.chance(3) {
        sc.offered = sc.offered.difference(Capabilities::LZ4_PAGES);
    }
    let mut dc = destination_config();
    dc.idle_timeout = Duration::from_secs(2);
    // Half the runs decode straight into guest memory, half go through `Pages` events.
    let direct = rng.chance(2);
    // Version 3 verifies with the page digest; half the runs add the whole-memory digest.
    let full_digest = rng.chance(2);
    // Deltas need the destination's memory: offered only when decoding into it, and then
    // half the runs give the source a cache (smaller than memory: slots get evicted).
    if direct {
        if rng.chance(2) {
            sc.delta_cache_bytes = PAGES / 2 * PAGE_SIZE;
        }
    } else {
        dc.offered = dc.offered.difference(Capabilities::DELTA_PAGES);
    }

    let mut now = Instant::from_millis(0);
    let mut src = SourceSession::new(
        sc,
        rng.next().to_le_bytes().repeat(4).try_into().unwrap(),
        now,
    );
    let mut dst = DestinationSession::new(
        dc,
        rng.next().to_le_bytes().repeat(4).try_into().unwrap(),
        now,
    );
    let mut to_dst = Pipe::new(rng.next(), fault_one_in);
    // The return path carries a handful of small frames: give it a higher fault rate so that
    // its faults happen at all.
    let back_one_in = if fault_one_in == 0 {
        0
    } else {
        (fault_one_in / 100).max(2)
    };
    let mut to_src = Pipe::new(rng.next(), back_one_in);

    let mut phase = Phase::WaitAccept;
    let mut dirty = DirtyBitmap::new(PAGES);
    let mut digest_verified = false;
    let mut src_events = Vec::new();

    for _step in 0..MAX_STEPS {
        // The source hypervisor: pre-copy rounds, then stop-and-copy and commit.
        while let Some(ev) = src.poll_event() {
            if matches!(ev, SourceEvent::Accepted { .. }) && phase == Phase::WaitAccept {
                let all = DirtyBitmap::all_dirty(PAGES);
                phase = Phase::Round {
                    round: 0,
                    runs: all.runs(MAX_PAGES_PER_FRAME).collect(),
                    next: 0,
                };
            }
            src_events.push(ev);
        }
        if let Phase::Round { round, runs, next } = &mut phase {
            let mut budget = 4;
            while *next < runs.len() && src.can_send_pages() && budget > 0 {
                let (pfn, count) = runs[*next];
                let bytes = &src_mem[pfn * PAGE_SIZE..(pfn + count) * PAGE_SIZE];
                src.send_pages((pfn * PAGE_SIZE) as u64, bytes, now)
                    .expect("send pages");
                *next += 1;
                budget -= 1;
            }
            // The guest keeps writing while pre-copy runs.
            if *round < PRECOPY_ROUNDS && rng.chance(4) {
                let pfn = rng.below(PAGES as u64) as usize;
                rewrite_page(
                    &mut rng,
                    &mut src_mem[pfn * PAGE_SIZE..(pfn + 1) * PAGE_SIZE],
                );
                dirty.set(pfn);
            }
            if *next == runs.len() && src.state() == SourceState::Transferring {
                let remaining = dirty.count() as u64;
                src.end_round(remaining, now).expect("end round");
                let harvested = dirty.take();
                src.mark_dirty(&harvested).expect("mark dirty");
                if *round < PRECOPY_ROUNDS {
                    phase = Phase::Round {
                        round: *round + 1,
                        runs: harvested.runs(MAX_PAGES_PER_FRAME).collect(),
                        next: 0,
                    };
                } else {
                    // Stop-and-copy done (the guest is paused during the last round).
                    assert_eq!(remaining, 0);
                    for i in 0..VCPUS {
                        src.send_vcpu_state(&vcpu_state(i), now).expect("vcpu");
                    }
                    src.send_device_state(&device_state(), now).expect("device");
                    src.commit(full_digest.then(|| digest_memory(&src_mem)), now)
                        .expect("commit");
                    phase = Phase::Done;
                }
            }
        }

        // Bytes on the wire, in random-sized chunks.
        let mut moved = false;
        let n = src
            .pending_output()
            .len()
            .min(1 + rng.below(24 * 1024) as usize);
        if n > 0 {
            to_dst.write(src.pending_output()[..n].to_vec());
            src.consume_output(n);
            moved = true;
        }
        let n = dst.pending_output().len().min(1 + rng.below(4096) as usize);
        if n > 0 {
            to_src.write(dst.pending_output()[..n].to_vec());
            dst.consume_output(n);
            moved = true;
        }
        match to_dst.deliver() {
            Some(Ok(bytes)) if direct => dst.handle_input_into(&bytes, now, &mut dst_mem),
            Some(Ok(bytes)) => dst.handle_input(&bytes, now),
            Some(Err(())) => dst.connection_closed(now),
            None => {}
        }
        match to_src.deliver() {
            Some(Ok(bytes)) => src.handle_input(&bytes, now),
            Some(Err(())) => src.connection_closed(now),
            None => {}
        }

        // The destination hypervisor applies what arrives.
        while let Some(ev) = dst.poll_event() {
            match ev {
                DestinationEvent::Offer(identity) => {
                    assert_eq!(identity.memory_bytes, (PAGES * PAGE_SIZE) as u64);
                    // Later frames of the same input may already have failed the session.
                    if dst.accept_offer(now).is_err() {
                        assert_eq!(dst.state(), DestinationState::Failed);
                    }
                }
                DestinationEvent::Pages { first_gpa, data } => {
                    let at = first_gpa as usize;
                    dst_mem[at..at + data.len()].copy_from_slice(&data);
                    if rng.chance(2) {
                        dst.recycle_page_buffer(data);
                    }
                }
                DestinationEvent::CommitRequested {
                    expected_digest: Some(_),
                } => {
                    dst.report_digest(digest_memory(&dst_mem), now)
                        .expect("report digest");
                }
                DestinationEvent::CommitRequested {
                    expected_digest: None,
                } => dst.confirm_commit(now).expect("confirm commit"),
                DestinationEvent::Committed => digest_verified = true,
                _ => {}
            }
        }

        let src_done = matches!(src.state(), SourceState::Completed | SourceState::Failed);
        let dst_done = matches!(
            dst.state(),
            DestinationState::Released | DestinationState::Failed
        );
        if src_done && dst_done {
            let faults = to_dst.faults.len() + to_src.faults.len();
            check_outcome(
                seed,
                &src,
                &dst,
                &src_mem,
                &dst_mem,
                digest_verified,
                &to_dst.faults,
                &to_src.faults,
            );
            return Outcome {
                source_state: src.state(),
                faults,
                source_error: src.error().map(error_kind),
                destination_error: dst.error().map(error_kind),
            };
        }

        // Time: 1 ms per step; jump to the next timer when the link is idle.
        let idle = !moved && to_dst.queue.is_empty() && to_src.queue.is_empty();
        now = now + Duration::from_millis(1);
        if idle && !matches!(phase, Phase::Round { .. }) {
            let next = [src.poll_timeout(), dst.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            if let Some(t) = next {
                now = now.max(t);
            }
        }
        if src.poll_timeout().is_some_and(|t| now >= t) {
            src.handle_timeout(now);
        }
        if dst.poll_timeout().is_some_and(|t| now >= t) {
            dst.handle_timeout(now);
        }
    }
    panic!(
        "seed {seed}: no outcome after {MAX_STEPS} steps: source {:?}, destination {:?}",
        src.state(),
        dst.state()
    );
}

#[allow(clippy::too_many_arguments)]
fn check_outcome(
    seed: u64,
    src: &SourceSession,
    dst: &DestinationSession,
    src_mem: &[u8],
    dst_mem: &[u8],
    digest_verified: bool,
    faults_to_dst: &[&str],
    faults_to_src: &[&str],
) {
    let ctx = format!(
        "seed {seed}: faults to destination {faults_to_dst:?}, to source {faults_to_src:?}, source {:?} ({:?}), destination {:?} ({:?})",
        src.state(),
        src.error(),
        dst.state(),
        dst.error()
    );
    match src.state() {
        SourceState::Completed => {
            assert!(!src.owns_vm(), "{ctx}");
            assert!(
                digest_verified,
                "{ctx}: completed without a verified digest"
            );
            assert!(dst_mem == src_mem, "{ctx}: destination memory differs");
            match dst.state() {
                DestinationState::Released => {}
                DestinationState::Failed => {
                    assert!(
                        matches!(dst.error(), Some(SessionError::InDoubt(_))),
                        "{ctx}"
                    );
                }
                other => panic!("{ctx}: destination ended in {other:?}"),
            }
        }
        SourceState::Failed => {
            assert!(src.owns_vm(), "{ctx}: failed source must keep its VM");
            assert!(src.error().is_some(), "{ctx}");
            assert_eq!(
                dst.state(),
                DestinationState::Failed,
                "{ctx}: destination must not run the VM"
            );
            assert!(!dst.may_run_vm(), "{ctx}");
            assert!(dst.error().is_some(), "{ctx}");
        }
        other => panic!("{ctx}: source ended in {other:?}"),
    }
}

#[test]
fn migrations_over_a_lossy_link_end_complete_or_cleanly_failed() {
    let seeds: u64 = std::env::var("LOSSY_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut completed_clean = 0;
    let mut failed_with_faults = 0;
    let mut completed_despite_faults = 0;
    let mut failure_kinds = std::collections::BTreeMap::<String, usize>::new();
    for seed in 0..seeds {
        let out = run(seed);
        if let Some(kind) = out.source_error.clone() {
            *failure_kinds.entry(format!("source {kind}")).or_default() += 1;
        }
        if let Some(kind) = out.destination_error.clone() {
            *failure_kinds
                .entry(format!("destination {kind}"))
                .or_default() += 1;
        }
        match (out.source_state, out.faults) {
            (SourceState::Completed, 0) => completed_clean += 1,
            (SourceState::Completed, _) => completed_despite_faults += 1,
            (SourceState::Failed, 0) => panic!("seed {seed}: failed on a perfect link"),
            (_, _) => failed_with_faults += 1,
        }
    }
    eprintln!(
        "lossy link: {completed_clean} clean completions, {completed_despite_faults} completions with late faults, {failed_with_faults} clean failures"
    );
    eprintln!("failures by side and kind: {failure_kinds:?}");
    assert!(completed_clean >= 1 && failed_with_faults >= 1);
}
