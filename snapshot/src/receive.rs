//! `receive`: an ordinary authenticated migration destination that writes a snapshot file
//! instead of starting the VM.
//!
//! The source cannot tell it from a tern host: same handshake, same checks of every page
//! and state, same commit. The difference is what happens at `CommitRequested`: the file
//! is written beside its final name, made durable, read back and verified (digest and
//! memory), renamed, and only then is the commit acknowledged. A VM with disks arrives as
//! in storage migration (`migrate -b`): the manifest before the offer (refused when the
//! disks exceed `max_disk_bytes`), the blocks with the pages, the disks' per-region digests
//! checked by the session before `CommitRequested`; the file holds the disks too. A source that migrates (not
//! snapshots) to this program therefore gives its VM up only once the file is safe.

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use migration_proto::cpu::{CpuDescriptor, CpuidEntry, FeatureMsr};
use migration_proto::crypto::PreSharedKey;
use migration_proto::digest::digest_memory;
use migration_proto::message::VmIdentity;
use migration_proto::session::{
    DestinationConfig, DestinationEvent, DestinationSession, SessionError,
};

use crate::format::{FormatError, Snapshot, SnapshotDisk, SnapshotHeader};
use crate::link::{self, Clock, Received};

/// What `receive` needs.
pub struct ReceiveOptions {
    /// The hosts' migration key.
    pub key: PreSharedKey,
    /// Where the snapshot goes.
    pub output: PathBuf,
    /// Largest VM accepted.
    pub max_memory_bytes: u64,
    /// Most bytes of disk (all the VM's disks together) accepted; 0 refuses VMs with disks.
    pub max_disk_bytes: u64,
    /// Where the handshake's endpoints come from (`Socket` but in tests through a relay).
    pub binding: link::EndpointBinding,
}

/// A snapshot that was written and acknowledged.
#[derive(Debug)]
pub struct ReceivedSnapshot {
    /// The VM.
    pub identity: VmIdentity,
    /// Size of the file.
    pub file_len: u64,
}

/// Why no snapshot was written (or why the one written is in doubt).
#[derive(Debug)]
pub enum ReceiveError {
    /// Listening, accepting or the nonce failed.
    Io(std::io::Error),
    /// The migration failed; no file was kept.
    Session(SessionError),
    /// The file could not be written or did not verify; the source was told (Abort).
    File(FormatError),
    /// The commit was acknowledged but the source's release never came: the file is
    /// complete and verified, but whether the source gave up its VM is on its console.
    InDoubt {
        /// The kept file.
        path: PathBuf,
        /// The session's reason.
        why: SessionError,
    },
}

impl fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiveError::Io(e) => write!(f, "{e}"),
            ReceiveError::Session(e @ SessionError::NoRoomForDisks { needed, .. }) => write!(
                f,
                "migration failed: {e}; no snapshot written (this receiver takes \
                 --max-disk MIB of disks: give it at least {} MiB)",
                needed.div_ceil(1 << 20)
            ),
            ReceiveError::Session(e) => write!(f, "migration failed: {e}; no snapshot written"),
            ReceiveError::File(e) => {
                write!(f, "snapshot file: {e}; the source was told to keep its VM")
            }
            ReceiveError::InDoubt { path, why } => write!(
                f,
                "commit in doubt ({why}): {} is complete and verified; the source's console \
                 says whether it still runs the VM",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ReceiveError {}

impl From<std::io::Error> for ReceiveError {
    fn from(e: std::io::Error) -> Self {
        ReceiveError::Io(e)
    }
}

/// The CPU this receiver "offers": a file runs no guest, so it accepts every feature bit
/// and limit the destination compares (migration-proto `cpu::compare`). The vendor leaf
/// says GenuineIntel because tern runs only on Intel VT-x; a feature MSR the source lists
/// must be named here, so the ones tern may report are listed with every bit set.
pub fn receiver_cpu() -> CpuDescriptor {
    const ALL: u32 = u32::MAX;
    let leaf = |leaf, subleaf, eax, ebx, ecx, edx| CpuidEntry {
        leaf,
        subleaf,
        eax,
        ebx,
        ecx,
        edx,
    };
    // "GenuineIntel" as EBX, EDX, ECX.
    let (ebx, edx, ecx) = (0x756e_6547, 0x4965_6e69, 0x6c65_746e);
    CpuDescriptor {
        cpuid: vec![
            leaf(0, 0, ALL, ebx, ecx, edx),
            leaf(1, 0, ALL, ALL, ALL, ALL),
            leaf(7, 0, ALL, ALL, ALL, ALL),
            leaf(7, 1, ALL, ALL, ALL, ALL),
            leaf(0xd, 0, ALL, ALL, ALL, ALL),
            leaf(0xd, 1, ALL, ALL, ALL, ALL),
            leaf(0x8000_0000, 0, ALL, ALL, ALL, ALL),
            leaf(0x8000_0001, 0, ALL, ALL, ALL, ALL),
            leaf(0x8000_0007, 0, ALL, ALL, ALL, ALL),
            leaf(0x8000_0008, 0, ALL, ALL, ALL, ALL),
        ],
        xcr0_supported: u64::MAX,
        // IA32_ARCH_CAPABILITIES, IA32_CORE_CAPABILITIES, IA32_VMX_BASIC..VMFUNC are the
        // feature MSRs a CPU model may expose.
        feature_msrs: [0x10a, 0xcf]
            .into_iter()
            .chain(0x480..=0x491)
            .map(|index| FeatureMsr {
                index,
                value: u64::MAX,
            })
            .collect(),
    }
}

/// The state of one incoming VM.
struct Incoming {
    identity: Option<VmIdentity>,
    cpu: CpuDescriptor,
    memory: Vec<u8>,
    vcpus: Vec<migration_proto::message::VcpuState>,
    devices: Vec<migration_proto::message::DeviceState>,
    disks: Vec<SnapshotDisk>,
    origin: String,
    written: Option<u64>,
    acknowledged: bool,
}

/// Accepts one connection on `listener` and receives one VM into `options.output`.
/// `say` gets one line per step.
pub fn receive_one(
    listener: &TcpListener,
    options: &ReceiveOptions,
    say: &mut dyn FnMut(&str),
) -> Result<ReceivedSnapshot, ReceiveError> {
    let (mut stream, peer) = listener.accept()?;
    say(&format!("receive: connection from {peer}"));
    let endpoints = link::bound_endpoints(&mut stream, options.binding, false)?;
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    let clock = Clock::start();
    let mut config = DestinationConfig::new(
        options.key.clone(),
        receiver_cpu(),
        options.max_memory_bytes,
    );
    config.max_disk_bytes = options.max_disk_bytes;
    let mut session = DestinationSession::new(config, link::nonce()?, clock.now());
    if let Some(endpoints) = endpoints {
        session.set_endpoints(endpoints);
    }
    let mut vm = Incoming {
        identity: None,
        cpu: CpuDescriptor::default(),
        memory: Vec::new(),
        vcpus: Vec::new(),
        devices: Vec::new(),
        disks: Vec::new(),
        origin: peer.to_string(),
        written: None,
        acknowledged: false,
    };
    let mut file_error = None;
    let mut buf = vec![0u8; 256 * 1024];
    let mut closed = false;
    loop {
        let mut moved = false;
        if !closed {
            match link::read_some(&mut stream, &mut buf) {
                Received::Bytes(n) => {
                    session.handle_input_into(&buf[..n], clock.now(), &mut vm.memory);
                    moved = true;
                }
                Received::Nothing => {}
                Received::Closed => {
                    closed = true;
                    session.connection_closed(clock.now());
                }
            }
        }
        while let Some(event) = session.poll_event() {
            if let Err(e) = on_event(&mut session, &mut vm, event, options, &clock, say) {
                file_error = Some(e);
            }
        }
        if !closed {
            match link::write_some(&mut stream, session.pending_output()) {
                Some(n) => {
                    session.consume_output(n);
                    moved |= n > 0;
                }
                None => {
                    closed = true;
                    session.connection_closed(clock.now());
                }
            }
        }
        if session.poll_timeout().is_some_and(|t| clock.now() >= t) {
            session.handle_timeout(clock.now());
        }
        let state = session.state();
        let flushed = session.pending_output().is_empty() || closed;
        if session.may_run_vm() && flushed {
            let identity = vm.identity.take().ok_or_else(|| {
                ReceiveError::Io(std::io::Error::other("released before an offer"))
            })?;
            let file_len = vm.written.unwrap_or(0);
            say(&format!(
                "receive: VM '{}' saved to {} ({file_len} bytes, verified)",
                identity.name,
                options.output.display()
            ));
            return Ok(ReceivedSnapshot { identity, file_len });
        }
        if state == migration_proto::session::DestinationState::Failed && flushed {
            let why = session
                .error()
                .cloned()
                .unwrap_or(SessionError::ConnectionClosed {
                    partial_frame_bytes: 0,
                });
            if let Some(e) = file_error {
                return Err(ReceiveError::File(e));
            }
            if vm.acknowledged && vm.written.is_some() {
                return Err(ReceiveError::InDoubt {
                    path: options.output.clone(),
                    why,
                });
            }
            if vm.written.is_some() {
                let _ = std::fs::remove_file(&options.output);
            }
            return Err(ReceiveError::Session(why));
        }
        if !moved {
            link::idle();
        }
    }
}

fn on_event(
    session: &mut DestinationSession,
    vm: &mut Incoming,
    event: DestinationEvent,
    options: &ReceiveOptions,
    clock: &Clock,
    say: &mut dyn FnMut(&str),
) -> Result<(), FormatError> {
    let now = clock.now();
    match event {
        DestinationEvent::Offer(identity) => {
            let bytes = usize::try_from(identity.memory_bytes).unwrap_or(usize::MAX);
            let Some(memory) = crate::zeroed::zeroed_buffer(bytes) else {
                let _ = session.reject_offer("the snapshot receiver has no memory for it", now);
                return Ok(());
            };
            vm.memory = memory;
            // The session refused a manifest larger than `max_disk_bytes` already.
            let manifest = session.disk_manifest().map(|m| m.disks.clone());
            vm.disks.clear();
            for descriptor in manifest.unwrap_or_default() {
                let bytes = usize::try_from(descriptor.size_bytes).unwrap_or(usize::MAX);
                let Some(data) = crate::zeroed::zeroed_buffer(bytes) else {
                    let _ = session.reject_offer(
                        &format!(
                            "the snapshot receiver has no memory for disk {} ({} bytes)",
                            descriptor.name, descriptor.size_bytes
                        ),
                        now,
                    );
                    return Ok(());
                };
                vm.disks.push(SnapshotDisk { descriptor, data });
            }
            let disks: Vec<String> = vm
                .disks
                .iter()
                .map(|d| {
                    format!(
                        "{} {} MiB",
                        d.descriptor.name,
                        d.descriptor.size_bytes >> 20
                    )
                })
                .collect();
            say(&format!(
                "receive: offer of VM '{}' ({} MiB, {} vCPU{}), accepted",
                identity.name,
                identity.memory_bytes >> 20,
                identity.vcpu_count,
                if disks.is_empty() {
                    String::new()
                } else {
                    format!(", disks: {}", disks.join(", "))
                }
            ));
            vm.identity = Some(identity);
            vm.cpu = session.offered_cpu().cloned().unwrap_or_default();
            let _ = session.accept_offer(now);
        }
        DestinationEvent::Pages { first_gpa, data } => {
            // Only `handle_input` produces this; kept correct anyway.
            let start = usize::try_from(first_gpa).unwrap_or(usize::MAX);
            if let Some(slot) = start
                .checked_add(data.len())
                .and_then(|end| vm.memory.get_mut(start..end))
            {
                slot.copy_from_slice(&data);
            }
        }
        DestinationEvent::VcpuState(state) => vm.vcpus.push(*state),
        DestinationEvent::DeviceState(state) => vm.devices.push(state),
        DestinationEvent::DiskBlocks(run) => {
            // The session checked the disk id, block size and range against the manifest.
            let start = usize::try_from(run.first_lba)
                .ok()
                .and_then(|lba| lba.checked_mul(run.block_size as usize));
            let slot = vm
                .disks
                .iter_mut()
                .find(|d| d.descriptor.disk_id == run.disk_id)
                .and_then(|d| {
                    let start = start?;
                    d.data.get_mut(start..start.checked_add(run.data.len())?)
                });
            match slot {
                Some(slot) => slot.copy_from_slice(&run.data),
                None => session.abort_locally(
                    &format!(
                        "disk blocks outside the manifest (disk {}, block {})",
                        run.disk_id, run.first_lba
                    ),
                    now,
                ),
            }
        }
        DestinationEvent::CommitRequested { expected_digest } => {
            match write_verified(vm, session.negotiated().map_or(0, |(v, _)| v), options) {
                Ok(len) => {
                    vm.written = Some(len);
                    let _ = match expected_digest {
                        Some(_) => session.report_digest(digest_memory(&vm.memory), now),
                        None => session.confirm_commit(now),
                    };
                }
                Err(e) => {
                    session.abort_locally(&format!("snapshot file: {e}"), now);
                    return Err(e);
                }
            }
        }
        DestinationEvent::Committed => vm.acknowledged = true,
        DestinationEvent::RoundEnd(stats) => say(&format!(
            "receive: round {} ({} pages)",
            stats.round + 1,
            stats.pages_sent
        )),
        DestinationEvent::Progress(_)
        | DestinationEvent::Released
        | DestinationEvent::Failed(_) => {}
    }
    Ok(())
}

/// Writes the snapshot next to its final name, syncs it, reads it back and checks it
/// decodes to exactly what arrived, then renames it into place.
fn write_verified(
    vm: &mut Incoming,
    protocol_version: u16,
    options: &ReceiveOptions,
) -> Result<u64, FormatError> {
    let identity = vm
        .identity
        .clone()
        .ok_or_else(|| FormatError::Io(std::io::Error::other("commit before an offer")))?;
    vm.vcpus.sort_by_key(|v| v.vcpu_index);
    let snapshot = Snapshot {
        header: SnapshotHeader {
            created_unix_secs: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            origin: vm.origin.clone(),
            protocol_version,
            memory_digest: digest_memory(&vm.memory),
            devices: Snapshot::device_entries(&vm.devices),
            disks: vm.disks.iter().map(SnapshotDisk::entry).collect(),
        },
        identity,
        cpu: vm.cpu.clone(),
        memory: core::mem::take(&mut vm.memory),
        vcpus: vm.vcpus.clone(),
        devices: vm.devices.clone(),
        disks: core::mem::take(&mut vm.disks),
    };
    let result = write_and_check(&snapshot, &options.output);
    vm.memory = snapshot.memory;
    vm.disks = snapshot.disks;
    result
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn write_and_check(snapshot: &Snapshot, path: &Path) -> Result<u64, FormatError> {
    let partial = partial_path(path);
    let result = (|| {
        let file = File::create(&partial)?;
        let mut out = BufWriter::new(file);
        let len = snapshot.write_to(&mut out)?;
        out.into_inner()
            .map_err(|e| FormatError::Io(e.into_error()))?
            .sync_all()?;
        let back = Snapshot::read_file(&partial)?;
        if back != *snapshot {
            return Err(FormatError::Io(std::io::Error::other(
                "the file read back differs from what arrived",
            )));
        }
        std::fs::rename(&partial, path)?;
        Ok(len)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most a tern host can describe: every CPUID leaf the comparison looks at (the
    /// leaves `kernel/migration/adapters.rs::cpu_descriptor` sends and more) with every
    /// bit set, every XCR0 bit, and every feature MSR a CPU model may list, all bits set.
    fn richest_intel_source() -> CpuDescriptor {
        let mut cpu = receiver_cpu();
        for leaf in &mut cpu.cpuid {
            if leaf.leaf != 0 {
                (leaf.eax, leaf.ebx, leaf.ecx, leaf.edx) = (u32::MAX, u32::MAX, u32::MAX, u32::MAX);
            }
        }
        cpu.cpuid[0].eax = u32::MAX;
        cpu
    }

    #[test]
    fn the_receiver_accepts_any_cpu_a_tern_host_describes() {
        assert_eq!(richest_intel_source().compare(&receiver_cpu()), Vec::new());
        // What tern sends today: no feature MSRs at all, the eight leaves at subleaf 0.
        let mut today = richest_intel_source();
        today.feature_msrs.clear();
        today.cpuid.retain(|l| l.subleaf == 0);
        assert_eq!(today.compare(&receiver_cpu()), Vec::new());
    }

    #[test]
    fn the_receiver_cpu_is_a_valid_descriptor() {
        receiver_cpu()
            .validate()
            .expect("the receiver's CPU descriptor passes the protocol's own checks");
    }

    #[test]
    fn a_feature_msr_the_receiver_does_not_list_is_refused_by_name() {
        // If tern starts sending another feature MSR, this is how it fails: the
        // receiver's list in `receiver_cpu` must then grow.
        let mut source = richest_intel_source();
        source.feature_msrs.push(FeatureMsr {
            index: 0x345,
            value: 1,
        });
        assert_eq!(
            source.compare(&receiver_cpu()),
            vec![migration_proto::cpu::Incompatibility::MissingMsr(0x345)]
        );
    }
}
