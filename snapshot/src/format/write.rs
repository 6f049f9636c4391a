//! Writing a snapshot: records in order, every byte hashed on the way, the END digest last.

use std::io::{self, Write};

use migration_proto::message::{DiskBlocks, MAX_DISK_RUN_LEN, Message, Offer, PageRun};
use migration_proto::negotiation::Capabilities;
use migration_proto::page_codec::{PageEncoder, is_zero_page};
use migration_proto::wire::{MAX_PAGES_PER_FRAME, PAGE_SIZE, Writer};

use super::{FORMAT_VERSION, MAGIC, RecordKind, Snapshot, SnapshotHeader};

/// Page encodings used in the file: zero pages cost nothing, the rest LZ4 when it helps.
const FILE_PAGE_CAPS: Capabilities = Capabilities::ZERO_PAGES.union(Capabilities::LZ4_PAGES);

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }

    fn record(&mut self, kind: RecordKind, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::other("snapshot record larger than 4 GiB"))?;
        let mut head = [0u8; super::RECORD_HEADER_LEN];
        head[..2].copy_from_slice(&(kind as u16).to_le_bytes());
        head[4..].copy_from_slice(&len.to_le_bytes());
        self.put(&head)?;
        self.put(payload)
    }
}

impl SnapshotHeader {
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u64(self.created_unix_secs);
        w.text16(&self.origin);
        w.u16(self.protocol_version);
        w.bytes(&self.memory_digest);
        w.count16(self.devices.len());
        for d in &self.devices {
            w.text16(&d.id);
            w.u32(d.version);
            w.u32(d.state_len);
        }
        w.count16(self.disks.len());
        for d in &self.disks {
            w.u32(d.descriptor.disk_id);
            w.text16(&d.descriptor.name);
            w.u64(d.descriptor.size_bytes);
            w.u32(d.descriptor.block_size);
            w.bytes(&d.digest);
        }
    }
}

impl Snapshot {
    /// Writes the whole file to `out`; returns its length. The caller makes the file durable
    /// (`sync_all`) and reads it back to verify before relying on it.
    pub fn write_to(&self, out: impl Write) -> io::Result<u64> {
        let mut w = Hashing {
            inner: out,
            hasher: blake3::Hasher::new(),
            written: 0,
        };
        let mut preamble = [0u8; super::PREAMBLE_LEN];
        preamble[..8].copy_from_slice(&MAGIC);
        preamble[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        w.put(&preamble)?;

        let mut payload = Vec::new();
        self.header.encode(&mut payload);
        w.record(RecordKind::Header, &payload)?;

        let mut encoder = PageEncoder::new();
        let offer = Message::Offer(Box::new(Offer {
            identity: self.identity.clone(),
            cpu: self.cpu.clone(),
        }));
        offer
            .validate()
            .map_err(|e| io::Error::other(format!("VM record: {e}")))?;
        payload.clear();
        offer.encode(FILE_PAGE_CAPS, &mut encoder, &mut payload);
        w.record(RecordKind::Vm, &payload)?;

        for (index, run) in self
            .memory
            .chunks(MAX_PAGES_PER_FRAME * PAGE_SIZE)
            .enumerate()
        {
            if run.chunks(PAGE_SIZE).all(is_zero_page) {
                continue; // absent pages are zero
            }
            let message = Message::Pages(PageRun {
                first_gpa: (index * MAX_PAGES_PER_FRAME * PAGE_SIZE) as u64,
                data: run.to_vec(),
            });
            message
                .validate()
                .map_err(|e| io::Error::other(format!("memory is not whole pages: {e}")))?;
            payload.clear();
            message.encode(FILE_PAGE_CAPS, &mut encoder, &mut payload);
            w.record(RecordKind::Pages, &payload)?;
        }

        for disk in &self.disks {
            let descriptor = &disk.descriptor;
            if disk.data.len() as u64 != descriptor.size_bytes {
                return Err(io::Error::other(format!(
                    "disk {}: {} bytes of contents for a disk of {} bytes",
                    descriptor.name,
                    disk.data.len(),
                    descriptor.size_bytes
                )));
            }
            let block_size = descriptor.block_size as usize;
            for (index, run) in disk.data.chunks(MAX_DISK_RUN_LEN).enumerate() {
                if run.iter().all(|b| *b == 0) {
                    continue; // absent blocks are zero
                }
                let message = Message::DiskBlocks(DiskBlocks {
                    disk_id: descriptor.disk_id,
                    first_lba: (index * (MAX_DISK_RUN_LEN / block_size.max(1))) as u64,
                    block_size: descriptor.block_size,
                    data: run.to_vec(),
                });
                message
                    .validate()
                    .map_err(|e| io::Error::other(format!("disk {}: {e}", descriptor.name)))?;
                payload.clear();
                message.encode(FILE_PAGE_CAPS, &mut encoder, &mut payload);
                w.record(RecordKind::Disk, &payload)?;
            }
        }

        for vcpu in &self.vcpus {
            let message = Message::VcpuState(Box::new(vcpu.clone()));
            message
                .validate()
                .map_err(|e| io::Error::other(format!("vCPU {}: {e}", vcpu.vcpu_index)))?;
            payload.clear();
            message.encode(FILE_PAGE_CAPS, &mut encoder, &mut payload);
            w.record(RecordKind::Vcpu, &payload)?;
        }
        for device in &self.devices {
            let message = Message::DeviceState(device.clone());
            message
                .validate()
                .map_err(|e| io::Error::other(format!("device {}: {e}", device.id)))?;
            payload.clear();
            message.encode(FILE_PAGE_CAPS, &mut encoder, &mut payload);
            w.record(RecordKind::Device, &payload)?;
        }

        // The END record's header is hashed too: the digest covers every byte before it.
        let mut head = [0u8; super::RECORD_HEADER_LEN];
        head[..2].copy_from_slice(&(RecordKind::End as u16).to_le_bytes());
        head[4..].copy_from_slice(&(super::END_DIGEST_LEN as u32).to_le_bytes());
        w.put(&head)?;
        let digest = *w.hasher.finalize().as_bytes();
        w.inner.write_all(&digest)?;
        w.inner.flush()?;
        Ok(w.written + digest.len() as u64)
    }

    /// The whole file as bytes (tests and small VMs).
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }
}
