//! Stable-toolchain fuzz driver: mutates the checked-in corpus of a target and feeds every
//! input to its entry point in `migration_proto::fuzz`, for a fixed number of iterations.
//! Blind mutation, no coverage feedback: the coverage-guided runs are the cargo-fuzz targets
//! of the same names (`fuzz/`, nightly; see docs/migration-protocol.md section 9). A panic
//! saves the input under `fuzz/artifacts/` and exits 1.
//!
//! Targets: `decoders` (default; every decoder and both sessions on raw bytes),
//! `sealed_session` (a destination past a real handshake, fed sealed messages) and
//! `sealed_source` (a source past a real handshake, fuzzed calls and sealed replies).
//!
//! ```text
//! cargo run --release -p migration-proto --example fuzz -- [--target T] --iterations 1000000 [--seed N]
//! cargo run --release -p migration-proto --example fuzz -- --write-corpus
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant as WallClock;

use migration_proto::cpu::{CpuDescriptor, CpuidEntry, FeatureMsr};
use migration_proto::crypto::{FrameProtector, PreSharedKey};
use migration_proto::digest::digest_memory;
use migration_proto::framing::FrameWriter;
use migration_proto::fuzz::{
    FUZZ_MEMORY_BYTES, decode_everything, sealed_destination, sealed_destination_seeds,
    sealed_source, sealed_source_seeds,
};
use migration_proto::message::*;
use migration_proto::negotiation::{Capabilities, VersionRange};
use migration_proto::page_codec::PageEncoder;
use migration_proto::session::{
    DestinationConfig, DestinationEvent, DestinationSession, Instant, SourceConfig, SourceSession,
};
use migration_proto::wire::MessageType;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u32; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x1_0000,
    0x10_0000,
    0x10_0001,
    u32::MAX,
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.next() as u8;
            }
            2 if len >= 4 => {
                let at = rng.below(len - 3);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    (v as u16 as u32).to_le_bytes()
                };
                let n = if rng.below(2) == 0 { 4 } else { 2 };
                input[at..at + n].copy_from_slice(&bytes[..n]);
            }
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, junk);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                input.drain(at..at + n);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                let copy = input[at..at + n].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, copy);
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let at = rng.below(len + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => input.truncate(rng.below(len)),
            _ => {}
        }
    }
    input.truncate(64 * 1024);
}

const TARGETS: [&str; 3] = ["decoders", "sealed_session", "sealed_source"];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn load_corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir(target))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Writes the seeds of every target.
fn write_corpus() -> std::io::Result<()> {
    write_decoders_corpus()?;
    for (target, seeds) in [
        ("sealed_session", sealed_destination_seeds()),
        ("sealed_source", sealed_source_seeds()),
    ] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir)?;
        for (name, script) in seeds {
            std::fs::write(dir.join(name), script)?;
        }
        println!("corpus written to {}", dir.display());
    }
    Ok(())
}

/// Records real session traffic that the fuzz entry point's sessions accept, so mutations
/// reach the deep states (authenticated, receiving, committing): version 3, every page sent
/// (zero, LZ4 and raw pages), one page sent again as a delta, both digests.
fn write_decoders_corpus() -> std::io::Result<()> {
    let dir = corpus_dir("decoders");
    std::fs::create_dir_all(&dir)?;
    let key = PreSharedKey::new([0x42; 32]);
    let now = Instant::from_millis(1);
    let identity = VmIdentity {
        uuid: [7; 16],
        name: "corpus".into(),
        memory_bytes: FUZZ_MEMORY_BYTES as u64,
        vcpu_count: 1,
    };
    let mut src_config = SourceConfig::new(key.clone(), identity, CpuDescriptor::default());
    src_config.delta_cache_bytes = FUZZ_MEMORY_BYTES;
    let mut src = SourceSession::new(src_config, [2; 32], now);
    let mut dst = DestinationSession::new(
        DestinationConfig::new(key, CpuDescriptor::default(), 1 << 30),
        [1; 32],
        now,
    );
    let mut to_dst = Vec::new();
    let mut to_src = Vec::new();
    let mut dst_memory = vec![0u8; FUZZ_MEMORY_BYTES];
    let mut pump = |src: &mut SourceSession,
                    dst: &mut DestinationSession,
                    to_dst: &mut Vec<u8>,
                    to_src: &mut Vec<u8>| loop {
        let a = src.pending_output().to_vec();
        src.consume_output(a.len());
        dst.handle_input_into(&a, now, &mut dst_memory);
        to_dst.extend_from_slice(&a);
        let b = dst.pending_output().to_vec();
        dst.consume_output(b.len());
        src.handle_input(&b, now);
        to_src.extend_from_slice(&b);
        if a.is_empty() && b.is_empty() {
            break;
        }
    };
    pump(&mut src, &mut dst, &mut to_dst, &mut to_src);
    dst.accept_offer(now).expect("accept");
    pump(&mut src, &mut dst, &mut to_dst, &mut to_src);
    let mut mem = vec![0u8; FUZZ_MEMORY_BYTES];
    for (i, b) in mem[4096..8192].iter_mut().enumerate() {
        *b = b"tern migration corpus "[i % 22];
    }
    mem[8192..12288]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 131 % 251) as u8);
    src.send_pages(0, &mem, now).expect("pages");
    src.end_round(0, now).expect("round");
    // The guest rewrites a few bytes of page 1: sent again as a delta.
    mem[4096 + 100..4096 + 108].copy_from_slice(b"rewrite!");
    let counts = src.send_pages(4096, &mem[4096..8192], now).expect("pages");
    assert_eq!(counts.delta, 1, "page 1 goes as a delta");
    src.end_round(0, now).expect("round");
    src.send_vcpu_state(
        &VcpuState {
            rip: 0x1000,
            xsave: vec![0; 64],
            ..VcpuState::default()
        },
        now,
    )
    .expect("vcpu");
    src.send_device_state(
        &DeviceState {
            id: "com1".into(),
            version: 1,
            data: vec![1, 2, 3],
        },
        now,
    )
    .expect("device");
    src.commit(Some(digest_memory(&mem)), now).expect("commit");
    pump(&mut src, &mut dst, &mut to_dst, &mut to_src);
    while let Some(ev) = dst.poll_event() {
        if let DestinationEvent::CommitRequested {
            expected_digest: Some(digest),
        } = ev
        {
            dst.report_digest(digest, now).expect("digest");
        }
    }
    pump(&mut src, &mut dst, &mut to_dst, &mut to_src);
    assert!(dst.may_run_vm(), "the recorded migration completes");
    std::fs::write(dir.join("session-source-to-destination"), &to_dst)?;
    std::fs::write(dir.join("session-destination-to-source"), &to_src)?;
    // One payload per message type behind its selector byte, and the same messages as
    // frame streams sealed with the fuzz entry point's key (MAC and AEAD).
    let caps = Capabilities::IMPLEMENTED;
    let mut encoder = PageEncoder::new();
    let mut mac = FrameWriter::new();
    mac.protect(FrameProtector::new(&[0x42; 32], false));
    let mut aead = FrameWriter::new();
    aead.protect(FrameProtector::new(&[0x42; 32], true));
    let (mut mac_stream, mut aead_stream) = (Vec::new(), Vec::new());
    for msg in sample_messages(&mem) {
        let selector = MessageType::ALL
            .iter()
            .position(|t| *t == msg.msg_type())
            .unwrap_or(0) as u8;
        let mut seed = vec![selector];
        msg.encode(caps, &mut encoder, &mut seed);
        std::fs::write(
            dir.join(format!("payload-{selector:02}-{:?}", msg.msg_type())),
            seed,
        )?;
        mac.write_message(&msg, caps, &mut encoder, &mut mac_stream)
            .expect("frame");
        aead.write_message(&msg, caps, &mut encoder, &mut aead_stream)
            .expect("frame");
    }
    std::fs::write(dir.join("frames-mac"), &mac_stream)?;
    std::fs::write(dir.join("frames-aead"), &aead_stream)?;
    println!("corpus written to {}", dir.display());
    Ok(())
}

fn sample_messages(mem: &[u8]) -> Vec<Message> {
    let cpu = CpuDescriptor {
        cpuid: vec![CpuidEntry {
            leaf: 1,
            subleaf: 0,
            eax: 0x906ea,
            ebx: 0,
            ecx: 0x7ffa_fbbf,
            edx: 0xbfeb_fbff,
        }],
        xcr0_supported: 7,
        feature_msrs: vec![FeatureMsr {
            index: 0x10a,
            value: 0xc,
        }],
    };
    let identity = VmIdentity {
        uuid: [7; 16],
        name: "corpus".into(),
        memory_bytes: FUZZ_MEMORY_BYTES as u64,
        vcpu_count: 1,
    };
    let mut vcpu = VcpuState {
        rip: 0x1000,
        xsave: vec![0; 64],
        ..VcpuState::default()
    };
    vcpu.pending_event = Some(PendingEvent {
        vector: 14,
        kind: EventKind::HardwareException,
        error_code: Some(2),
        instruction_len: 0,
    });
    vcpu.msrs.push(MsrValue {
        index: 0xc000_0080,
        value: 0x500,
    });
    vec![
        Message::Hello(Hello {
            versions: VersionRange::SUPPORTED,
            offered: Capabilities::IMPLEMENTED,
            required: Capabilities::NONE,
            nonce: [3; 32],
        }),
        Message::HelloReply(HelloReply {
            version: 2,
            capabilities: Capabilities::IMPLEMENTED,
            nonce: [4; 32],
            proof: [5; 32],
        }),
        Message::Auth(AuthProof { proof: [6; 32] }),
        Message::Offer(Box::new(Offer { identity, cpu })),
        Message::Accept,
        Message::Pages(PageRun {
            first_gpa: 0,
            data: mem[..4 * 4096].to_vec(),
        }),
        Message::RoundEnd(RoundStats {
            round: 1,
            pages_sent: 3,
            zero_pages: 1,
            lz4_pages: 1,
            raw_pages: 1,
            ..RoundStats::default()
        }),
        Message::VcpuState(Box::new(vcpu)),
        Message::DeviceState(DeviceState {
            id: "com1".into(),
            version: 1,
            data: vec![1, 2, 3],
        }),
        Message::DiskBlocks(DiskBlocks {
            disk_id: 0,
            first_lba: 8,
            block_size: 512,
            data: vec![9; 512],
        }),
        Message::DiskManifest(DiskManifest {
            disks: vec![DiskDescriptor {
                disk_id: 0,
                name: "vda".into(),
                size_bytes: 1 << 20,
                block_size: 512,
            }],
        }),
        Message::DiskDigest(DiskDigestMessage {
            disk_id: 0,
            size_bytes: 1 << 20,
            region_bytes: 1 << 20,
            regions: vec![0x0123_4567_89ab_cdef],
        }),
        Message::MemoryDigest(MemoryDigestMessage {
            memory_bytes: FUZZ_MEMORY_BYTES as u64,
            digest: [8; 32],
        }),
        Message::Progress(Progress {
            round: 2,
            bytes_sent: 100,
            ..Progress::default()
        }),
        Message::PageDigest(PageDigestMessage {
            memory_bytes: FUZZ_MEMORY_BYTES as u64,
            accumulator: [9; 16],
        }),
        Message::Commit,
        Message::CommitAck,
        Message::Release,
        Message::Abort(Abort::new(AbortReason::DigestMismatch, "memory differs")),
        Message::Cancel,
    ]
}

/// What the accepted inputs reached, summed over a run.
#[derive(Default)]
struct Tally {
    frames: usize,
    messages: usize,
    page_runs: usize,
    commits: usize,
    released: usize,
}

fn run_one(target: &str, input: &[u8], tally: &mut Tally) {
    if target == "sealed_session" {
        let o = sealed_destination(input);
        tally.frames += o.frames;
        tally.page_runs += o.runs_accepted;
        tally.commits += usize::from(o.commit_requested);
        tally.released += usize::from(o.released);
    } else if target == "sealed_source" {
        let o = sealed_source(input);
        tally.page_runs += o.runs_sent;
        tally.commits += usize::from(o.completed);
        tally.released += usize::from(o.verified);
    } else {
        let a = decode_everything(input);
        tally.frames += a.frames;
        tally.messages += a.messages;
        tally.page_runs += a.page_runs;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if args.iter().any(|a| a == "--write-corpus") {
        if let Err(e) = write_corpus() {
            eprintln!("cannot write the corpus: {e}");
            std::process::exit(2);
        }
        return;
    }
    let target = args
        .iter()
        .position(|a| a == "--target")
        .and_then(|i| args.get(i + 1))
        .map_or("decoders", String::as_str);
    if !TARGETS.contains(&target) {
        eprintln!("unknown target {target}; targets: {}", TARGETS.join(", "));
        std::process::exit(2);
    }
    let iterations = value("--iterations").unwrap_or(100_000);
    let mut rng = Rng(value("--seed").unwrap_or(0x5eed_f00d).max(1));
    let corpus = load_corpus(target);
    if corpus.is_empty() {
        eprintln!(
            "empty corpus at {} (run with --write-corpus)",
            corpus_dir(target).display()
        );
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|_| {}));
    let started = WallClock::now();
    let mut tally = Tally::default();
    for i in 0..iterations {
        let mut input = corpus[rng.below(corpus.len())].clone();
        if i >= corpus.len() as u64 {
            mutate(&mut rng, &mut input, &corpus);
        }
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_one(target, &input, &mut tally)
        }))
        .is_err()
        {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/artifacts");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{target}-crash-{i}"));
            let _ = std::fs::write(&path, &input);
            eprintln!("PANIC at iteration {i}; input saved to {}", path.display());
            std::process::exit(1);
        }
        if (i + 1) % 250_000 == 0 {
            eprintln!("{} inputs, {:.1} s", i + 1, started.elapsed().as_secs_f64());
        }
    }
    let t = &tally;
    println!(
        "fuzz {target}: {iterations} inputs, 0 crashes, {:.1} s; accepted {} frames, {} messages, {} page runs; {} commits requested (sealed_source: completed), {} released (memory checked)",
        started.elapsed().as_secs_f64(),
        t.frames,
        t.messages,
        t.page_runs,
        t.commits,
        t.released
    );
}
