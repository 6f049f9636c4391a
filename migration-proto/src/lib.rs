//! tern's migration wire protocol: versioned, authenticated, verified, and sans-IO.
//!
//! This crate is the contract between two tern hypervisors moving a VM (and later between a
//! hypervisor and host tools). The full specification, with frame and message layouts,
//! state machines, versioning rules and the security model, is `docs/migration-protocol.md`.
//!
//! # Layers
//! - [`wire`]: the 24-byte frame header (zerocopy), limits, message type codes, and the
//!   checked little-endian cursor decoders are built on.
//! - [`message`]: every message with its encoder and a decoder that never panics.
//! - [`page_codec`]: runs of guest pages as zero / LZ4 / raw pages; [`dirty`]: dirty-page
//!   bitmaps; [`digest`]: the BLAKE3 memory digest; [`cpu`]: the CPU compatibility descriptor.
//! - [`crypto`]: pre-shared-key proofs, session keys, per-frame MAC (BLAKE3) or AEAD
//!   (ChaCha20-Poly1305); [`framing`]: sealed frames in, checked in-order frames out.
//! - [`session`]: the source and destination state machines. Bytes and events in, bytes
//!   and events out, time injected; no sockets, no clock, no VMX, no randomness (nonces are
//!   passed in), so the whole protocol, failures included, runs in host tests.
//!
//! `#![no_std]` + `alloc` without the default `std` feature (the hypervisor's build).
//!
//! # Driving the sessions
//! The hypervisor's poll loop owns the socket and guest memory; the sessions own the
//! protocol. The source is fed runs of dirty pages only while [`SourceSession::can_send_pages`]
//! says its output buffer has room, which bounds memory use whatever the VM size; the
//! destination either decodes pages straight into guest memory
//! ([`DestinationSession::handle_input_into`]) or hands them out as
//! [`DestinationEvent::Pages`].
//!
//! ```
//! use migration_proto::cpu::CpuDescriptor;
//! use migration_proto::crypto::PreSharedKey;
//! use migration_proto::digest::digest_memory;
//! use migration_proto::dirty::DirtyBitmap;
//! use migration_proto::message::{VcpuState, VmIdentity};
//! use migration_proto::session::*;
//! use migration_proto::wire::{MAX_PAGES_PER_FRAME, PAGE_SIZE};
//!
//! let key = PreSharedKey::new([7; 32]); // from both hosts' configuration
//! let cpu = CpuDescriptor::default(); // CPUID/XCR0/MSRs the guest sees
//! let vm = VmIdentity { uuid: [1; 16], name: "web1".into(), memory_bytes: 1 << 20, vcpu_count: 1 };
//! let guest = vec![0x5au8; 1 << 20]; // the source VM's memory
//! let mut now = Instant::from_millis(0); // TSC-derived on the hypervisor
//!
//! // Nonces: fresh random bytes (RDRAND) for every session.
//! let mut src = SourceSession::new(SourceConfig::new(key.clone(), vm, cpu.clone()), [1; 32], now);
//! let mut dst = DestinationSession::new(DestinationConfig::new(key, cpu, 1 << 30), [2; 32], now);
//! let mut dst_memory = vec![0u8; 1 << 20]; // fresh, zeroed guest memory
//!
//! // Stand-in for two TCP sockets: move bytes both ways until both sides are quiet.
//! fn exchange(src: &mut SourceSession, dst: &mut DestinationSession, mem: &mut Vec<u8>, now: Instant) {
//!     while !src.pending_output().is_empty() || !dst.pending_output().is_empty() {
//!         let out = src.pending_output();
//!         dst.handle_input_into(out, now, mem); // pages go straight into `mem`
//!         let n = out.len();
//!         src.consume_output(n); // in real life: only what the socket accepted
//!         let back = dst.pending_output().to_vec();
//!         dst.consume_output(back.len());
//!         src.handle_input(&back, now);
//!     }
//! }
//!
//! exchange(&mut src, &mut dst, &mut dst_memory, now); // Hello, HelloReply, Auth, Offer
//! assert!(matches!(dst.poll_event(), Some(DestinationEvent::Offer(_))));
//! dst.accept_offer(now).unwrap(); // after the operator or policy agreed
//! exchange(&mut src, &mut dst, &mut dst_memory, now);
//! assert!(matches!(src.poll_event(), Some(SourceEvent::Accepted { .. })));
//!
//! // Pre-copy round 0: everything is dirty. Later rounds send the harvested dirty bitmap.
//! let dirty = DirtyBitmap::all_dirty(guest.len() / PAGE_SIZE);
//! for (pfn, count) in dirty.runs(MAX_PAGES_PER_FRAME) {
//!     while !src.can_send_pages() {
//!         exchange(&mut src, &mut dst, &mut dst_memory, now); // backpressure: flush first
//!     }
//!     let bytes = &guest[pfn * PAGE_SIZE..(pfn + count) * PAGE_SIZE];
//!     src.send_pages((pfn * PAGE_SIZE) as u64, bytes, now).unwrap();
//! }
//! src.end_round(0, now).unwrap();
//!
//! // Stop-and-copy: the VM is paused; state, then commit. Version 3 verifies memory with the
//! // page digest both sessions kept while pages moved: no whole-memory pass now. (Pass
//! // `Some(digest_memory(&guest))` to add the full check, as `verify full` does.)
//! src.send_vcpu_state(&VcpuState { vcpu_index: 0, rip: 0x1000, ..Default::default() }, now).unwrap();
//! src.commit(None, now).unwrap();
//! exchange(&mut src, &mut dst, &mut dst_memory, now);
//!
//! // The destination loads and checks the state, then confirms (or, if the source sent a
//! // whole-memory digest, reports the digest of its own memory).
//! while let Some(event) = dst.poll_event() {
//!     match event {
//!         DestinationEvent::VcpuState(state) => { /* check, load into the vCPU */ let _ = state; }
//!         DestinationEvent::CommitRequested { expected_digest: None } => dst.confirm_commit(now).unwrap(),
//!         DestinationEvent::CommitRequested { expected_digest: Some(_) } => {
//!             dst.report_digest(digest_memory(&dst_memory), now).unwrap()
//!         }
//!         _ => {}
//!     }
//! }
//! exchange(&mut src, &mut dst, &mut dst_memory, now); // CommitAck, Release
//! assert!(matches!(src.poll_event(), Some(SourceEvent::Completed)));
//! assert!(!src.owns_vm()); // the source may now destroy its copy
//! assert!(dst.may_run_vm()); // and the destination may start the VM
//! assert_eq!(dst_memory, guest);
//!
//! // Timers: call handle_timeout when poll_timeout says so.
//! now = now + core::time::Duration::from_secs(1);
//! if src.poll_timeout().is_some_and(|t| now >= t) { src.handle_timeout(now); }
//! ```
//!
//! Until [`SourceEvent::Completed`], any [`SourceEvent::Failed`] means "resume the VM on the
//! source": nothing was lost.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod cpu;
pub mod crypto;
pub mod digest;
pub mod dirty;
pub mod disk_digest;
pub mod framing;
#[cfg(feature = "std")]
pub mod fuzz;
pub mod message;
pub mod negotiation;
pub mod page_codec;
pub mod page_digest;
pub mod session;
pub mod wire;

pub use session::{
    DestinationConfig, DestinationEvent, DestinationSession, Instant, SourceConfig, SourceEvent,
    SourceSession,
};
