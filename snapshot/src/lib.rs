//! tern-snapshot: a VM saved from a tern host into a file, and sent back to any tern host.
//!
//! Why a host-side program and not a hypervisor feature: a tern host has no file system of
//! its own, while every host can migrate. So the program *is* a migration peer over
//! ordinary TCP: `receive` is a destination that writes a file instead of running the VM,
//! `send` is a source that reads its VM from a file. Both use migration-proto's sans-IO
//! sessions unchanged, so authentication, the per-page digest and the commit protocol are
//! the ones live migration uses, and a tern host cannot tell this program from another host.
//! The console's `snapshot HOST:PORT [VM]` is a migration whose source keeps its VM.
//!
//! - [`format`]: the versioned, digest-verified file (`docs/snapshot-format.md`).
//! - [`receive`] / [`send`]: the two directions over std TCP; [`link`]: what they share.
//! - [`key_file`]: the pre-shared key as the hosts are configured with it.
//! - [`zeroed`]: guest memory buffers allocated fallibly and lazily.

pub mod format;
pub mod key_file;
pub mod link;
pub mod receive;
pub mod send;
pub mod zeroed;
