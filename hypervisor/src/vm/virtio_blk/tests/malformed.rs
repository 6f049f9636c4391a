//! Every malformed queue or chain a guest can craft: each gives its own error, the device
//! enters DEVICE_NEEDS_RESET (with a configuration-change interrupt), stops touching the
//! queue, and works again after a reset.

use alloc::string::ToString;

use super::driver::*;
use crate::vm::virtio::device::interrupt;
use crate::vm::virtio::guest_memory::{GuestMemory, GuestMemoryError};
use crate::vm::virtio::mmio::reg;
use crate::vm::virtio::queue_error::QueueError;
use crate::vm::virtio_blk::BlkError;
use crate::vm::virtio_blk::request::{RequestError, request_type, status_byte};

const NEXT: u16 = 1;
const INDIRECT: u16 = 4;

/// The device is broken for `expected`, ignores the queue, and recovers after a reset.
fn assert_broken<B: crate::vm::virtio_blk::BlockBackend>(
    d: &mut Driver<B>,
    expected: &dyn core::fmt::Display,
) {
    assert!(d.broken(), "DEVICE_NEEDS_RESET not set");
    assert_eq!(d.dev.broken_reason(), Some(expected.to_string().as_str()));
    assert!(d.read(reg::INTERRUPT_STATUS) & interrupt::CONFIG_CHANGE != 0);
    let used = d.mem.read_u16(USED + 2).unwrap();
    d.submit(request_type::FLUSH, 0, &[], 0, 1);
    d.notify();
    d.dev.poll(&mut d.mem);
    assert_eq!(
        d.mem.read_u16(USED + 2).unwrap(),
        used,
        "a broken device used a buffer"
    );
    d.forget_rings();
    d.init_default();
    assert!(!d.broken());
    assert_eq!(d.dev.broken_reason(), None);
    assert_eq!(
        d.read_sectors(1, 512),
        (status_byte::OK, patterned_image(64)[512..1024].to_vec())
    );
}

fn driver() -> Driver<crate::vm::virtio_blk::RamDisk> {
    let mut d = Driver::new(ram_disk());
    d.init_default();
    d
}

fn queue(e: QueueError) -> BlkError {
    BlkError::Queue(e)
}

#[test]
fn descriptor_loop() {
    let mut d = driver();
    let h = d.header(request_type::IN, 0);
    d.put_desc(DESC, 0, h, 16, NEXT, 1);
    d.put_desc(DESC, 1, h, 16, NEXT, 0);
    d.make_available(0);
    d.notify();
    assert_broken(&mut d, &queue(QueueError::ChainLoop { head: 0, limit: 16 }));
}

#[test]
fn self_loop_in_an_indirect_table() {
    let mut d = driver();
    let h = d.header(request_type::IN, 0);
    let table = d.alloc(32);
    d.put_desc(table, 0, h, 16, NEXT, 1);
    d.put_desc(table, 1, h, 16, NEXT, 1);
    d.put_desc(DESC, 0, table, 32, INDIRECT, 0);
    d.make_available(0);
    d.notify();
    assert_broken(&mut d, &queue(QueueError::ChainLoop { head: 0, limit: 2 }));
}

#[test]
fn buffer_outside_ram() {
    let mut d = driver();
    let h = d.header(request_type::IN, 0);
    let st = d.alloc(1);
    let far = RAM as u64 - 256;
    let head = d.chain(&[(h, 16, false), (far, 512, true), (st, 1, true)]);
    d.make_available(head);
    d.notify();
    let access = GuestMemoryError { gpa: far, len: 512 };
    assert_broken(
        &mut d,
        &queue(QueueError::OutsideRam {
            what: "buffer",
            access,
        }),
    );
}

#[test]
fn rings_outside_ram() {
    let mut d = driver();
    d.write(reg::STATUS, 0);
    let f = all_features();
    // Set up by hand with the available ring past the end of RAM.
    d.init(f, 16);
    d.write(reg::STATUS, 0);
    d.write(reg::STATUS, 1);
    d.write(reg::STATUS, 3);
    d.write(reg::DRIVER_FEATURES_SEL, 1);
    d.write(reg::DRIVER_FEATURES, 1);
    d.write(reg::STATUS, 11);
    d.setup_queue(16, DESC, RAM as u64 + 0x1000, USED);
    d.write(reg::STATUS, 15);
    d.notify();
    let access = GuestMemoryError {
        gpa: RAM as u64 + 0x1002,
        len: 2,
    };
    assert_broken(
        &mut d,
        &queue(QueueError::OutsideRam {
            what: "available ring index",
            access,
        }),
    );
}

#[test]
fn zero_length_descriptor() {
    let mut d = driver();
    let h = d.header(request_type::IN, 0);
    let st = d.alloc(1);
    let head = d.chain(&[(h, 16, false), (st, 0, true), (st, 1, true)]);
    d.make_available(head);
    d.notify();
    assert_broken(&mut d, &queue(QueueError::ZeroLength { index: head + 1 }));
}

#[test]
fn address_overflow() {
    let mut d = driver();
    let h = d.header(request_type::IN, 0);
    let head = d.chain(&[(h, 16, false), (u64::MAX - 4, 16, true)]);
    d.make_available(head);
    d.notify();
    assert_broken(
        &mut d,
        &queue(QueueError::AddressOverflow { index: head + 1 }),
    );
}

#[test]
fn writable_header() {
    let mut d = driver();
    let h = d.header(request_type::IN, 0);
    let st = d.alloc(1);
    let head = d.chain(&[(h, 16, true), (st, 1, true)]);
    d.make_available(head);
    d.notify();
    assert_broken(
        &mut d,
        &BlkError::Request(RequestError::HeaderNotReadable { head }),
    );
}

#[test]
fn header_too_short() {
    let mut d = driver();
    let h = d.header(request_type::IN, 0);
    let st = d.alloc(1);
    let head = d.chain(&[(h, 8, false), (st, 1, true)]);
    d.make_available(head);
    d.notify();
    let e = RequestError::HeaderTooShort { head, readable: 8 };
    assert_broken(&mut d, &BlkError::Request(e));
}

#[test]
fn read_only_data_buffer_for_a_read() {
    let mut d = driver();
    let h = d.header(request_type::IN, 0);
    let buf = d.alloc(512);
    let st = d.alloc(1);
    let head = d.chain(&[(h, 16, false), (buf, 512, false), (st, 1, true)]);
    d.make_available(head);
    d.notify();
    assert_broken(
        &mut d,
        &BlkError::Request(RequestError::DataNotWritable { head }),
    );
    assert_eq!(
        d.dev.device().backend().contents(),
        &patterned_image(64)[..]
    );
}

#[test]
fn writable_data_buffer_for_a_write() {
    let mut d = driver();
    let h = d.header(request_type::OUT, 0);
    let buf = d.alloc(512);
    let st = d.alloc(1);
    let head = d.chain(&[(h, 16, false), (buf, 512, true), (st, 1, true)]);
    d.make_available(head);
    d.notify();
    assert_broken(
        &mut d,
        &BlkError::Request(RequestError::DataNotReadable { head }),
    );
    assert_eq!(
        d.dev.device().backend().contents(),
        &patterned_image(64)[..]
    );
}

#[test]
fn status_buffer_missing() {
    let mut d = driver();
    let h = d.header(request_type::OUT, 0);
    let buf = d.alloc(512);
    let head = d.chain(&[(h, 16, false), (buf, 512, false)]);
    d.make_available(head);
    d.notify();
    assert_broken(
        &mut d,
        &BlkError::Request(RequestError::StatusMissing { head }),
    );
    assert_eq!(
        d.dev.device().backend().contents(),
        &patterned_image(64)[..]
    );
}

#[test]
fn readable_after_writable() {
    let mut d = driver();
    let h = d.header(request_type::IN, 0);
    let st = d.alloc(1);
    let head = d.chain(&[(h, 16, false), (st, 1, true), (h, 16, false)]);
    d.make_available(head);
    d.notify();
    assert_broken(
        &mut d,
        &queue(QueueError::ReadableAfterWritable { index: head + 2 }),
    );
}

#[test]
fn queue_size_not_a_power_of_two_zero_or_too_big() {
    for (size, expected_size) in [(6u32, 6u16), (0, 0), (256, 256), (0x10004, 0)] {
        let mut d = Driver::new(ram_disk());
        d.write(reg::STATUS, 3);
        d.write(reg::DRIVER_FEATURES_SEL, 1);
        d.write(reg::DRIVER_FEATURES, 1);
        d.write(reg::STATUS, 11);
        d.write(reg::QUEUE_NUM, size);
        d.write(reg::QUEUE_READY, 1);
        assert_eq!(d.read(reg::QUEUE_READY), 0, "size {size}");
        assert!(d.broken());
        let e = QueueError::BadQueueSize {
            size: expected_size,
            max: 128,
        };
        assert_eq!(d.dev.broken_reason(), Some(e.to_string().as_str()));
        // Not DRIVER_OK yet: no configuration interrupt (2.1.2 asks for one only after).
        assert_eq!(d.read(reg::INTERRUPT_STATUS), 0);
        d.size = 16;
        d.forget_rings();
        d.init_default();
        assert!(!d.broken());
    }
}

#[test]
fn misaligned_descriptor_table() {
    let mut d = Driver::new(ram_disk());
    d.write(reg::STATUS, 3);
    d.write(reg::DRIVER_FEATURES_SEL, 1);
    d.write(reg::DRIVER_FEATURES, 1);
    d.write(reg::STATUS, 11);
    d.setup_queue(16, DESC + 8, AVAIL, USED);
    assert!(d.broken());
    let e = QueueError::Misaligned {
        what: "descriptor table",
        gpa: DESC + 8,
        align: 16,
    };
    assert_eq!(d.dev.broken_reason(), Some(e.to_string().as_str()));
}

#[test]
fn available_index_jumps_past_the_queue_size() {
    let mut d = driver();
    d.mem.write(AVAIL + 2, &17u16.to_le_bytes()).unwrap();
    d.notify();
    let e = QueueError::AvailIndexJump {
        last_seen: 0,
        avail_idx: 17,
        size: 16,
    };
    assert_broken(&mut d, &queue(e));
}

#[test]
fn available_index_moving_backwards_is_a_jump_too() {
    let mut d = driver();
    d.read_sectors(0, 512);
    d.mem.write(AVAIL + 2, &0u16.to_le_bytes()).unwrap();
    d.notify();
    let e = QueueError::AvailIndexJump {
        last_seen: 1,
        avail_idx: 0,
        size: 16,
    };
    assert_broken(&mut d, &queue(e));
}

#[test]
fn head_and_next_outside_the_table() {
    let mut d = driver();
    d.make_available(16);
    d.notify();
    assert_broken(
        &mut d,
        &queue(QueueError::IndexOutOfRange {
            index: 16,
            size: 16,
        }),
    );
    let h = d.header(request_type::IN, 0);
    d.put_desc(DESC, 0, h, 16, NEXT, 300);
    d.make_available(0);
    d.notify();
    assert_broken(
        &mut d,
        &queue(QueueError::IndexOutOfRange {
            index: 300,
            size: 16,
        }),
    );
}

#[test]
fn indirect_rule_violations() {
    let mut d = Driver::new(ram_disk());
    d.init(MINIMAL_FEATURES, 16);
    let table = d.alloc(32);
    d.put_desc(DESC, 0, table, 32, INDIRECT, 0);
    d.make_available(0);
    d.notify();
    assert_broken(
        &mut d,
        &queue(QueueError::IndirectNotNegotiated { index: 0 }),
    );

    d.put_desc(DESC, 0, table, 32, INDIRECT | NEXT, 1);
    d.make_available(0);
    d.notify();
    assert_broken(&mut d, &queue(QueueError::BadIndirect { index: 0 }));

    let inner = d.alloc(16);
    d.put_desc(table, 0, inner, 16, INDIRECT, 0);
    d.put_desc(DESC, 0, table, 32, INDIRECT, 0);
    d.make_available(0);
    d.notify();
    assert_broken(&mut d, &queue(QueueError::BadIndirect { index: 0 }));

    for len in [0u32, 24, 16 * 1025] {
        d.put_desc(DESC, 0, table, len, INDIRECT, 0);
        d.make_available(0);
        d.notify();
        assert_broken(&mut d, &queue(QueueError::BadIndirectLength { len }));
    }
}

#[test]
fn head_made_available_twice_while_in_flight() {
    let mut d = Driver::new(HeldDisk::new(ram_disk()));
    d.init_default();
    let (head, _, _) = d.submit(request_type::IN, 0, &[], 512, 1);
    d.notify();
    d.make_available(head);
    d.notify();
    assert!(d.broken());
    let e = queue(QueueError::HeadInFlight { head });
    assert_eq!(d.dev.broken_reason(), Some(e.to_string().as_str()));
    // The held read completes after the device broke: nothing is written.
    let used = d.mem.read_u16(USED + 2).unwrap();
    d.dev.device_mut().backend_mut().release();
    d.dev.poll(&mut d.mem);
    assert_eq!(d.mem.read_u16(USED + 2).unwrap(), used);
}
