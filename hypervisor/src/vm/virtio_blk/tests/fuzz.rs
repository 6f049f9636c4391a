//! Property tests: whatever a guest writes into its descriptor tables and rings, whatever
//! it writes to the registers, and whatever a peer sends as saved state, the device never
//! panics and its bookkeeping stays consistent.

use proptest::prelude::*;

use super::driver::*;
use crate::vm::virtio::device::VirtioDevice;
use crate::vm::virtio::guest_memory::GuestMemory;
use crate::vm::virtio::mmio::reg;
use crate::vm::virtio_blk::BlkState;

/// A change to one field of one descriptor: (index, field, raw value).
fn mutation() -> impl Strategy<Value = (u16, u8, u64)> {
    (0u16..16, 0u8..4, any::<u64>())
}

fn mutate<B: crate::vm::virtio_blk::BlockBackend>(
    d: &mut Driver<B>,
    (index, field, value): (u16, u8, u64),
) {
    let at = DESC + 16 * u64::from(index);
    let mut raw = [0u8; 16];
    d.mem.read(at, &mut raw).unwrap();
    match field {
        0 => {
            let addr = if value & 1 == 0 {
                value % (RAM as u64 + 0x1000)
            } else {
                value
            };
            raw[0..8].copy_from_slice(&addr.to_le_bytes());
        }
        1 => raw[8..12].copy_from_slice(&((value % 4096) as u32).to_le_bytes()),
        2 => raw[12..14].copy_from_slice(&((value % 8) as u16).to_le_bytes()),
        _ => raw[14..16].copy_from_slice(&((value % 20) as u16).to_le_bytes()),
    }
    d.mem.write(at, &raw).unwrap();
}

/// Where the device's books must agree with the queue's indices.
fn check_consistent<B: crate::vm::virtio_blk::BlockBackend>(d: &Driver<B>) {
    if !d.broken() {
        let q = &d.dev.registers().queues[0];
        assert_eq!(usize::from(q.in_flight()), d.dev.device().in_flight().len());
        assert!(q.in_flight() <= q.size);
    }
}

/// One discard segment for `sectors` sectors from `sector`.
fn discard(sector: u64, sectors: usize) -> alloc::vec::Vec<u8> {
    let mut s = alloc::vec![0u8; 16];
    s[..8].copy_from_slice(&sector.to_le_bytes());
    s[8..12].copy_from_slice(&(sectors as u32).to_le_bytes());
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Well-formed requests of every type, some descriptors then corrupted at random: the
    /// device either serves every request or breaks, and never panics.
    #[test]
    fn corrupted_descriptor_tables_never_panic(
        requests in proptest::collection::vec(
            (prop_oneof![Just(0u32), Just(1), Just(4), Just(8), Just(11), any::<u32>()],
             0u64..70, 0usize..3, 1usize..3),
            1..5,
        ),
        mutations in proptest::collection::vec(mutation(), 0..3),
        avail_jump in prop_oneof![4 => Just(None), 1 => any::<u16>().prop_map(Some)],
        held in any::<bool>(),
    ) {
        let mut d = Driver::new(HeldDisk::new(ram_disk()));
        d.init_default();
        for (ty, sector, sectors, pieces) in &requests {
            let len = sectors * 512;
            let (out, in_len) = match *ty {
                1 => (alloc::vec![0x5a; len], 0),
                11 => (discard(*sector, *sectors), 0),
                0 | 8 => (alloc::vec::Vec::new(), len.max(20)),
                _ => (alloc::vec::Vec::new(), 0),
            };
            d.submit(*ty, *sector, &out, in_len, *pieces);
        }
        for m in &mutations {
            mutate(&mut d, *m);
        }
        if let Some(idx) = avail_jump {
            d.mem.write(AVAIL + 2, &idx.to_le_bytes()).unwrap();
        }
        d.notify();
        check_consistent(&d);
        if !held {
            d.dev.device_mut().backend_mut().release();
        }
        d.dev.poll(&mut d.mem);
        check_consistent(&d);
        d.dev.device_mut().backend_mut().release();
        d.dev.poll(&mut d.mem);
        check_consistent(&d);
        if !d.broken() {
            prop_assert_eq!(d.dev.device().in_flight().len(), 0);
            if mutations.is_empty() && avail_jump.is_none() {
                prop_assert_eq!(usize::from(d.mem.read_u16(USED + 2).unwrap()), requests.len());
            }
        } else {
            prop_assert!(!mutations.is_empty() || avail_jump.is_some(), "well-formed requests broke the device");
        }
    }

    #[test]
    fn random_register_accesses_never_panic(
        ops in proptest::collection::vec(
            (
                prop_oneof![(0u64..0x80).prop_map(|o| o * 4), 0u64..0x400, any::<u64>()],
                prop_oneof![Just(4u8), Just(1), Just(2), Just(8), any::<u8>()],
                prop_oneof![0u32..16, Just(0x1000), Just(0x3000), Just(0x4000), any::<u32>()],
                any::<bool>(),
            ),
            0..64,
        ),
        ram_noise in proptest::collection::vec((0usize..0x8000, any::<u8>()), 0..64),
    ) {
        let mut d = Driver::new(ram_disk());
        for (at, v) in ram_noise {
            d.mem.bytes[at] = v;
        }
        for (offset, size, value, is_read) in ops {
            if is_read {
                let _ = d.dev.read(offset, size);
            } else {
                d.dev.write(&mut d.mem, offset, size, value);
            }
            d.dev.poll(&mut d.mem);
            let r = d.dev.registers();
            prop_assert!(r.queues.iter().all(|q| !q.ready || q.validate(128).is_ok()));
            prop_assert_eq!(r.queues.len(), 1);
            // What the device holds is always something a restore would accept.
            let state = d.dev.save();
            prop_assert!(d.dev.check_registers(&state.transport).is_ok());
        }
        let _ = d.read(reg::STATUS);
    }

    #[test]
    fn random_state_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut d = Driver::new(ram_disk());
        if let Ok(state) = BlkState::decode(&bytes) {
            let _ = d.dev.restore(state);
            d.dev.poll(&mut d.mem);
        }
    }

    #[test]
    fn corrupted_saved_states_are_refused_or_safe(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut src = Driver::new(HeldDisk::new(ram_disk()));
        src.init_default();
        src.submit(crate::vm::virtio_blk::request::request_type::OUT, 3, &[7; 1024], 0, 2);
        src.submit(crate::vm::virtio_blk::request::request_type::IN, 9, &[], 512, 1);
        src.notify();
        let mut bytes = src.dev.save().encode();
        for (at, v) in flips {
            let at = at % bytes.len();
            bytes[at] = v;
        }
        let mut dst = Driver::new(HeldDisk::new(ram_disk()));
        dst.mem = src.mem.clone();
        dst.size = src.size;
        if let Ok(state) = BlkState::decode(&bytes)
            && dst.dev.restore(state).is_ok()
        {
            // Accepted: it must be a state the device can run from without panicking.
            dst.dev.poll(&mut dst.mem);
            dst.dev.device_mut().backend_mut().release();
            dst.dev.poll(&mut dst.mem);
            dst.notify();
            check_consistent(&dst);
            let again = dst.dev.save();
            prop_assert!(dst.dev.check_registers(&again.transport).is_ok());
            prop_assert_eq!(dst.dev.device().device_id(), 2);
        }
    }
}
