//! Well-formed requests through the real transport registers.

use alloc::vec;
use alloc::vec::Vec;

use super::driver::*;
use crate::vm::virtio::device::{feature, interrupt, status};
use crate::vm::virtio::guest_memory::GuestMemory;
use crate::vm::virtio::mmio::{MAGIC, MMIO_VERSION, VENDOR_TERN, reg};
use crate::vm::virtio::split_queue::VIRTQ_AVAIL_F_NO_INTERRUPT;
use crate::vm::virtio_blk::RamDisk;
use crate::vm::virtio_blk::config::{SEG_MAX, blk_feature};
use crate::vm::virtio_blk::request::{request_type, status_byte};

#[test]
fn identifies_as_a_modern_block_device_with_its_config() {
    let d = Driver::new(ram_disk());
    assert_eq!(d.read(reg::MAGIC_VALUE), MAGIC);
    assert_eq!(d.read(reg::VERSION), MMIO_VERSION);
    assert_eq!(d.read(reg::DEVICE_ID), 2);
    assert_eq!(d.read(reg::VENDOR_ID), VENDOR_TERN);
    assert_eq!(d.read(reg::QUEUE_NUM_MAX), 128);
    assert_eq!(d.read(reg::SHM_LEN_LOW), u32::MAX);
    // Capacity: 64 sectors, as two 32-bit reads (4.2.2.2).
    assert_eq!(d.read(reg::CONFIG), 64);
    assert_eq!(d.read(reg::CONFIG + 4), 0);
    assert_eq!(d.read(reg::CONFIG + 12), SEG_MAX);
    assert_eq!(d.read(reg::CONFIG + 20), 512);
    assert_eq!(d.dev.read(reg::CONFIG + 34, 2), 1);
    assert_eq!(d.dev.read(reg::CONFIG, 1), 64);
    assert_eq!(
        d.read(reg::CONFIG + 0x1000),
        0,
        "past the config space reads 0"
    );
    let lo = u64::from(d.read(reg::DEVICE_FEATURES));
    let mut d = d;
    d.write(reg::DEVICE_FEATURES_SEL, 1);
    let hi = u64::from(d.read(reg::DEVICE_FEATURES));
    let f = lo | hi << 32;
    assert_eq!(f, all_features());
    assert!(f & feature::VERSION_1 != 0 && f & blk_feature::RO == 0);
    // A 16-bit read of a 32-bit register is not allowed (4.2.2.2): it reads 0.
    assert_eq!(d.dev.read(reg::MAGIC_VALUE, 2), 0);
}

#[test]
fn write_then_read_back_across_split_buffers() {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    let data: Vec<u8> = (0..2048).map(|i| (i * 7) as u8).collect();
    let (s, _, len) = d.run(request_type::OUT, 10, &data, 0, 3);
    assert_eq!((s, len), (status_byte::OK, 1));
    let (s, back, len) = d.run(request_type::IN, 10, &[], 2048, 5);
    assert_eq!((s, len), (status_byte::OK, 2049));
    assert_eq!(back, data);
    let disk = d.dev.device().backend().contents();
    assert_eq!(&disk[10 * 512..14 * 512], &data[..]);
    // Neighbours untouched.
    assert_eq!(disk[9 * 512], 9);
    assert_eq!(disk[14 * 512], 14);
}

#[test]
fn header_split_over_two_descriptors_is_accepted() {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    let h = d.header(request_type::IN, 3);
    let buf = d.alloc(512);
    let st = d.alloc(1);
    let head = d.chain(&[
        (h, 5, false),
        (h + 5, 11, false),
        (buf, 512, true),
        (st, 1, true),
    ]);
    d.make_available(head);
    d.notify();
    assert_eq!(d.pop_used(), Some((u32::from(head), 513)));
    let mut got = vec![0; 512];
    d.mem.read(buf, &mut got).unwrap();
    assert_eq!(got, patterned_image(64)[3 * 512..4 * 512]);
}

#[test]
fn data_and_status_in_one_writable_descriptor() {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    let h = d.header(request_type::IN, 1);
    let buf = d.alloc(513);
    let head = d.chain(&[(h, 16, false), (buf, 513, true)]);
    d.make_available(head);
    d.notify();
    assert_eq!(d.pop_used(), Some((u32::from(head), 513)));
    let mut got = vec![0; 513];
    d.mem.read(buf, &mut got).unwrap();
    assert_eq!(got[..512], patterned_image(64)[512..1024]);
    assert_eq!(got[512], status_byte::OK);
}

#[test]
fn flush_get_id_and_unknown_types() {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    assert_eq!(d.run(request_type::FLUSH, 0, &[], 0, 1).0, status_byte::OK);
    let (s, id, len) = d.run(request_type::GET_ID, 0, &[], 20, 1);
    assert_eq!((s, len), (status_byte::OK, 21));
    assert_eq!(&id[..11], b"tern-disk-0");
    assert!(id[11..].iter().all(|&b| b == 0));
    let (s, _, len) = d.run(request_type::GET_ID, 0, &[], 4, 1);
    assert_eq!(
        (s, len),
        (status_byte::OK, 5),
        "a short ID buffer gets a prefix"
    );
    assert_eq!(
        d.run(10, 0, &[], 0, 1).0,
        status_byte::UNSUPP,
        "GET_LIFETIME"
    );
    assert_eq!(
        d.run(13, 0, &[], 0, 1).0,
        status_byte::UNSUPP,
        "WRITE_ZEROES"
    );
    assert_eq!(d.run(0xdead, 0, &[], 0, 1).0, status_byte::UNSUPP);
    assert!(!d.broken());
}

#[test]
fn bad_sectors_and_lengths_fail_the_request_not_the_device() {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    assert_eq!(d.read_sectors(63, 512).0, status_byte::OK, "last sector");
    assert_eq!(
        d.read_sectors(63, 1024).0,
        status_byte::IOERR,
        "past the end"
    );
    assert_eq!(d.read_sectors(64, 512).0, status_byte::IOERR);
    assert_eq!(
        d.read_sectors(u64::MAX, 512).0,
        status_byte::IOERR,
        "overflow"
    );
    assert_eq!(
        d.read_sectors(0, 100).0,
        status_byte::IOERR,
        "not whole sectors"
    );
    assert_eq!(d.write_sectors(0, &[1; 100]), status_byte::IOERR);
    assert_eq!(d.write_sectors(64, &[1; 512]), status_byte::IOERR);
    assert_eq!(
        d.dev.device().backend().contents(),
        &patterned_image(64)[..]
    );
    assert!(!d.broken());
    assert_eq!(d.read_sectors(0, 512).0, status_byte::OK, "still serving");
}

#[test]
fn read_only_disk_offers_ro_and_refuses_writes() {
    let disk = RamDisk::from_image(patterned_image(8), 512, true).unwrap();
    let mut d = Driver::new(disk);
    let f = all_features() | blk_feature::RO;
    d.init(f, 8);
    assert_eq!(d.write_sectors(0, &[0; 512]), status_byte::IOERR);
    let mut seg = [0u8; 16];
    seg[8..12].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(
        d.run(request_type::DISCARD, 0, &seg, 0, 1).0,
        status_byte::IOERR
    );
    assert_eq!(d.read_sectors(1, 512).1, patterned_image(8)[512..1024]);
    assert_eq!(d.dev.device_mut().dirty_blocks().bitmap().count(), 0);
}

fn discard_segment(sector: u64, count: u32, flags: u32) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[0..8].copy_from_slice(&sector.to_le_bytes());
    s[8..12].copy_from_slice(&count.to_le_bytes());
    s[12..16].copy_from_slice(&flags.to_le_bytes());
    s
}

#[test]
fn discard_zeroes_ranges_and_checks_its_segments() {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    let mut segs = discard_segment(2, 2, 0).to_vec();
    segs.extend_from_slice(&discard_segment(10, 1, 0));
    assert_eq!(
        d.run(request_type::DISCARD, 0, &segs, 0, 2).0,
        status_byte::OK
    );
    let disk = d.dev.device().backend().contents();
    assert!(disk[2 * 512..4 * 512].iter().all(|&b| b == 0));
    assert!(disk[10 * 512..11 * 512].iter().all(|&b| b == 0));
    assert_eq!(disk[4 * 512], 4);
    let unmap = discard_segment(0, 1, 1);
    assert_eq!(
        d.run(request_type::DISCARD, 0, &unmap, 0, 1).0,
        status_byte::UNSUPP
    );
    let past = discard_segment(63, 2, 0);
    assert_eq!(
        d.run(request_type::DISCARD, 0, &past, 0, 1).0,
        status_byte::IOERR
    );
    let empty = discard_segment(0, 0, 0);
    assert_eq!(
        d.run(request_type::DISCARD, 0, &empty, 0, 1).0,
        status_byte::IOERR
    );
    assert_eq!(
        d.run(request_type::DISCARD, 0, &[0; 15], 0, 1).0,
        status_byte::IOERR
    );
    let many: Vec<u8> = (0..17).flat_map(|i| discard_segment(i, 1, 0)).collect();
    assert_eq!(
        d.run(request_type::DISCARD, 0, &many, 0, 1).0,
        status_byte::IOERR
    );
    assert!(!d.broken());
}

#[test]
fn discard_without_the_feature_is_unsupported() {
    let mut d = Driver::new(ram_disk());
    d.init(MINIMAL_FEATURES, 8);
    let seg = discard_segment(0, 1, 0);
    assert_eq!(
        d.run(request_type::DISCARD, 0, &seg, 0, 1).0,
        status_byte::UNSUPP
    );
    assert_eq!(
        d.dev.device().backend().contents(),
        &patterned_image(64)[..]
    );
}

#[test]
fn writes_and_discards_mark_dirty_blocks() {
    let disk = RamDisk::from_image(patterned_image(64), 4096, false).unwrap();
    let mut d = Driver::new(disk);
    d.init_default();
    assert_eq!(d.read(reg::CONFIG + 20), 4096, "blk_size");
    assert_eq!(d.read(reg::CONFIG + 44), 8, "discard alignment in sectors");
    d.read_sectors(0, 4096);
    assert_eq!(
        d.dev.device_mut().dirty_blocks().bitmap().count(),
        0,
        "reads are clean"
    );
    d.write_sectors(7, &[1; 1024]); // sectors 7-8: blocks 0 and 1
    d.run(request_type::DISCARD, 0, &discard_segment(40, 1, 0), 0, 1); // block 5
    let dirty = d.dev.device_mut().dirty_blocks().take();
    assert_eq!(dirty.iter_set().collect::<Vec<_>>(), [0, 1, 5]);
    assert_eq!(d.dev.device_mut().dirty_blocks().bitmap().count(), 0);
    d.write_sectors(63, &[1; 512]);
    assert_eq!(
        d.dev
            .device_mut()
            .dirty_blocks()
            .take()
            .iter_set()
            .collect::<Vec<_>>(),
        [7]
    );
}

#[test]
fn indirect_descriptor_tables_carry_whole_requests() {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    let h = d.header(request_type::IN, 5);
    let buf = d.alloc(1024);
    let st = d.alloc(1);
    let table = d.alloc(64);
    d.put_desc(table, 0, h, 16, 1, 1);
    d.put_desc(table, 1, buf, 512, 1 | 2, 2);
    d.put_desc(table, 2, buf + 512, 512, 1 | 2, 3);
    d.put_desc(table, 3, st, 1, 2, 0);
    let head = d.chain(&[(table, 64, false)]);
    d.put_desc(DESC, head, table, 64, 4, 0);
    d.make_available(head);
    d.notify();
    assert_eq!(d.pop_used(), Some((u32::from(head), 1025)));
    let mut got = vec![0; 1024];
    d.mem.read(buf, &mut got).unwrap();
    assert_eq!(got, patterned_image(64)[5 * 512..7 * 512]);
    assert!(!d.broken());
}

#[test]
fn many_requests_in_one_notify_and_a_full_ring() {
    let mut d = Driver::new(ram_disk());
    d.init(all_features(), 4);
    // Queue of 4 descriptors: two 2-descriptor FLUSH chains at a time fill it.
    for round in 0..5u64 {
        let mut heads = Vec::new();
        for _ in 0..2 {
            let h = d.header(request_type::FLUSH, round);
            let st = d.alloc(1);
            let head = d.chain(&[(h, 16, false), (st, 1, true)]);
            d.make_available(head);
            heads.push(u32::from(head));
        }
        d.notify();
        assert_eq!(d.pop_used().map(|u| u.0), Some(heads[0]));
        assert_eq!(d.pop_used().map(|u| u.0), Some(heads[1]));
        assert_eq!(d.pop_used(), None);
    }
}

#[test]
fn ring_indices_wrap_at_65536() {
    let mut d = Driver::new(ram_disk());
    d.init(all_features(), 2);
    let h = d.header(request_type::FLUSH, 0);
    let st = d.alloc(1);
    let head = d.chain(&[(h, 16, false), (st, 1, true)]);
    // 65536 + 3 requests: the driver's and the device's 16-bit indices both wrap.
    for _ in 0..(65536 + 3) {
        d.make_available(head);
        d.notify();
        assert_eq!(d.pop_used(), Some((u32::from(head), 1)));
    }
    assert_eq!(d.avail_idx, 3);
    assert_eq!(d.dev.registers().queues[0].next_used_idx, 3);
    assert!(!d.broken());
}

#[test]
fn interrupts_raise_acknowledge_and_respect_no_interrupt() {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    assert!(!d.dev.interrupt_level());
    d.read_sectors(0, 512);
    assert!(d.dev.interrupt_level());
    assert_eq!(d.read(reg::INTERRUPT_STATUS), interrupt::USED_BUFFER);
    d.write(reg::INTERRUPT_ACK, interrupt::USED_BUFFER);
    assert!(!d.dev.interrupt_level());
    d.mem
        .write(AVAIL, &VIRTQ_AVAIL_F_NO_INTERRUPT.to_le_bytes())
        .unwrap();
    let (s, _) = d.read_sectors(0, 512);
    assert_eq!(s, status_byte::OK);
    assert!(!d.dev.interrupt_level(), "driver asked for no interrupt");
}

#[test]
fn slow_backend_completes_at_poll_and_reset_forgets_requests() {
    let mut d = Driver::new(HeldDisk::new(ram_disk()));
    d.init_default();
    let (head, in_at, st) = d.submit(request_type::IN, 2, &[], 512, 1);
    d.notify();
    assert_eq!(d.pop_used(), None, "not complete yet");
    d.dev.poll(&mut d.mem);
    assert_eq!(d.pop_used(), None);
    assert_eq!(d.dev.device().in_flight().len(), 1);
    d.dev.device_mut().backend_mut().release();
    d.dev.poll(&mut d.mem);
    assert_eq!(d.pop_used(), Some((u32::from(head), 513)));
    let mut got = vec![0; 512];
    d.mem.read(in_at, &mut got).unwrap();
    assert_eq!(got, patterned_image(64)[1024..1536]);
    assert!(d.dev.interrupt_level());

    // A request in flight across a reset never writes guest memory afterwards.
    let (_, in_at, st2) = d.submit(request_type::IN, 3, &[], 512, 1);
    d.notify();
    let before = d.mem.clone();
    d.write(reg::STATUS, 0);
    assert_eq!(d.read(reg::STATUS), 0);
    d.dev.device_mut().backend_mut().release();
    d.forget_rings();
    d.init_default();
    d.dev.poll(&mut d.mem);
    let mut got = vec![0; 512];
    d.mem.read(in_at, &mut got).unwrap();
    assert!(got.iter().all(|&b| b == 0xee));
    assert_eq!(d.mem.read_u16(USED + 2).unwrap(), 0);
    assert_eq!(
        before.bytes[st2 as usize], d.mem.bytes[st2 as usize],
        "status byte untouched"
    );
    let _ = st;
}

#[test]
fn status_state_machine_follows_the_spec() {
    let mut d = Driver::new(ram_disk());
    // Bits out of the 3.1.1 order do not stick (found by the register property test).
    d.write(reg::STATUS, u32::from(status::DRIVER | status::FEATURES_OK));
    assert_eq!(d.read(reg::STATUS), 0);
    d.write(
        reg::STATUS,
        u32::from(status::ACKNOWLEDGE | status::FEATURES_OK),
    );
    assert_eq!(d.read(reg::STATUS), u32::from(status::ACKNOWLEDGE));
    let ack_drv = u32::from(status::ACKNOWLEDGE | status::DRIVER);
    d.write(reg::STATUS, ack_drv);
    // FEATURES_OK without VERSION_1 does not stick (3.1.1 step 6).
    d.write(reg::DRIVER_FEATURES, blk_feature::FLUSH as u32);
    d.write(reg::STATUS, ack_drv | u32::from(status::FEATURES_OK));
    assert_eq!(d.read(reg::STATUS), ack_drv);
    // A feature the device does not offer (EVENT_IDX) is refused too.
    d.write(reg::DRIVER_FEATURES, feature::EVENT_IDX as u32);
    d.write(reg::DRIVER_FEATURES_SEL, 1);
    d.write(reg::DRIVER_FEATURES, 1);
    d.write(reg::STATUS, ack_drv | u32::from(status::FEATURES_OK));
    assert_eq!(d.read(reg::STATUS), ack_drv);
    // DRIVER_OK without FEATURES_OK does not stick.
    d.write(reg::STATUS, ack_drv | u32::from(status::DRIVER_OK));
    assert_eq!(d.read(reg::STATUS), ack_drv);
    d.write(reg::DRIVER_FEATURES_SEL, 0);
    d.write(reg::DRIVER_FEATURES, 0);
    let ok = ack_drv | u32::from(status::FEATURES_OK);
    d.write(reg::STATUS, ok);
    assert_eq!(d.read(reg::STATUS), ok);
    // Features are frozen after FEATURES_OK.
    d.write(reg::DRIVER_FEATURES, blk_feature::FLUSH as u32);
    assert_eq!(d.dev.registers().driver_features, feature::VERSION_1);
    // Clearing a bit is ignored; the device-only bit cannot be written.
    d.write(reg::STATUS, u32::from(status::ACKNOWLEDGE));
    assert_eq!(d.read(reg::STATUS), ok);
    d.write(reg::STATUS, ok | u32::from(status::DEVICE_NEEDS_RESET));
    assert_eq!(d.read(reg::STATUS), ok);
    // Queue configuration; a notify before DRIVER_OK does nothing.
    d.setup_queue(8, DESC, AVAIL, USED);
    let (_, _, _) = d.submit(request_type::FLUSH, 0, &[], 0, 1);
    d.notify();
    assert_eq!(d.pop_used(), None);
    // Queue registers are frozen while the queue is ready.
    d.write(reg::QUEUE_NUM, 4);
    assert_eq!(d.dev.registers().queues[0].size, 8);
    assert_eq!(d.read(reg::QUEUE_READY), 1);
    // A queue that does not exist.
    d.write(reg::QUEUE_SEL, 1);
    assert_eq!(d.read(reg::QUEUE_NUM_MAX), 0);
    d.write(reg::QUEUE_READY, 1);
    assert_eq!(d.read(reg::QUEUE_READY), 0);
    d.write(reg::QUEUE_SEL, 0);
    d.write(reg::STATUS, ok | u32::from(status::DRIVER_OK));
    d.notify();
    assert!(
        d.pop_used().is_some(),
        "the pending request runs once DRIVER_OK is set"
    );
    // FAILED sticks; reset clears everything.
    d.write(
        reg::STATUS,
        ok | u32::from(status::DRIVER_OK | status::FAILED),
    );
    assert!(d.read(reg::STATUS) & u32::from(status::FAILED) != 0);
    d.write(reg::STATUS, 0);
    assert_eq!(d.read(reg::STATUS), 0);
    assert_eq!(d.read(reg::QUEUE_READY), 0);
    assert_eq!(d.dev.registers().driver_features, 0);
}

#[test]
fn config_space_is_read_only_and_generation_is_stable() {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    let gen0 = d.read(reg::CONFIG_GENERATION);
    d.write(reg::CONFIG, 0xffff);
    d.dev.write(&mut d.mem, reg::CONFIG + 32, 1, 1);
    assert_eq!(d.read(reg::CONFIG), 64);
    assert_eq!(
        d.dev.read(reg::CONFIG + 32, 1),
        0,
        "writeback without CONFIG_WCE"
    );
    assert_eq!(d.read(reg::CONFIG_GENERATION), gen0);
}

#[test]
fn more_data_segments_than_seg_max_fail_the_request() {
    let mut d = Driver::new(RamDisk::from_image(patterned_image(256), 512, false).unwrap());
    d.init(all_features(), 128);
    let h = d.header(request_type::IN, 0);
    let buf = d.alloc(512 * 127);
    let st = d.alloc(1);
    let entries = SEG_MAX as u16 + 3;
    let table = d.alloc(16 * usize::from(entries));
    d.put_desc(table, 0, h, 16, 1, 1);
    for i in 1..entries - 1 {
        d.put_desc(table, i, buf + 512 * u64::from(i - 1), 512, 1 | 2, i + 1);
    }
    d.put_desc(table, entries - 1, st, 1, 2, 0);
    let head = d.chain(&[(table, 16 * u32::from(entries), false)]);
    d.put_desc(DESC, head, table, 16 * u32::from(entries), 4, 0);
    d.make_available(head);
    d.notify();
    assert_eq!(d.pop_used(), Some((u32::from(head), 1)));
    assert_eq!(d.mem.bytes[st as usize], status_byte::IOERR);
    assert!(!d.broken());
    // seg_max segments exactly are served.
    let (s, data, _) = d.run(
        request_type::IN,
        0,
        &[],
        512 * SEG_MAX as usize,
        SEG_MAX as usize,
    );
    assert_eq!(s, status_byte::OK);
    assert_eq!(data, patterned_image(256)[..512 * SEG_MAX as usize]);
}
