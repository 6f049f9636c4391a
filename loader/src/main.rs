//! (being written)
#![cfg_attr(target_os = "uefi", no_std, no_main)]
#[cfg(not(target_os = "uefi"))]
fn main() {}
