//! Driver tests of MTUs above 1500 against the fake device: long-packet reception, buffer
//! sizes, frames that fill a 16 KiB buffer ring, and the limits on both sides.

use alloc::vec;
use alloc::vec::Vec;

use super::super::fake_device::{Delivery, FakeE1000};
use super::super::fake_dma::FakeDma;
use super::super::*;
use crate::net::nic::{Nic, TxError};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x57];

fn config(mtu: usize) -> E1000Config {
    E1000Config {
        rx_ring_len: 8,
        tx_ring_len: 8,
        mac_override: None,
        mtu,
    }
}

fn bring_up(mtu: usize) -> (E1000<FakeE1000, FakeDma>, FakeE1000) {
    let memory = FakeDma::new();
    let device = FakeE1000::new(MAC, memory.clone());
    let nic = E1000::new(device.clone(), memory, config(mtu)).expect("bring-up");
    (nic, device)
}

/// A broadcast frame of `len` bytes whose every byte depends on `seq` and its position.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| ((i as u32 * 7) ^ seq) as u8).collect();
    f[..6].copy_from_slice(&[0xff; 6]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

#[test]
fn jumbo_mtu_enables_long_packets_with_16_kib_buffers() {
    let (nic, device) = bring_up(9000);
    assert_eq!((nic.mtu(), nic.max_frame_len()), (9000, 9014));
    let rctl = device.peek(regs::RCTL);
    assert_ne!(rctl & regs::rctl::LPE, 0, "RCTL {rctl:#x}");
    assert_ne!(rctl & regs::rctl::BSEX, 0, "RCTL {rctl:#x}");
    assert_eq!(
        (rctl >> regs::rctl::BSIZE_SHIFT) & 0b11,
        0b01,
        "16384 bytes"
    );
    assert_ne!(rctl & regs::rctl::EN, 0);

    let (standard, device) = bring_up(1500);
    assert_eq!((standard.mtu(), standard.max_frame_len()), (1500, 1514));
    let rctl = device.peek(regs::RCTL);
    assert_eq!(
        rctl & (regs::rctl::LPE | regs::rctl::BSEX),
        0,
        "RCTL {rctl:#x}"
    );
}

#[test]
fn jumbo_frames_go_out_and_come_in_whole_around_the_ring() {
    let (mut nic, device) = bring_up(9000);
    // Three laps of the 8-entry rings, each frame a different size up to the maximum: a
    // buffer stride shorter than the frame would make neighbours overwrite each other.
    let sizes = [9014, 60, 9013, 1514, 1515, 4096, 8192, 9000];
    let mut buf = vec![0u8; 9014];
    for seq in 0..24u32 {
        let len = sizes[seq as usize % sizes.len()];
        let out = frame(seq, len);
        nic.transmit(&out).expect("transmit");
        assert_eq!(
            device.take_sent(),
            core::slice::from_ref(&out),
            "frame {seq}"
        );
        assert_eq!(device.deliver(&out), Delivery::Stored, "frame {seq}");
        let got = nic.receive(&mut buf).expect("a frame");
        assert_eq!(&buf[..got], &out[..], "frame {seq}");
        // Finding the ring empty hands the buffers back to the device.
        assert_eq!(nic.receive(&mut buf), None);
    }
    // Batches that fill the receive ring come back whole and in order too.
    let batch: Vec<Vec<u8>> = (100..107).map(|seq| frame(seq, 9014)).collect();
    for f in &batch {
        assert_eq!(device.deliver(f), Delivery::Stored);
    }
    for f in &batch {
        let got = nic.receive(&mut buf).expect("a frame");
        assert_eq!(&buf[..got], &f[..]);
    }
    assert_eq!(nic.receive(&mut buf), None);
    assert_eq!(device.with(|s| s.dma_faults), 0);
}

#[test]
fn frames_beyond_the_mtu_are_refused_on_both_sides() {
    let (mut nic, device) = bring_up(9000);
    assert_eq!(
        nic.transmit(&frame(1, 9015)),
        Err(TxError::FrameTooLarge {
            len: 9015,
            max: 9014
        })
    );
    assert!(device.take_sent().is_empty());
    // With LPE the MAC takes up to 16 KiB: a frame longer than the MTU fits the buffer but
    // not the stack's, so the driver drops and counts it; the next frame is unaffected.
    assert_eq!(device.deliver(&frame(2, 16_000)), Delivery::Stored);
    assert_eq!(device.deliver(&frame(3, 9014)), Delivery::Stored);
    let mut buf = vec![0u8; 9014];
    let got = nic.receive(&mut buf).expect("the good frame");
    assert_eq!(&buf[..got], &frame(3, 9014)[..]);
    assert_eq!(nic.counters().rx_dropped, 1);
    assert_eq!(device.deliver(&frame(4, 16_385)), Delivery::Oversize);

    // At the standard MTU the MAC discards long frames (no LPE), as QEMU's e1000 does.
    let (mut standard, device) = bring_up(1500);
    assert_eq!(device.deliver(&frame(5, 9014)), Delivery::Oversize);
    assert_eq!(standard.receive(&mut buf), None);
    assert_eq!(
        standard.transmit(&frame(6, 1515)),
        Err(TxError::FrameTooLarge {
            len: 1515,
            max: 1514
        })
    );
}

#[test]
fn an_mtu_outside_576_to_9000_is_refused() {
    for mtu in [0, 575, 9001, 16_000] {
        let memory = FakeDma::new();
        let device = FakeE1000::new(MAC, memory.clone());
        assert_eq!(
            E1000::new(device, memory, config(mtu)).err(),
            Some(E1000Error::InvalidMtu(mtu))
        );
    }
    assert_eq!(
        alloc::format!("{}", E1000Error::InvalidMtu(9001)),
        "e1000: MTU 9001 is outside 576..=9000"
    );
    for mtu in [576, 1500, 2031, 9000] {
        let (nic, _) = bring_up(mtu);
        assert_eq!(nic.mtu(), mtu);
    }
}
