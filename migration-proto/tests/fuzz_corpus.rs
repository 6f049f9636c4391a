//! The checked-in fuzz corpus stays meaningful and the fuzz entry point survives it and a
//! quick burst of mutations (the long run is `examples/fuzz.rs`).

mod common;

use common::Rng;
use migration_proto::cpu::CpuDescriptor;
use migration_proto::crypto::PreSharedKey;
use migration_proto::fuzz::{FUZZ_MEMORY_BYTES, decode_everything, drive_destination};
use migration_proto::session::{DestinationConfig, DestinationEvent, DestinationSession, Instant};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decoders");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn recorded_session_reaches_the_commit_in_the_fuzz_destination() {
    let (_, stream) = corpus()
        .into_iter()
        .find(|(n, _)| n == "session-source-to-destination")
        .expect("seed");
    let now = Instant::from_millis(1);
    let cfg = DestinationConfig::new(
        PreSharedKey::new([0x42; 32]),
        CpuDescriptor::default(),
        1 << 30,
    );
    let mut dst = DestinationSession::new(cfg, [1; 32], now);
    let mut events = Vec::new();
    // Into guest memory: the recorded stream has a delta page.
    let mut memory = vec![0u8; FUZZ_MEMORY_BYTES];
    for piece in stream.chunks(64) {
        dst.handle_input_into(piece, now, &mut memory);
        events.extend(drive_destination(&mut dst, now));
    }
    // The fuzzer's mutations start from a stream that authenticates and runs to the end.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, DestinationEvent::CommitRequested { .. }))
    );
    assert!(
        matches!(events.last(), Some(DestinationEvent::Released)),
        "ended in {:?}",
        dst.state()
    );
}

#[test]
fn fuzz_entry_point_survives_corpus_and_mutations() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 22,
        "one payload per message type plus streams"
    );
    let mut accepted_messages = 0;
    for (_, input) in &corpus {
        accepted_messages += decode_everything(input).messages;
    }
    assert!(accepted_messages >= 18, "every payload seed decodes");
    let mut rng = Rng(7);
    for i in 0..3000 {
        let mut input = corpus[i % corpus.len()].1.clone();
        for _ in 0..1 + rng.below(3) {
            if input.is_empty() {
                break;
            }
            let at = rng.below(input.len() as u64) as usize;
            match rng.below(3) {
                0 => input[at] ^= 1 << rng.below(8),
                1 => input.truncate(at),
                _ => input.insert(at, rng.next() as u8),
            }
        }
        decode_everything(&input);
    }
}
