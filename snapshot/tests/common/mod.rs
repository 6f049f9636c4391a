//! A small VM to snapshot: memory with a pattern, zero stretches, one vCPU, two devices;
//! and the same VM with a disk and every device state a tern host sends today.

#![allow(dead_code)] // each test file uses part of it

use migration_proto::cpu::{CpuDescriptor, CpuidEntry};
use migration_proto::digest::digest_memory;
use migration_proto::message::{DeviceState, DiskDescriptor, VcpuState, VmIdentity};
use snapshot::format::{Snapshot, SnapshotDisk, SnapshotHeader};

pub const MEMORY_BYTES: usize = 2 << 20;

/// Guest memory: a counter pattern in the first half (every 7th page zero), zero above.
pub fn guest_memory() -> Vec<u8> {
    let mut memory = vec![0u8; MEMORY_BYTES];
    for (pfn, page) in memory[..MEMORY_BYTES / 2].chunks_mut(4096).enumerate() {
        if pfn % 7 == 3 {
            continue;
        }
        for (i, byte) in page.iter_mut().enumerate() {
            *byte = (pfn as u8).wrapping_mul(31) ^ (i as u8);
        }
    }
    memory
}

pub fn identity() -> VmIdentity {
    VmIdentity {
        uuid: [9; 16],
        name: String::from("hb1"),
        memory_bytes: MEMORY_BYTES as u64,
        vcpu_count: 1,
    }
}

pub fn cpu() -> CpuDescriptor {
    CpuDescriptor {
        cpuid: vec![CpuidEntry {
            leaf: 1,
            subleaf: 0,
            eax: 0x806c1,
            ebx: 0,
            ecx: 0x1,
            edx: 0x1,
        }],
        xcr0_supported: 0x7,
        feature_msrs: Vec::new(),
    }
}

pub fn vcpu() -> VcpuState {
    VcpuState {
        vcpu_index: 0,
        rip: 0x10_0000,
        rflags: 0x2,
        ..Default::default()
    }
}

pub fn devices() -> Vec<DeviceState> {
    vec![
        DeviceState {
            id: String::from("com1"),
            version: 1,
            data: vec![1, 2, 3, 4],
        },
        DeviceState {
            id: String::from("tsc-rate"),
            version: 1,
            data: 2_000_000u64.to_le_bytes().to_vec(),
        },
    ]
}

pub fn snapshot() -> Snapshot {
    let memory = guest_memory();
    let devices = devices();
    Snapshot {
        header: SnapshotHeader {
            created_unix_secs: 1_800_000_000,
            origin: String::from("10.0.2.15:49152"),
            protocol_version: 3,
            memory_digest: digest_memory(&memory),
            devices: Snapshot::device_entries(&devices),
            disks: Vec::new(),
        },
        identity: identity(),
        cpu: cpu(),
        memory,
        vcpus: vec![vcpu()],
        devices,
        disks: Vec::new(),
    }
}

/// Size of the test disk: 1 MiB and three blocks, so the last run is short.
pub const DISK_BYTES: usize = (1 << 20) + 3 * 512;

/// A disk written in places: a pattern in the first 300 KiB, zero in the middle (left out
/// of the file), a marker in its last block.
pub fn disk() -> SnapshotDisk {
    let mut data = vec![0u8; DISK_BYTES];
    for (lba, block) in data[..300 * 1024].chunks_mut(512).enumerate() {
        block.fill((lba % 251) as u8 ^ 0x5a);
    }
    let end = data.len();
    data[end - 512..].copy_from_slice(&[0xd1; 512]);
    SnapshotDisk {
        descriptor: DiskDescriptor {
            disk_id: 0,
            name: String::from("vda"),
            size_bytes: DISK_BYTES as u64,
            block_size: 512,
        },
        data,
    }
}

/// The device states a tern host sends for a VM with a disk (ids and order as
/// `kernel/migration/adapters.rs` produces them: disk, UART, console line, TSC rate, CPU
/// model, then the interrupt and timer models), plus `lapicN`/`eventsN` for `extra_vcpus`
/// more vCPUs; made-up contents.
pub fn tern_devices(extra_vcpus: u32) -> Vec<DeviceState> {
    let mut ids: Vec<String> = [
        "vda",
        "com1",
        "com1-line",
        "tsc-rate",
        "cpu-model",
        "lapic0",
        "ioapic",
        "pic",
        "pit",
        "rtc",
        "events0",
    ]
    .map(String::from)
    .to_vec();
    for i in 1..=extra_vcpus {
        ids.push(format!("lapic{i}"));
        ids.push(format!("events{i}"));
    }
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| DeviceState {
            id,
            version: 1 + (i as u32 % 2),
            data: (0..40 + i * 13).map(|b| (b * 7 + i) as u8).collect(),
        })
        .collect()
}

/// [`snapshot`] with [`disk`] and the device states of a tern host.
pub fn snapshot_with_disk() -> Snapshot {
    let mut snap = snapshot();
    snap.devices = tern_devices(0);
    snap.header.devices = Snapshot::device_entries(&snap.devices);
    let disk = disk();
    snap.header.disks = vec![disk.entry()];
    snap.disks = vec![disk];
    snap
}

/// `(offset, kind, payload length)` of every record of a snapshot file, END included.
pub fn records(file: &[u8]) -> Vec<(usize, u16, usize)> {
    let mut out = Vec::new();
    let mut at = snapshot::format::PREAMBLE_LEN;
    while at + 8 <= file.len() {
        let kind = u16::from_le_bytes([file[at], file[at + 1]]);
        let len = u32::from_le_bytes([file[at + 4], file[at + 5], file[at + 6], file[at + 7]]);
        out.push((at, kind, len as usize));
        at += 8 + len as usize;
    }
    out
}

/// Rewrites the END digest after a deliberate change, to reach the checks behind it.
pub fn reseal(file: &mut [u8]) {
    let at = file.len() - 32;
    let digest = blake3::hash(&file[..at]);
    file[at..].copy_from_slice(digest.as_bytes());
}
