//! Every decoder of migration-proto and both sessions on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = migration_proto::fuzz::decode_everything(data);
});
