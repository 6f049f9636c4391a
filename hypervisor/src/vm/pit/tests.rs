use proptest::prelude::*;

use super::channel::{PIT_HZ, ns_for_ticks};
use super::state::PitState;
use super::*;

const MS: u64 = 1_000_000;

fn program(pit: &mut Pit, control: u8, count: u16, now: u64) {
    pit.write(CONTROL, control, now);
    let port = COUNTER0 + u16::from(control >> 6);
    let [low, high] = count.to_le_bytes();
    pit.write(port, low, now);
    pit.write(port, high, now);
}

#[test]
fn mode2_channel0_gives_periodic_irq0() {
    let mut pit = Pit::new();
    // Linux's PIT_LATCH for HZ=100: 1193182 / 100 rounded = 11932.
    program(&mut pit, 0x34, 11932, 0);
    assert_eq!(pit.next_deadline(), Some(ns_for_ticks(11932)));
    let mut edges = 0;
    let mut now = 0;
    while now < 1_000 * MS {
        now += 3 * MS + 17;
        edges += pit.advance(now.min(1_000 * MS));
    }
    assert_eq!(edges, 1_193_182 / 11932, "99 full periods in one second");
    assert_eq!(pit.advance(1_000 * MS), 0, "nothing reported twice");
    // A second PIT advanced once sees the same count: late calls lose nothing.
    let mut once = Pit::new();
    program(&mut once, 0x34, 11932, 0);
    assert_eq!(once.advance(1_000 * MS), 99);
    assert!(pit.next_deadline().unwrap() > 1_000 * MS);
}

#[test]
fn mode3_square_wave_has_the_same_period() {
    let mut pit = Pit::new();
    program(&mut pit, 0x36, 1000, 0);
    let period_ns = 1000 * 1_000_000_000 / PIT_HZ;
    assert_eq!(pit.advance(10 * period_ns + 10_000), 10);
    pit.write(PORT_61, 0x01, 0);
}

#[test]
fn mode0_interrupts_once_on_terminal_count() {
    let mut pit = Pit::new();
    program(&mut pit, 0x30, 1193, 0);
    assert_eq!(pit.advance(ns_for_ticks(1192)), 0);
    assert_eq!(pit.advance(ns_for_ticks(1193)), 1);
    assert_eq!(pit.advance(100 * MS), 0, "one-shot");
    assert_eq!(pit.next_deadline(), None);
}

#[test]
fn latch_and_lohi_reads() {
    let mut pit = Pit::new();
    program(&mut pit, 0x34, 0x1234, 0);
    pit.write(CONTROL, 0x00, ns_for_ticks(0x34)); // latch counter 0
    // Reads much later still see the latched value, low byte first.
    assert_eq!(pit.read(COUNTER0, 5 * MS), 0x00);
    assert_eq!(pit.read(COUNTER0, 5 * MS), 0x12);
    // Live low/high pair.
    let now = ns_for_ticks(0x200);
    assert_eq!(pit.read(COUNTER0, now), 0x34);
    assert_eq!(pit.read(COUNTER0, now), 0x10);
}

#[test]
fn read_back_status_and_count() {
    let mut pit = Pit::new();
    pit.write(CONTROL, 0xb0, 0); // counter 2, lohi, mode 0
    pit.write(CONTROL, 0xc8, 0); // read-back status+count of counter 2
    assert_eq!(pit.read(0x42, 0), 0x70, "OUT low, null count, lohi, mode 0");
    pit.write(PORT_61, 0x01, 0);
    pit.write(0x42, 0x10, 0);
    pit.write(0x42, 0x00, 0);
    pit.write(CONTROL, 0xe8, 0); // read-back status of counter 2
    assert_eq!(pit.read(0x42, 0), 0x30, "count loaded");
}

#[test]
fn counter2_calibration_through_port_61() {
    // quick_pit_calibrate: gate high, speaker off; counter 2 mode 0, count 0xffff; poll
    // OUT2 (port 0x61 bit 5) until terminal count.
    let mut pit = Pit::new();
    let control = pit.read(PORT_61, 0);
    pit.write(PORT_61, (control & !0x02) | 0x01, 0);
    program(&mut pit, 0xb0, 0xffff, 1_000);
    let terminal = 1_000 + ns_for_ticks(0xffff);
    assert_eq!(pit.read(PORT_61, terminal - 1) & 0x20, 0);
    assert_eq!(pit.read(PORT_61, terminal) & 0x20, 0x20);
    assert!(!pit.speaker_output(terminal), "speaker data disabled");
    // The MSB read by quick_pit_calibrate counts down with time.
    pit.write(CONTROL, 0x80, 1_000 + ns_for_ticks(0x100));
    pit.read(0x42, 0);
    assert_eq!(pit.read(0x42, 0), 0xfe);
}

#[test]
fn gate_low_stops_mode2_and_rising_edge_restarts() {
    let mut pit = Pit::new();
    program(&mut pit, 0xb4, 100, 0); // counter 2 mode 2, gate low
    assert_eq!(pit.read(PORT_61, 0) & 0x20, 0x20, "OUT idles high");
    pit.write(PORT_61, 0x01, 1_000);
    pit.write(CONTROL, 0x80, 1_000 + ns_for_ticks(10));
    assert_eq!(pit.read(0x42, 0), 90);
}

#[test]
fn refresh_bit_toggles() {
    let mut pit = Pit::new();
    let a = pit.read(PORT_61, 0) & 0x10;
    let b = pit.read(PORT_61, 15_085) & 0x10;
    assert_ne!(a, b);
}

#[test]
fn bcd_counts() {
    let mut pit = Pit::new();
    program(&mut pit, 0x35, 0x1000, 0); // mode 2, BCD, 1000
    pit.write(CONTROL, 0x00, ns_for_ticks(1));
    assert_eq!(pit.read(COUNTER0, 0), 0x99);
    assert_eq!(pit.read(COUNTER0, 0), 0x09, "999 in BCD");
    assert_eq!(pit.advance(ns_for_ticks(3000)), 3);
}

#[test]
fn restore_rejects_invalid_states() {
    let mut pit = Pit::new();
    program(&mut pit, 0x34, 100, 0);
    let good = pit.save().encode();
    let restore = |b: &[u8]| PitState::decode(b).and_then(|s| Pit::restore(&s));
    assert_eq!(restore(&good).unwrap(), pit);
    let mut bad = good.clone();
    bad[6] = 0x10;
    assert!(restore(&bad).is_err(), "port 0x61 bits");
    let mut bad = good.clone();
    bad[7] = 6;
    assert!(restore(&bad).is_err(), "mode 6 is stored as 2");
    let mut bad = good.clone();
    bad[8] = 0;
    assert!(restore(&bad).is_err(), "access 0 is the latch command");
    assert!(restore(&good[..good.len() - 1]).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_safe_and_canonical(
        bytes in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        if let Ok(p) = PitState::decode(&bytes).and_then(|s| Pit::restore(&s)) {
            prop_assert_eq!(p.save().encode(), bytes);
        }
    }

    #[test]
    fn any_sequence_round_trips(
        ops in proptest::collection::vec((0u8..3, 0usize..5, any::<u8>(), 0u64..50_000_000), 0..64)
    ) {
        let ports = [0x40, 0x41, 0x42, CONTROL, PORT_61];
        let mut pit = Pit::new();
        let mut now = 0;
        for (kind, port, value, dt) in ops {
            now += dt;
            match kind {
                0 => pit.write(ports[port], value, now),
                1 => { pit.read(ports[port], now); }
                _ => { pit.advance(now); pit.next_deadline(); }
            }
        }
        let s = PitState::decode(&pit.save().encode()).expect("own encoding decodes");
        prop_assert_eq!(Pit::restore(&s).expect("reachable state restores"), pit);
    }
}
