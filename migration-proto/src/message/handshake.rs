//! Handshake messages: `Hello`, `HelloReply`, `Auth`, and the post-authentication `Offer`
//! (VM identity + CPU descriptor).
//!
//! Nothing about the VM travels before both sides proved knowledge of the pre-shared key:
//! `Hello`/`HelloReply` carry only versions, capability bits, nonces and proofs.

use alloc::string::String;

use crate::cpu::CpuDescriptor;
use crate::negotiation::{Capabilities, VersionRange};
use crate::wire::{DecodeError, Reader, Writer};

/// Length of the nonces each side contributes.
pub const NONCE_LEN: usize = 32;
/// Length of a key-possession proof (BLAKE3 keyed hash).
pub const PROOF_LEN: usize = 32;
/// Longest VM name.
pub const MAX_VM_NAME_LEN: usize = 64;
/// Most vCPUs a VM may have.
pub const MAX_VCPUS: u32 = 256;

/// Source -> destination, first frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Versions the source speaks.
    pub versions: VersionRange,
    /// Capabilities the source can use.
    pub offered: Capabilities,
    /// Capabilities the source insists on (a subset of `offered`).
    pub required: Capabilities,
    /// Source nonce (fresh random bytes for every session).
    pub nonce: [u8; NONCE_LEN],
}

impl Hello {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u16(self.versions.min);
        w.u16(self.versions.max);
        w.u64(self.offered.bits());
        w.u64(self.required.bits());
        w.bytes(&self.nonce);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let min = r.u16("hello.min_version")?;
        let max = r.u16("hello.max_version")?;
        if min > max {
            return Err(DecodeError::InvalidValue {
                field: "hello.min_version",
                value: min.into(),
            });
        }
        Ok(Hello {
            versions: VersionRange { min, max },
            offered: Capabilities::from_bits(r.u64("hello.offered")?),
            required: Capabilities::from_bits(r.u64("hello.required")?),
            nonce: r.array("hello.nonce")?,
        })
    }
}

/// Destination -> source: the chosen parameters and the destination's proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloReply {
    /// Chosen protocol version.
    pub version: u16,
    /// Capabilities in use for the session.
    pub capabilities: Capabilities,
    /// Destination nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Keyed hash over the transcript proving the destination holds the key.
    pub proof: [u8; PROOF_LEN],
}

impl HelloReply {
    /// Length of the encoded fields the transcript covers (everything but the proof).
    pub const TRANSCRIPT_PART_LEN: usize = 2 + 8 + NONCE_LEN;

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u16(self.version);
        w.u64(self.capabilities.bits());
        w.bytes(&self.nonce);
        w.bytes(&self.proof);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(HelloReply {
            version: r.u16("hello_reply.version")?,
            capabilities: Capabilities::from_bits(r.u64("hello_reply.capabilities")?),
            nonce: r.array("hello_reply.nonce")?,
            proof: r.array("hello_reply.proof")?,
        })
    }
}

/// Source -> destination: the source's proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthProof {
    /// Keyed hash over the transcript proving the source holds the key.
    pub proof: [u8; PROOF_LEN],
}

/// Who the VM is and how big.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmIdentity {
    /// VM UUID.
    pub uuid: [u8; 16],
    /// Human-readable name (UTF-8, at most `MAX_VM_NAME_LEN` bytes).
    pub name: String,
    /// Guest memory size in bytes (a non-zero multiple of 4 KiB).
    pub memory_bytes: u64,
    /// Number of vCPUs (1 ..= `MAX_VCPUS`).
    pub vcpu_count: u32,
}

impl VmIdentity {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.bytes(&self.uuid);
        w.text16(&self.name);
        w.u64(self.memory_bytes);
        w.u32(self.vcpu_count);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = VmIdentity {
            uuid: r.array("vm.uuid")?,
            name: r.text16("vm.name", MAX_VM_NAME_LEN)?,
            memory_bytes: r.u64("vm.memory_bytes")?,
            vcpu_count: r.u32("vm.vcpu_count")?,
        };
        id.validate()?;
        Ok(id)
    }

    /// Checks the field rules the decoder enforces.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.name.len() > MAX_VM_NAME_LEN {
            return Err(DecodeError::TooLong {
                field: "vm.name",
                len: self.name.len(),
                max: MAX_VM_NAME_LEN,
            });
        }
        if self.memory_bytes == 0 || !self.memory_bytes.is_multiple_of(4096) {
            return Err(DecodeError::InvalidValue {
                field: "vm.memory_bytes",
                value: self.memory_bytes,
            });
        }
        if self.vcpu_count == 0 || self.vcpu_count > MAX_VCPUS {
            return Err(DecodeError::InvalidValue {
                field: "vm.vcpu_count",
                value: self.vcpu_count.into(),
            });
        }
        Ok(())
    }
}

/// Source -> destination after authentication: the VM on offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The VM.
    pub identity: VmIdentity,
    /// The CPU the guest was shown.
    pub cpu: CpuDescriptor,
}

impl Offer {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        self.identity.encode(w);
        self.cpu.encode(w);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Offer {
            identity: VmIdentity::decode(r)?,
            cpu: CpuDescriptor::decode(r)?,
        })
    }

    pub(crate) fn validate(&self) -> Result<(), DecodeError> {
        self.identity.validate()?;
        self.cpu.validate()
    }
}
