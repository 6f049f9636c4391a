//! Portable parts of the heartbeat test guest: its command-line parameters, where its TSC
//! rate comes from, and the verifiable page pattern. Kept apart from the bare-metal binary so they run unit tests on
//! the host (`cargo test -p heartbeat`).
#![cfg_attr(not(test), no_std)]

pub mod disk_block;
pub mod gaps;
pub mod params;
pub mod pattern;
pub mod tsc_rate;
pub mod virtio_mmio_param;
