//! (crate docs written below)
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod cpu;
pub mod crypto;
pub mod digest;
pub mod dirty;
pub mod framing;
pub mod fuzz;
pub mod message;
pub mod negotiation;
pub mod page_codec;
pub mod wire;
pub mod session;
