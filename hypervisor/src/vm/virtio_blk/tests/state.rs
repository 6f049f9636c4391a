//! Save/restore: a migration mid-request, and every way a peer's state can be refused.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::driver::*;
use crate::vm::virtio::guest_memory::GuestMemory;
use crate::vm::virtio::mmio::reg;
use crate::vm::virtio_blk::request::{request_type, status_byte};
use crate::vm::virtio_blk::state::STATE_VERSION;
use crate::vm::virtio_blk::{BlkState, RamDisk, RestoreError};

/// A submitted request: head, data-in address, status address.
type Submitted = (u16, u64, u64);

/// A source with one completed request and two held in flight (a write and a read).
fn source_mid_request() -> (Driver<HeldDisk>, Vec<u8>, [Submitted; 2]) {
    let mut src = Driver::new(HeldDisk::new(ram_disk()));
    src.init_default();
    src.run_flush_held();
    let data: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    let w = src.submit(request_type::OUT, 5, &data, 0, 3);
    let r = src.submit(request_type::IN, 20, &[], 1024, 2);
    src.notify();
    assert_eq!(src.dev.device().in_flight().len(), 2);
    (src, data, [w, r])
}

impl Driver<HeldDisk> {
    fn run_flush_held(&mut self) {
        self.submit(request_type::FLUSH, 0, &[], 0, 1);
        self.notify();
        self.dev.device_mut().backend_mut().release();
        self.dev.poll(&mut self.mem);
        assert!(self.pop_used().is_some());
    }
}

/// A destination with the source's RAM and disk contents, fresh device.
fn destination_for(src: &Driver<HeldDisk>) -> Driver<HeldDisk> {
    let disk = src.dev.device().backend().inner.contents().to_vec();
    let mut dst = Driver::new(HeldDisk::new(
        RamDisk::from_image(disk, 512, false).unwrap(),
    ));
    dst.mem = src.mem.clone();
    dst.size = src.size;
    dst.avail_idx = src.avail_idx;
    dst.used_seen = src.used_seen;
    dst
}

#[test]
fn migration_mid_request_resubmits_and_completes_on_the_destination() {
    let (src, data, [(wh, _, wst), (rh, rin, rst)]) = source_mid_request();
    let saved = src.dev.device_state("vda");
    assert_eq!(saved.version, u32::from(STATE_VERSION));
    saved.validate().unwrap();

    let mut dst = destination_for(&src);
    dst.dev.restore_device_state(&saved).unwrap();
    assert_eq!(
        dst.dev.save().encode(),
        src.dev.save().encode(),
        "byte-exact round trip"
    );
    assert_eq!(dst.dev.status(), src.dev.status());
    assert!(dst.dev.device().in_flight().iter().all(|r| !r.submitted));

    // First poll resubmits; the slow disk then completes both.
    dst.dev.poll(&mut dst.mem);
    assert_eq!(dst.dev.device().backend().held.len(), 2);
    dst.dev.device_mut().backend_mut().release();
    dst.dev.poll(&mut dst.mem);
    let mut used: Vec<u32> = [dst.pop_used(), dst.pop_used()]
        .iter()
        .map(|u| u.unwrap().0)
        .collect();
    used.sort_unstable();
    let mut want = vec![u32::from(wh), u32::from(rh)];
    want.sort_unstable();
    assert_eq!(used, want);
    assert_eq!(dst.mem.bytes[wst as usize], status_byte::OK);
    assert_eq!(dst.mem.bytes[rst as usize], status_byte::OK);
    let mut got = vec![0; 1024];
    dst.mem.read(rin, &mut got).unwrap();
    assert_eq!(got, patterned_image(64)[20 * 512..22 * 512]);
    assert_eq!(
        &dst.dev.device().backend().inner.contents()[5 * 512..7 * 512],
        &data[..]
    );
    let dirty = dst.dev.device_mut().dirty_blocks().take();
    assert_eq!(
        dirty.iter_set().collect::<Vec<_>>(),
        [5, 6],
        "resubmitted write is dirty"
    );
    assert!(dst.dev.interrupt_level());
    // And the destination keeps serving.
    assert_eq!(dst.read(reg::STATUS), src.read(reg::STATUS));
    let (s, _, _) = {
        let (h, i, st) = dst.submit(request_type::FLUSH, 0, &[], 0, 1);
        dst.notify();
        dst.dev.device_mut().backend_mut().release();
        dst.dev.poll(&mut dst.mem);
        (dst.mem.bytes[st as usize], h, i)
    };
    assert_eq!(s, status_byte::OK);
}

#[test]
fn broken_device_restores_broken() {
    let mut src = Driver::new(ram_disk());
    src.init_default();
    src.mem.write(AVAIL + 2, &40u16.to_le_bytes()).unwrap();
    src.notify();
    assert!(src.broken());
    let mut dst = Driver::new(ram_disk());
    dst.dev.restore(src.dev.save()).unwrap();
    assert!(dst.broken());
    assert_eq!(
        dst.dev.broken_reason(),
        Some("restored in the DEVICE_NEEDS_RESET state")
    );
}

#[test]
fn device_broken_by_a_chain_restores_although_it_took_the_bad_head() {
    let mut src = Driver::new(ram_disk());
    src.init_default();
    let h = src.header(request_type::IN, 0);
    src.put_desc(DESC, 0, h, 16, 1, 0);
    src.make_available(0);
    src.notify();
    assert!(src.broken());
    assert_eq!(src.dev.registers().queues[0].in_flight(), 1);
    let mut dst = Driver::new(ram_disk());
    dst.dev.restore(src.dev.save()).unwrap();
    assert!(dst.broken());
    // But a working device may not lose a head.
    let mut state = src.dev.save();
    state.transport.needs_reset = false;
    assert_eq!(
        dst.dev.restore(state),
        Err(RestoreError::InFlight(
            "the count differs from the queue's available and used indices"
        ))
    );
}

/// Encode `state`, let `edit` change it, and expect restoring it to fail without changing
/// the destination.
fn refused(edit: impl FnOnce(&mut BlkState)) -> RestoreError {
    let (src, _, _) = source_mid_request();
    let mut state = src.dev.save();
    edit(&mut state);
    let mut dst = destination_for(&src);
    dst.init_default();
    let before = dst.dev.save().encode();
    let err = dst.dev.restore(state).unwrap_err();
    assert_eq!(
        dst.dev.save().encode(),
        before,
        "a refused state changed the device"
    );
    assert!(!err.to_string().is_empty());
    err
}

#[test]
fn semantic_checks_refuse_bad_states() {
    let transport = |m: &'static str| RestoreError::Transport(m);
    let in_flight = |m: &'static str| RestoreError::InFlight(m);
    assert!(matches!(
        refused(|s| s.capacity_sectors = 65),
        RestoreError::DiskMismatch {
            what: "capacity",
            ..
        }
    ));
    assert!(matches!(
        refused(|s| s.block_size = 4096),
        RestoreError::DiskMismatch {
            what: "block size",
            ..
        }
    ));
    assert!(matches!(
        refused(|s| s.device_features |= 1 << 5),
        RestoreError::DiskMismatch {
            what: "offered features",
            ..
        }
    ));
    assert_eq!(
        refused(|s| s.transport.status |= 0x40),
        transport("status has bits a driver cannot set")
    );
    assert_eq!(
        refused(|s| s.transport.status = 4 | 8),
        transport("status bits are set out of order")
    );
    assert_eq!(
        refused(|s| s.transport.driver_features |= 1 << 29),
        transport("driver features this device does not offer")
    );
    assert_eq!(
        refused(|s| s.transport.driver_features &= !(1 << 32)),
        transport("features accepted without VERSION_1")
    );
    assert_eq!(
        refused(|s| s.transport.interrupt_status = 4),
        transport("unknown interrupt status bits")
    );
    assert_eq!(
        refused(|s| s.transport.queues.push(Default::default())),
        transport("queue count differs from this device's")
    );
    assert_eq!(
        refused(|s| s.transport.queues[0].size = 6),
        transport("a ready queue has a bad size or alignment")
    );
    assert_eq!(
        refused(|s| s.transport.queues[0].used_ring += 2),
        transport("a ready queue has a bad size or alignment")
    );
    assert_eq!(
        refused(|s| s.transport.queues[0].last_avail_idx += 1),
        in_flight("the count differs from the queue's available and used indices")
    );
    assert_eq!(
        refused(|s| s.transport.status = 1 | 2 | 8),
        in_flight("requests in flight before the driver set DRIVER_OK")
    );
    assert_eq!(
        refused(|s| s.in_flight[1].head = 16),
        in_flight("head outside the queue")
    );
    assert_eq!(
        refused(|s| s.in_flight[1].head = s.in_flight[0].head),
        in_flight("two requests share a head or a tag")
    );
    assert_eq!(
        refused(|s| s.in_flight[0].tag = s.next_tag),
        in_flight("tag not below the next tag")
    );
    assert_eq!(
        refused(|s| s.in_flight[0].sector = 63),
        in_flight("data length or sector range not valid for its kind")
    );
    assert_eq!(
        refused(|s| s.in_flight[0].data[0].len = 0),
        in_flight("an empty or wrapping data range")
    );
    assert_eq!(
        refused(|s| s.in_flight[0].data[0].gpa = u64::MAX),
        in_flight("an empty or wrapping data range")
    );
}

#[test]
fn decoding_refuses_bad_bytes() {
    let (src, _, _) = source_mid_request();
    let good = src.dev.save().encode();
    assert_eq!(
        BlkState::decode(&good).unwrap(),
        src.dev.save().encode_roundtrip()
    );
    for len in 0..good.len() {
        assert!(
            BlkState::decode(&good[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        BlkState::decode(&long),
        Err(RestoreError::Decode(_))
    ));
    let mut magic = good.clone();
    magic[0] = b'X';
    assert_eq!(BlkState::decode(&magic), Err(RestoreError::BadMagic));
    let mut version = good.clone();
    version[4] = 2;
    assert_eq!(
        BlkState::decode(&version),
        Err(RestoreError::UnsupportedVersion(2))
    );
    // needs_reset is a boolean byte: offset 4+2+8+4+8 + 1+4+4+8+4+4+4 = 55.
    let mut flag = good.clone();
    assert_eq!(flag[55], 0);
    flag[55] = 2;
    assert!(matches!(
        BlkState::decode(&flag),
        Err(RestoreError::Decode(_))
    ));
    let mut ds = src.dev.device_state("vda");
    ds.version = 2;
    let mut dst = destination_for(&src);
    assert_eq!(
        dst.dev.restore_device_state(&ds),
        Err(RestoreError::UnsupportedVersion(2))
    );
}

impl BlkState {
    /// The state as decoding its own encoding yields it (`submitted` is not encoded).
    fn encode_roundtrip(mut self) -> Self {
        for r in &mut self.in_flight {
            r.submitted = false;
        }
        self
    }
}

#[test]
fn a_full_queue_of_maximal_requests_fits_one_device_state_message() {
    use crate::vm::virtio_blk::config::{QUEUE_SIZE_MAX, SEG_MAX};
    use crate::vm::virtio_blk::in_flight::{InFlight, RequestKind};
    use crate::vm::virtio_blk::request::GuestRange;
    use migration_proto::message::MAX_DEVICE_STATE_LEN;

    let mut d = Driver::new(RamDisk::from_image(patterned_image(1 << 14), 512, false).unwrap());
    d.init(all_features(), QUEUE_SIZE_MAX);
    let mut state = d.dev.save();
    state.transport.queues[0].last_avail_idx = QUEUE_SIZE_MAX;
    state.in_flight = (0..QUEUE_SIZE_MAX)
        .map(|head| InFlight {
            tag: u64::from(head),
            head,
            kind: RequestKind::Read,
            sector: 0,
            data: (0..u64::from(SEG_MAX))
                .map(|i| GuestRange {
                    gpa: BUFFERS + 512 * i,
                    len: 512,
                })
                .collect(),
            status_gpa: BUFFERS,
            submitted: false,
        })
        .collect();
    state.next_tag = u64::from(QUEUE_SIZE_MAX);
    let bytes = state.encode();
    assert!(bytes.len() <= MAX_DEVICE_STATE_LEN, "{} bytes", bytes.len());
    d.dev.restore(BlkState::decode(&bytes).unwrap()).unwrap();
    // One range more than seg_max is refused.
    state.in_flight[0].data.push(GuestRange {
        gpa: BUFFERS,
        len: 512,
    });
    assert!(BlkState::decode(&state.encode()).is_err());
}

#[test]
fn restored_requests_reach_the_backend_before_new_ones() {
    let (src, _, _) = source_mid_request();
    let mut dst = destination_for(&src);
    dst.dev.restore(src.dev.save()).unwrap();
    let restored: Vec<u64> = dst.dev.device().in_flight().iter().map(|r| r.tag).collect();
    dst.submit(request_type::FLUSH, 0, &[], 0, 1);
    dst.notify();
    let order: Vec<u64> = dst
        .dev
        .device()
        .backend()
        .held
        .iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(order.len(), 3);
    assert_eq!(order[..2], restored[..]);
    assert_eq!(
        order[2],
        src.dev.device().next_tag(),
        "new tags continue the source's"
    );
    dst.dev.device_mut().backend_mut().release();
    dst.dev.poll(&mut dst.mem);
    assert_eq!(dst.dev.device().in_flight().len(), 0);
    assert_eq!(dst.dev.registers().queues[0].in_flight(), 0);
}
