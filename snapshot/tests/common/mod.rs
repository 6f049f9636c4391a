//! A small VM to snapshot: memory with a pattern, zero stretches, one vCPU, two devices.

#![allow(dead_code)] // each test file uses part of it

use migration_proto::cpu::{CpuDescriptor, CpuidEntry};
use migration_proto::digest::digest_memory;
use migration_proto::message::{DeviceState, VcpuState, VmIdentity};
use snapshot::format::{Snapshot, SnapshotHeader};

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
            disk_count: 0,
        },
        identity: identity(),
        cpu: cpu(),
        memory,
        vcpus: vec![vcpu()],
        devices,
    }
}

/// Rewrites the END digest after a deliberate change, to reach the checks behind it.
pub fn reseal(file: &mut [u8]) {
    let at = file.len() - 32;
    let digest = blake3::hash(&file[..at]);
    file[at..].copy_from_slice(digest.as_bytes());
}
