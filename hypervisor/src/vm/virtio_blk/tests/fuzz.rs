//! Property tests: whatever a guest writes into its descriptor tables and rings, whatever
//! it writes to the registers, and whatever a peer sends as saved state, the device never
//! panics and its bookkeeping stays consistent.

use proptest::prelude::*;

use super::driver::*;
use crate::vm::virtio::device::VirtioDevice;
use crate::vm::virtio::guest_memory::GuestMemory;
use crate::vm::virtio::mmio::reg;
use crate::vm::virtio_blk::BlkState;

/// One descriptor: address near RAM, any length up to 2 KiB, any flags, any next.
fn descriptor() -> impl Strategy<Value = (u64, u32, u16, u16)> {
    (
        prop_oneof![0u64..(RAM as u64 + 0x1000), any::<u64>()],
        prop_oneof![0u32..2048, any::<u32>()],
        0u16..8,
        0u16..20,
    )
}

/// Where the device's books must agree with the queue's indices.
fn check_consistent<B: crate::vm::virtio_blk::BlockBackend>(d: &Driver<B>) {
    if !d.broken() {
        let q = &d.dev.registers().queues[0];
        assert_eq!(usize::from(q.in_flight()), d.dev.device().in_flight().len());
        assert!(q.in_flight() <= q.size);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_descriptor_tables_never_panic(
        size_log in 0u32..5,
        descs in proptest::collection::vec(descriptor(), 16),
        heads in proptest::collection::vec(0u16..20, 1..8),
        avail_jump in prop_oneof![Just(None), any::<u16>().prop_map(Some)],
        headers in proptest::collection::vec((0u32..16, 0u64..80), 16),
        features in prop_oneof![Just(all_features()), Just(MINIMAL_FEATURES)],
        held in any::<bool>(),
    ) {
        let size = 1u16 << size_log;
        let mut d = Driver::new(HeldDisk::new(ram_disk()));
        d.init(features, size);
        // Request headers at the start of each 4 KiB page of the buffer area, so random
        // addresses often land on something that parses.
        for (i, (ty, sector)) in headers.iter().enumerate() {
            let at = BUFFERS + 0x1000 * i as u64;
            let mut h = [0u8; 16];
            h[..4].copy_from_slice(&ty.to_le_bytes());
            h[8..].copy_from_slice(&sector.to_le_bytes());
            d.mem.write(at, &h).unwrap();
        }
        for (i, (addr, len, flags, next)) in descs.iter().enumerate().take(usize::from(size)) {
            d.put_desc(DESC, i as u16, *addr, *len, *flags, *next);
        }
        for h in &heads {
            d.make_available(*h);
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
