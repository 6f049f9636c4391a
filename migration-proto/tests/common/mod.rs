//! Fixtures shared by the integration tests: a CPU, a VM, configs, a seeded generator, and
//! a perfect in-memory link that pumps bytes between a source and a destination session.
#![allow(dead_code)]

pub mod rogue;

use migration_proto::cpu::{CpuDescriptor, CpuidEntry, FeatureMsr};
use migration_proto::crypto::PreSharedKey;
use migration_proto::message::{DeviceState, SegmentRegister, VcpuState, VmIdentity};
use migration_proto::session::{
    DestinationConfig, DestinationEvent, DestinationSession, DestinationState, Instant,
    SessionError, SourceConfig, SourceEvent, SourceSession, SourceState,
};
use migration_proto::wire::PAGE_SIZE;

/// splitmix64: small, seeded, good enough for test data and fault schedules.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

pub const KEY: [u8; 32] = [0x5a; 32];

pub fn cpu() -> CpuDescriptor {
    let leaf = |leaf, subleaf, eax, ebx, ecx, edx| CpuidEntry {
        leaf,
        subleaf,
        eax,
        ebx,
        ecx,
        edx,
    };
    CpuDescriptor {
        cpuid: vec![
            leaf(0, 0, 0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
            leaf(1, 0, 0x906ea, 0x0100_0800, 0x7ffa_fbbf, 0xbfeb_fbff),
            leaf(7, 0, 0, 0x029c_67af, 0x0000_0000, 0xbc00_0400),
            leaf(0xd, 0, 0x7, 0x340, 0x340, 0),
            leaf(0x8000_0008, 0, 0x3027, 0, 0, 0),
        ],
        xcr0_supported: 0x7,
        feature_msrs: vec![FeatureMsr {
            index: 0x10a,
            value: 0x0c,
        }],
    }
}

pub fn identity(memory_bytes: u64, vcpu_count: u32) -> VmIdentity {
    VmIdentity {
        uuid: *b"0123456789abcdef",
        name: "test-vm".into(),
        memory_bytes,
        vcpu_count,
    }
}

pub fn source_config(memory_bytes: u64, vcpus: u32) -> SourceConfig {
    SourceConfig::new(PreSharedKey::new(KEY), identity(memory_bytes, vcpus), cpu())
}

pub fn destination_config() -> DestinationConfig {
    DestinationConfig::new(PreSharedKey::new(KEY), cpu(), 1 << 30)
}

pub fn vcpu_state(index: u32) -> VcpuState {
    let mut s = VcpuState {
        vcpu_index: index,
        rip: 0xffff_ffff_8100_0000 + u64::from(index),
        ..VcpuState::default()
    };
    s.gprs[0] = 0xdead_beef;
    s.segments[1] = SegmentRegister {
        selector: 0x10,
        base: 0,
        limit: 0xffff_ffff,
        access_rights: 0xa09b,
    };
    s.cr0 = 0x8005_0033;
    s.xsave = vec![0xab; 576];
    s
}

pub fn device_state() -> DeviceState {
    DeviceState {
        id: "com1".into(),
        version: 1,
        data: vec![1, 2, 3, 4],
    }
}

/// Moves all pending bytes both ways (perfect link) until neither side has output.
pub fn pump(src: &mut SourceSession, dst: &mut DestinationSession, now: Instant) {
    loop {
        let out = src.pending_output().to_vec();
        src.consume_output(out.len());
        if !out.is_empty() {
            dst.handle_input(&out, now);
        }
        let back = dst.pending_output().to_vec();
        dst.consume_output(back.len());
        if !back.is_empty() {
            src.handle_input(&back, now);
        }
        if out.is_empty() && back.is_empty() {
            return;
        }
    }
}

/// Moves bytes both ways, decoding pages straight into `dst_mem`.
pub fn pump_into(src: &mut SourceSession, dst: &mut DestinationSession, dst_mem: &mut Vec<u8>) {
    loop {
        let out = src.pending_output().to_vec();
        src.consume_output(out.len());
        if !out.is_empty() {
            dst.handle_input_into(&out, T0, dst_mem);
        }
        let back = dst.pending_output().to_vec();
        dst.consume_output(back.len());
        if !back.is_empty() {
            src.handle_input(&back, T0);
        }
        if out.is_empty() && back.is_empty() {
            return;
        }
    }
}

pub fn source_events(src: &mut SourceSession) -> Vec<SourceEvent> {
    std::iter::from_fn(|| src.poll_event()).collect()
}

pub fn destination_events(dst: &mut DestinationSession) -> Vec<DestinationEvent> {
    std::iter::from_fn(|| dst.poll_event()).collect()
}

/// Runs the handshake over a perfect link and accepts the offer.
pub fn connect(
    src_cfg: SourceConfig,
    dst_cfg: DestinationConfig,
) -> (SourceSession, DestinationSession) {
    let now = Instant::from_millis(0);
    let mut src = SourceSession::new(src_cfg, [1; 32], now);
    let mut dst = DestinationSession::new(dst_cfg, [2; 32], now);
    pump(&mut src, &mut dst, now);
    if matches!(
        destination_events(&mut dst).as_slice(),
        [DestinationEvent::Offer(_)]
    ) {
        dst.accept_offer(now).expect("accept");
        pump(&mut src, &mut dst, now);
    }
    (src, dst)
}

/// Guest memory of the rule tests.
pub const MEM: u64 = 64 * PAGE_SIZE as u64;
/// Time of the rule tests.
pub const T0: Instant = Instant::from_millis(0);

/// The destination failed: its error.
pub fn dst_failure(dst: &mut DestinationSession) -> SessionError {
    assert_eq!(dst.state(), DestinationState::Failed);
    dst.error().cloned().expect("destination error")
}

/// The source failed and kept its VM: its error.
pub fn src_failure(src: &mut SourceSession) -> SessionError {
    assert_eq!(src.state(), SourceState::Failed);
    assert!(src.owns_vm(), "a failed source keeps its VM");
    src.error().cloned().expect("source error")
}
