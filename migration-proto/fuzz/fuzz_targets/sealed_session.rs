//! A destination session past a real handshake, fed messages sealed with the real session
//! key (see `migration_proto::fuzz::sealed_destination`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = migration_proto::fuzz::sealed_destination(data);
});
