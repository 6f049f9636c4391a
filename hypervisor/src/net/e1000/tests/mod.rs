//! Driver tests against the fake device: bring-up, ring wraparound, full rings, bad frames,
//! link loss.

mod long_frames;

use alloc::vec;
use alloc::vec::Vec;

use super::fake_device::{Delivery, FakeE1000};
use super::fake_dma::FakeDma;
use super::*;
use crate::net::nic::{Nic, NicCounters, TxError};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const SMALL: E1000Config = E1000Config {
    rx_ring_len: 8,
    tx_ring_len: 8,
    mac_override: None,
    mtu: crate::net::nic::STANDARD_MTU,
};

fn bring_up(config: E1000Config) -> (E1000<FakeE1000, FakeDma>, FakeE1000) {
    let memory = FakeDma::new();
    let device = FakeE1000::new(MAC, memory.clone());
    let nic = E1000::new(device.clone(), memory, config).expect("bring-up");
    (nic, device)
}

/// A recognisable frame: broadcast destination, our source, a sequence number, padding.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&MAC);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&seq.to_le_bytes());
    for (i, byte) in f.iter_mut().enumerate().skip(18) {
        *byte = (i as u32 ^ seq) as u8;
    }
    f
}

fn receive_all(nic: &mut impl Nic) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(len) = nic.receive(&mut buf) {
        out.push(buf[..len].to_vec());
    }
    out
}

#[test]
fn bring_up_programs_mac_rings_and_enables() {
    let (mut nic, device) = bring_up(E1000Config::default());
    assert_eq!(nic.mac(), MAC);
    assert_eq!(nic.mac_source(), MacSource::Eeprom);
    assert_eq!(device.peek(regs::RAL0), 0x1200_5452);
    assert_eq!(device.peek(regs::RAH0), 0x8000_5634);
    assert_ne!(device.peek(regs::RCTL) & regs::rctl::EN, 0);
    assert_ne!(device.peek(regs::TCTL) & regs::tctl::EN, 0);
    assert_eq!(device.peek(regs::RDLEN), 128 * 16);
    assert_eq!(device.peek(regs::RDT), 127);
    assert_eq!(
        device.peek(regs::IMS),
        0,
        "polling driver: no interrupts enabled"
    );
    assert!(nic.link_up());
    assert_eq!(nic.speed_mbps(), 1000);
    assert_eq!(nic.counters(), NicCounters::default());
}

#[test]
fn configured_mac_overrides_the_eeprom_and_must_be_unicast() {
    let mac = [0x02, 0, 0, 0, 0, 0x42];
    let config = E1000Config {
        mac_override: Some(mac),
        ..E1000Config::default()
    };
    let (nic, device) = bring_up(config);
    assert_eq!(nic.mac(), mac);
    assert_eq!(nic.mac_source(), MacSource::Config);
    assert_eq!(device.peek(regs::RAL0), 0x0000_0002);
    assert_eq!(device.peek(regs::RAH0), 0x8000_4200);

    let multicast = [0x01, 0, 0x5e, 0, 0, 1];
    let memory = FakeDma::new();
    let device = FakeE1000::new(MAC, memory.clone());
    let config = E1000Config {
        mac_override: Some(multicast),
        ..E1000Config::default()
    };
    assert_eq!(
        E1000::new(device, memory, config).err(),
        Some(E1000Error::InvalidMac(multicast))
    );
}

#[test]
fn mac_falls_back_to_receive_address_when_eerd_does_not_complete() {
    let memory = FakeDma::new();
    let device = FakeE1000::new(MAC, memory.clone());
    device.with(|s| s.eerd_works = false);
    let nic = E1000::new(device, memory, SMALL).expect("bring-up");
    assert_eq!(nic.mac(), MAC);
    assert_eq!(nic.mac_source(), MacSource::ReceiveAddress);
}

#[test]
fn bring_up_errors_are_reported() {
    let memory = FakeDma::new();
    let device = FakeE1000::new(MAC, memory.clone());
    device.with(|s| s.reset_completes = false);
    assert_eq!(
        E1000::new(device, memory, SMALL).err(),
        Some(E1000Error::ResetTimeout)
    );

    let memory = FakeDma::new();
    let device = FakeE1000::new(MAC, memory.clone());
    let bad = E1000Config {
        rx_ring_len: 12,
        ..SMALL
    };
    assert_eq!(
        E1000::new(device, memory, bad).err(),
        Some(E1000Error::InvalidRingLength(12))
    );

    let memory = FakeDma::with_budget(8192);
    let device = FakeE1000::new(MAC, memory.clone());
    assert!(matches!(
        E1000::new(device, memory, SMALL),
        Err(E1000Error::Dma(_))
    ));

    let memory = FakeDma::new();
    let device = FakeE1000::new([0xff; 6], memory.clone());
    assert_eq!(
        E1000::new(device, memory, SMALL).err(),
        Some(E1000Error::NoValidMac)
    );
}

#[test]
fn transmit_wraps_the_ring_in_order() {
    let (mut nic, device) = bring_up(SMALL);
    let frames: Vec<Vec<u8>> = (0..30).map(|i| frame(i, 60 + i as usize * 47)).collect();
    for f in &frames {
        assert!(nic.can_transmit());
        nic.transmit(f).expect("transmit");
    }
    assert_eq!(device.take_sent(), frames);
    let counters = nic.counters();
    assert_eq!(counters.tx_packets, 30);
    assert_eq!(
        counters.tx_bytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(device.with(|s| s.dma_faults), 0);
}

#[test]
fn transmit_reports_a_full_ring_and_recovers() {
    let (mut nic, device) = bring_up(SMALL);
    device.with(|s| s.tx_paused = true);
    for i in 0..7 {
        nic.transmit(&frame(i, 100))
            .expect("ring has 7 usable slots");
    }
    assert!(!nic.can_transmit());
    assert_eq!(nic.transmit(&frame(7, 100)), Err(TxError::QueueFull));
    assert_eq!(nic.tx_in_flight(), 7);
    device.resume_tx();
    assert!(nic.can_transmit());
    nic.transmit(&frame(8, 100))
        .expect("space after the device drained");
    let sent: Vec<u32> = device
        .take_sent()
        .iter()
        .map(|f| u32::from_le_bytes([f[14], f[15], f[16], f[17]]))
        .collect();
    assert_eq!(sent, [0, 1, 2, 3, 4, 5, 6, 8]);
    assert_eq!(nic.counters().tx_dropped, 1);
}

#[test]
fn transmit_rejects_bad_sizes_and_pads_short_frames() {
    let (mut nic, device) = bring_up(SMALL);
    assert_eq!(
        nic.transmit(&[0u8; 1515]),
        Err(TxError::FrameTooLarge {
            len: 1515,
            max: 1514
        })
    );
    assert_eq!(nic.transmit(&[0u8; 13]), Err(TxError::FrameTooShort(13)));
    nic.transmit(&frame(1, 42)).expect("an ARP-sized frame");
    let sent = device.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].len(), 60, "PSP pads to the Ethernet minimum");
    assert_eq!(nic.counters().tx_dropped, 2);
}

#[test]
fn receive_wraps_the_ring_and_reposts_buffers() {
    let (mut nic, device) = bring_up(SMALL);
    let mut expected = Vec::new();
    for round in 0..5 {
        for i in 0..5 {
            let f = frame(round * 10 + i, 64 + (i as usize) * 300);
            assert_eq!(device.deliver(&f), Delivery::Stored);
            expected.push(f);
        }
        assert_eq!(receive_all(&mut nic), expected);
        expected.clear();
    }
    let counters = nic.counters();
    assert_eq!(counters.rx_packets, 25);
    assert_eq!(counters.rx_dropped, 0);
    assert_eq!(device.with(|s| s.dma_faults), 0);
}

#[test]
fn a_full_receive_ring_drops_and_counts_then_recovers() {
    let (mut nic, device) = bring_up(SMALL);
    // 7 of 8 descriptors are posted.
    for i in 0..7 {
        assert_eq!(device.deliver(&frame(i, 80)), Delivery::Stored);
    }
    assert_eq!(device.deliver(&frame(7, 80)), Delivery::NoBuffer);
    assert_eq!(receive_all(&mut nic).len(), 7);
    assert_eq!(nic.counters().rx_dropped, 1, "MPC folded into rx_dropped");
    assert_eq!(device.deliver(&frame(8, 80)), Delivery::Stored);
    assert_eq!(receive_all(&mut nic), [frame(8, 80)]);
}

#[test]
fn malformed_frames_are_dropped_and_counted() {
    let (mut nic, device) = bring_up(SMALL);
    assert_eq!(
        device.deliver_errored(&frame(1, 100), rx_errors::CE),
        Delivery::Stored
    );
    assert_eq!(
        device.deliver_fragmented(&frame(2, 200), 3),
        Delivery::Stored
    );
    assert_eq!(device.deliver(&vec![0u8; 1600]), Delivery::Oversize);
    assert_eq!(device.deliver(&frame(3, 120)), Delivery::Stored);
    assert_eq!(device.deliver(&frame(4, 1000)), Delivery::Stored);

    let mut small = [0u8; 200];
    // Frame 3 fits; errored and fragmented frames before it are skipped.
    assert_eq!(nic.receive(&mut small), Some(120));
    assert_eq!(&small[..120], &frame(3, 120)[..]);
    // Frame 4 does not fit the caller's buffer: dropped, not truncated.
    assert_eq!(nic.receive(&mut small), None);
    let counters = nic.counters();
    assert_eq!(counters.rx_packets, 1);
    assert_eq!(counters.rx_errors, 1);
    // errored + fragmented + oversize (ROC) + too large for the caller.
    assert_eq!(counters.rx_dropped, 4);
    // Everything was recycled: a full ring's worth fits again.
    for i in 0..7 {
        assert_eq!(device.deliver(&frame(10 + i, 64)), Delivery::Stored);
    }
    assert_eq!(receive_all(&mut nic).len(), 7);
}

#[test]
fn link_down_refuses_transmit_and_recovers() {
    let (mut nic, device) = bring_up(SMALL);
    device.with(|s| s.link_up = false);
    assert!(!nic.link_up());
    assert!(!nic.can_transmit());
    assert_eq!(nic.transmit(&frame(1, 64)), Err(TxError::LinkDown));
    assert_eq!(device.deliver(&frame(2, 64)), Delivery::NotReceiving);
    device.with(|s| s.link_up = true);
    // `can_transmit` uses the link state `link_up` last sampled (the stack samples it).
    assert!(!nic.can_transmit());
    assert!(nic.link_up());
    assert!(nic.can_transmit());
    nic.transmit(&frame(3, 64)).expect("link back");
    assert_eq!(device.take_sent(), [frame(3, 64)]);
}

mod model {
    //! Random interleavings of device and driver actions against a simple model: every
    //! frame the device stored comes out of the driver once, in order; every frame the
    //! driver accepted goes on the wire once, in order; counters agree.

    use super::*;
    use alloc::collections::VecDeque;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Action {
        Deliver(u16),
        Receive,
        Transmit(u16),
        PauseTx,
        ResumeTx,
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            3 => (60u16..1515).prop_map(Action::Deliver),
            3 => Just(Action::Receive),
            3 => (14u16..1515).prop_map(Action::Transmit),
            1 => Just(Action::PauseTx),
            1 => Just(Action::ResumeTx),
        ]
    }

    proptest! {
        #[test]
        fn rings_never_lose_reorder_or_duplicate(actions in proptest::collection::vec(action(), 1..300)) {
            let (mut nic, device) = bring_up(SMALL);
            let mut seq = 0u32;
            let mut expected_rx = VecDeque::new();
            let mut expected_tx = Vec::new();
            let mut wire = Vec::new();
            let mut no_buffer = 0u64;
            let mut queue_full = 0u64;
            let mut buf = [0u8; 2048];
            for action in actions {
                match action {
                    Action::Deliver(len) => {
                        seq += 1;
                        let f = frame(seq, usize::from(len));
                        match device.deliver(&f) {
                            Delivery::Stored => expected_rx.push_back(f),
                            Delivery::NoBuffer => no_buffer += 1,
                            other => prop_assert!(false, "unexpected {other:?}"),
                        }
                    }
                    Action::Receive => match nic.receive(&mut buf) {
                        Some(len) => {
                            let want = expected_rx.pop_front();
                            prop_assert_eq!(Some(&buf[..len]), want.as_deref());
                        }
                        None => prop_assert!(expected_rx.is_empty()),
                    },
                    Action::Transmit(len) => {
                        seq += 1;
                        let f = frame(seq, usize::from(len).max(18));
                        match nic.transmit(&f) {
                            Ok(()) => {
                                let mut on_wire = f.clone();
                                on_wire.resize(on_wire.len().max(60), 0);
                                expected_tx.push(on_wire);
                            }
                            Err(TxError::QueueFull) => queue_full += 1,
                            Err(other) => prop_assert!(false, "unexpected {other:?}"),
                        }
                    }
                    Action::PauseTx => device.with(|s| s.tx_paused = true),
                    Action::ResumeTx => device.resume_tx(),
                }
                wire.extend(device.take_sent());
            }
            device.resume_tx();
            wire.extend(device.take_sent());
            while let Some(len) = nic.receive(&mut buf) {
                let want = expected_rx.pop_front();
                prop_assert_eq!(Some(&buf[..len]), want.as_deref());
            }
            prop_assert!(expected_rx.is_empty());
            prop_assert_eq!(wire, expected_tx);
            let counters = nic.counters();
            prop_assert_eq!(counters.rx_dropped, no_buffer);
            prop_assert_eq!(counters.tx_dropped, queue_full);
            prop_assert_eq!(device.with(|s| s.dma_faults), 0);
        }
    }
}
