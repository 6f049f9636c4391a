use proptest::prelude::*;

use super::state::DualPicState;
use super::*;

/// The sequence Linux's `init_8259A` writes (vectors 0x30 and 0x38, cascade on IR2, 8086
/// mode, normal EOI), then all lines unmasked.
fn linux_init() -> DualPic {
    let mut p = DualPic::new();
    p.write(MASTER_DATA, 0xff);
    p.write(SLAVE_DATA, 0xff);
    p.write(MASTER_COMMAND, 0x11);
    p.write(MASTER_DATA, 0x30);
    p.write(MASTER_DATA, 0x04);
    p.write(MASTER_DATA, 0x01);
    p.write(SLAVE_COMMAND, 0x11);
    p.write(SLAVE_DATA, 0x38);
    p.write(SLAVE_DATA, 0x02);
    p.write(SLAVE_DATA, 0x01);
    p.write(MASTER_DATA, 0x00);
    p.write(SLAVE_DATA, 0x00);
    p
}

#[test]
fn icw_sequence_sets_vectors_and_imr() {
    let mut p = linux_init();
    assert_eq!(p.read(MASTER_DATA), 0);
    p.write(MASTER_DATA, 0xfb);
    assert_eq!(p.masks(), 0x00fb);
    p.set_irq(1, true);
    assert!(!p.interrupt_output(), "IRQ1 masked");
    p.write(MASTER_DATA, 0xf9);
    assert!(p.interrupt_output());
    assert_eq!(p.acknowledge(), 0x31);
}

#[test]
fn slave_irq8_is_delivered_through_irq2_with_slave_vector() {
    let mut p = linux_init();
    p.set_irq(8, true);
    assert!(p.interrupt_output());
    assert_eq!(p.acknowledge(), 0x38);
    assert!(!p.interrupt_output());
    p.write(SLAVE_COMMAND, 0x0b);
    assert_eq!(p.read(SLAVE_COMMAND), 0x01, "IR0 in service on the slave");
    p.write(MASTER_COMMAND, 0x0b);
    assert_eq!(p.read(MASTER_COMMAND), 0x04, "IR2 in service on the master");
    p.write(SLAVE_COMMAND, 0x20);
    p.write(MASTER_COMMAND, 0x20);
    assert_eq!(p.read(MASTER_COMMAND), 0);
}

#[test]
fn fully_nested_priority_and_eoi() {
    let mut p = linux_init();
    p.set_irq(4, true);
    assert_eq!(p.acknowledge(), 0x34);
    p.set_irq(5, true);
    assert!(!p.interrupt_output(), "IR5 below IR4 in service");
    p.set_irq(1, true);
    assert!(p.interrupt_output(), "IR1 above IR4");
    assert_eq!(p.acknowledge(), 0x31);
    p.write(MASTER_COMMAND, 0x20); // ends IR1
    assert!(!p.interrupt_output());
    p.write(MASTER_COMMAND, 0x64); // specific EOI for IR4
    assert_eq!(p.acknowledge(), 0x35);
}

#[test]
fn edge_requires_a_new_rising_edge() {
    let mut p = linux_init();
    p.set_irq(3, true);
    assert_eq!(p.acknowledge(), 0x33);
    p.write(MASTER_COMMAND, 0x20);
    p.set_irq(3, true);
    assert!(!p.interrupt_output(), "line held high: no new edge");
    p.set_irq(3, false);
    p.set_irq(3, true);
    assert!(p.interrupt_output());
}

#[test]
fn level_lines_follow_elcr() {
    let mut p = linux_init();
    p.write(ELCR_SLAVE, 0xff);
    assert_eq!(p.read(ELCR_SLAVE), 0xde, "IRQ8 and IRQ13 are edge only");
    p.write(ELCR_MASTER, 0x07);
    assert_eq!(p.read(ELCR_MASTER), 0);
    p.set_irq(9, true);
    assert_eq!(p.acknowledge(), 0x39);
    p.write(SLAVE_COMMAND, 0x20);
    p.write(MASTER_COMMAND, 0x20);
    assert!(p.interrupt_output(), "level still asserted");
    p.set_irq(9, false);
    assert!(!p.interrupt_output());
}

#[test]
fn auto_eoi_and_rotation() {
    let mut p = DualPic::new();
    p.write(MASTER_COMMAND, 0x13); // single, IC4
    p.write(MASTER_DATA, 0x08);
    p.write(MASTER_DATA, 0x03); // auto-EOI
    p.set_irq(0, true);
    assert_eq!(p.acknowledge(), 0x08);
    p.write(MASTER_COMMAND, 0x0b);
    assert_eq!(p.read(MASTER_COMMAND), 0, "auto-EOI: nothing in service");
    // Set priority: IR3 lowest, so IR4 is now highest.
    p.write(MASTER_COMMAND, 0xc3);
    p.set_irq(3, true);
    p.set_irq(4, true);
    assert_eq!(p.acknowledge(), 0x0c);
}

#[test]
fn poll_and_spurious() {
    let mut p = linux_init();
    assert_eq!(p.acknowledge(), 0x37, "no request: spurious IR7");
    p.write(MASTER_COMMAND, 0x0b);
    assert_eq!(p.read(MASTER_COMMAND), 0, "spurious IR7 not in service");
    p.set_irq(6, true);
    p.write(MASTER_COMMAND, 0x0c);
    assert_eq!(p.read(MASTER_COMMAND), 0x86);
    p.write(MASTER_COMMAND, 0x0c);
    assert_eq!(p.read(MASTER_COMMAND), 0, "poll acknowledged IR6");
}

#[test]
fn restore_rejects_invalid_states() {
    let mut p = linux_init();
    p.set_irq(8, true);
    let good = p.save().encode();
    let restore = |b: &[u8]| DualPicState::decode(b).and_then(|s| DualPic::restore(&s));
    assert_eq!(restore(&good).unwrap(), p);
    let mut bad = good.clone();
    bad[6 + 5] = 0x31;
    assert!(restore(&bad).is_err(), "vector base with low bits");
    let mut bad = good.clone();
    bad[6 + 6] = 4;
    assert!(restore(&bad).is_err(), "init step");
    let mut bad = good.clone();
    bad[6 + 3] &= !0x04;
    assert!(
        restore(&bad).is_err(),
        "cascade line disagrees with the slave"
    );
    let mut bad = good.clone();
    bad[6 + 4] = 0x01;
    assert!(restore(&bad).is_err(), "ELCR bit for IRQ0");
    assert!(restore(&good[..25]).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_safe_and_canonical(
        bytes in proptest::collection::vec(any::<u8>(), 0..32)
    ) {
        if let Ok(p) = DualPicState::decode(&bytes).and_then(|s| DualPic::restore(&s)) {
            prop_assert_eq!(p.save().encode(), bytes);
        }
    }

    #[test]
    fn any_sequence_round_trips(
        ops in proptest::collection::vec((0u8..4, 0usize..6, any::<u8>()), 0..64)
    ) {
        let ports = [MASTER_COMMAND, MASTER_DATA, SLAVE_COMMAND, SLAVE_DATA, ELCR_MASTER, ELCR_SLAVE];
        let mut p = DualPic::new();
        for (kind, port, value) in ops {
            match kind {
                0 => p.write(ports[port], value),
                1 => { p.read(ports[port]); }
                2 => p.set_irq(value % 16, value & 0x80 != 0),
                _ => { p.acknowledge(); }
            }
        }
        let s = DualPicState::decode(&p.save().encode()).expect("own encoding decodes");
        prop_assert_eq!(DualPic::restore(&s).expect("reachable state restores"), p);
    }
}
