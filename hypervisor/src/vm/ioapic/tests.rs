use alloc::vec::Vec;

use proptest::prelude::*;

use super::state::IoApicState;
use super::*;

fn program(io: &mut IoApic, pin: u8, low: u32, dest: u8) -> Vec<InterruptMessage> {
    let mut out = Vec::new();
    io.mmio_write(mmio::IOREGSEL, u32::from(0x10 + 2 * pin + 1), &mut |m| {
        out.push(m)
    });
    io.mmio_write(mmio::IOWIN, u32::from(dest) << 24, &mut |m| out.push(m));
    io.mmio_write(mmio::IOREGSEL, u32::from(0x10 + 2 * pin), &mut |m| {
        out.push(m)
    });
    io.mmio_write(mmio::IOWIN, low, &mut |m| out.push(m));
    out
}

fn drive(io: &mut IoApic, pin: usize, level: bool) -> Vec<InterruptMessage> {
    let mut out = Vec::new();
    io.set_irq(pin, level, &mut |m| out.push(m));
    out
}

fn eoi(io: &mut IoApic, vector: u8) -> Vec<InterruptMessage> {
    let mut out = Vec::new();
    io.eoi(vector, &mut |m| out.push(m));
    out
}

#[test]
fn identification_registers() {
    let mut io = IoApic::new(2);
    io.mmio_write(mmio::IOREGSEL, 1, &mut |_| {});
    assert_eq!(io.mmio_read(mmio::IOWIN), 0x0017_0011);
    io.mmio_write(mmio::IOREGSEL, 0, &mut |_| {});
    assert_eq!(io.mmio_read(mmio::IOWIN), 2 << 24);
    io.mmio_write(mmio::IOWIN, 0xff00_0000, &mut |_| {});
    assert_eq!(io.mmio_read(mmio::IOWIN), 0x0f00_0000);
    io.mmio_write(mmio::IOREGSEL, 0x10, &mut |_| {});
    assert_eq!(io.mmio_read(mmio::IOWIN), 1 << 16, "masked at reset");
    assert_eq!(io.mmio_read(mmio::IOREGSEL), 0x10);
}

#[test]
fn edge_entry_delivers_on_rising_edges_only() {
    let mut io = IoApic::default();
    program(&mut io, 2, 0x30, 1);
    let out = drive(&mut io, 2, true);
    assert_eq!(
        out,
        [InterruptMessage {
            vector: 0x30,
            destination: 1,
            destination_mode: DestinationMode::Physical,
            delivery_mode: DeliveryMode::Fixed,
            trigger: TriggerMode::Edge,
        }]
    );
    assert!(drive(&mut io, 2, true).is_empty(), "no edge while held");
    drive(&mut io, 2, false);
    assert_eq!(drive(&mut io, 2, true).len(), 1);
}

#[test]
fn masked_edge_is_lost() {
    let mut io = IoApic::default();
    program(&mut io, 4, 0x1_0034, 0);
    assert!(drive(&mut io, 4, true).is_empty());
    assert!(
        program(&mut io, 4, 0x34, 0).is_empty(),
        "edge not replayed on unmask"
    );
}

#[test]
fn level_remote_irr_held_until_eoi() {
    let mut io = IoApic::default();
    program(&mut io, 9, 0x8000 | 0x2000 | 0x49, 0);
    let out = drive(&mut io, 9, true);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].trigger, TriggerMode::Level);
    assert_ne!(io.entry(9).unwrap() & (1 << 14), 0, "remote IRR set");
    assert!(drive(&mut io, 9, true).is_empty(), "held by remote IRR");
    assert!(eoi(&mut io, 0x48).is_empty(), "other vector");
    assert_eq!(
        eoi(&mut io, 0x49).len(),
        1,
        "still asserted: delivered again"
    );
    drive(&mut io, 9, false);
    assert!(eoi(&mut io, 0x49).is_empty());
    assert_eq!(io.entry(9).unwrap() & (1 << 14), 0);
}

#[test]
fn masked_level_is_delivered_on_unmask() {
    let mut io = IoApic::default();
    program(&mut io, 10, 0x1_8050, 0);
    assert!(drive(&mut io, 10, true).is_empty());
    assert_eq!(program(&mut io, 10, 0x8050, 0).len(), 1);
}

#[test]
fn restore_rejects_invalid_states() {
    let mut io = IoApic::default();
    program(&mut io, 0, 0x30, 0);
    let good = io.save().encode();
    let restore = |b: &[u8]| IoApicState::decode(b).and_then(|s| IoApic::restore(&s));
    assert_eq!(restore(&good).unwrap(), io);
    let mut bad = good.clone();
    bad[6] = 0x10;
    assert!(restore(&bad).is_err(), "ID above 15");
    let mut bad = good.clone();
    bad[8 + 3] = 0x01;
    assert!(restore(&bad).is_err(), "pin 24 asserted");
    let mut bad = good.clone();
    bad[12 + 1] = 0x40;
    assert!(restore(&bad).is_err(), "remote IRR on an edge entry");
    assert!(restore(&good[..good.len() - 1]).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_safe_and_canonical(
        bytes in proptest::collection::vec(any::<u8>(), 0..220)
    ) {
        if let Ok(io) = IoApicState::decode(&bytes).and_then(|s| IoApic::restore(&s)) {
            prop_assert_eq!(io.save().encode(), bytes);
        }
    }

    #[test]
    fn any_sequence_round_trips(
        ops in proptest::collection::vec((0u8..4, 0u8..0x40, any::<u32>()), 0..64)
    ) {
        let mut io = IoApic::default();
        for (kind, reg, value) in ops {
            match kind {
                0 => { io.mmio_write(mmio::IOREGSEL, reg.into(), &mut |_| {}); io.mmio_write(mmio::IOWIN, value, &mut |_| {}); }
                1 => io.set_irq(usize::from(reg % 26), value & 1 == 1, &mut |_| {}),
                2 => io.eoi(value as u8, &mut |_| {}),
                _ => { io.mmio_read(u32::from(reg)); }
            }
        }
        let s = IoApicState::decode(&io.save().encode()).expect("own encoding decodes");
        prop_assert_eq!(IoApic::restore(&s).expect("reachable state restores"), io);
    }
}
