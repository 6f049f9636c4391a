//! Migration inside the hypervisor: dirty tracking, and the engines that connect
//! `migration-proto` sessions to VMs and byte streams.
//!
//! Why it is split like this: everything that decides (when to end a round, when to switch
//! over, how hard to throttle, what to do on a failure) is portable and driven by time and
//! events passed in, so it runs in host simulations with a fake VM that dirties memory and
//! a bandwidth-limited in-memory link. The bare-metal side only implements the two traits
//! ([`source::MigratableVm`], [`transport::Transport`]) over a VMX machine and a TCP socket.
//!
//! - [`dirty`]: EPT write-protection and PML bookkeeping over the EPT builder.
//! - [`params`]: tunables (`migrate_set_parameter`) and the console argument parser.
//! - [`convergence`]: the switch-over and auto-converge (throttle) policy.
//! - [`source`]: the source engine (pre-copy rounds, stop-and-copy, commit, rollback).
//! - [`destination`]: the destination engine (accept, build, verify, commit, start).
//! - [`vm_error`]: what a VM operation the engines ask for can fail with.
//! - [`evacuation`]: `evacuate`: every VM to one peer in turn; the first failure stops it.
//! - [`in_doubt`]: a commit acknowledged but never released: keep, tell, resolve.
//! - [`nonce`]: session nonces from RDSEED/RDRAND mixed with TSC, counter and host name.
//! - [`report`]: `info migrate`, per-round progress lines and the final statistics.

pub mod convergence;
pub mod cpu_budget;
pub mod destination;
pub mod dirty;
pub mod dirty_limit;
pub mod evacuation;
pub mod in_doubt;
pub mod nonce;
pub mod params;
pub mod report;
pub mod source;
pub mod tcp;
pub mod transport;
pub mod vm_error;

#[cfg(test)]
mod sim;
