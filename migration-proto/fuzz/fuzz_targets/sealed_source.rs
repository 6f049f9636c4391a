//! A source session past a real handshake, driven by fuzzed calls and sealed replies (see
//! `migration_proto::fuzz::sealed_source`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = migration_proto::fuzz::sealed_source(data);
});
