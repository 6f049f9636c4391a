use proptest::prelude::*;

use super::state::RtcState;
use super::*;

const S: u64 = 1_000_000_000;
/// 2026-12-04 14:16:13 UTC, a Friday.
const WALL: u64 = 1_796_393_773 * S;
const MEMORY: CmosMemory = CmosMemory {
    below_4g: 3 * 1024 * 1024 * 1024,
    above_4g: 1024 * 1024 * 1024,
};

fn rtc() -> Rtc {
    Rtc::new(WALL, 0, MEMORY)
}

fn read(r: &mut Rtc, index: u8, now: u64) -> u8 {
    r.write(INDEX_PORT, index, now);
    r.read(DATA_PORT, now)
}

fn write(r: &mut Rtc, index: u8, value: u8, now: u64) {
    r.write(INDEX_PORT, index, now);
    r.write(DATA_PORT, value, now);
}

#[test]
fn time_reads_in_bcd_then_binary_and_12_hour() {
    let mut r = rtc();
    assert_eq!(read(&mut r, REG_SECONDS, 0), 0x13);
    assert_eq!(read(&mut r, REG_MINUTES, 0), 0x16);
    assert_eq!(read(&mut r, REG_HOURS, 0), 0x14);
    assert_eq!(read(&mut r, REG_WEEKDAY, 0), 0x06);
    assert_eq!(read(&mut r, REG_DAY, 0), 0x04);
    assert_eq!(read(&mut r, REG_MONTH, 0), 0x12);
    assert_eq!(read(&mut r, REG_YEAR, 0), 0x26);
    assert_eq!(read(&mut r, REG_CENTURY, 0), 0x20);
    assert_eq!(
        read(&mut r, REG_SECONDS, 50 * S),
        0x03,
        "time moves with now"
    );
    write(&mut r, REG_B, B_BINARY, 0);
    assert_eq!(read(&mut r, REG_SECONDS, 0), 13);
    assert_eq!(read(&mut r, REG_HOURS, 0), 0x82, "2 PM in 12-hour binary");
}

#[test]
fn update_in_progress_before_each_second() {
    let mut r = rtc();
    assert_eq!(read(&mut r, REG_A, 0) & A_UIP, 0);
    assert_eq!(read(&mut r, REG_A, S - 244_001) & A_UIP, 0);
    assert_eq!(read(&mut r, REG_A, S - 244_000) & A_UIP, A_UIP);
    assert_eq!(read(&mut r, REG_A, S) & A_UIP, 0);
    assert_eq!(read(&mut r, REG_A, 0), 0x26);
}

#[test]
fn update_ended_interrupt_on_irq8_until_c_is_read() {
    let mut r = rtc();
    write(&mut r, REG_B, B_24H | B_UIE, 0);
    assert_eq!(r.next_deadline(), Some(S));
    r.advance(S - 1);
    assert!(!r.irq_asserted());
    r.advance(S);
    assert!(r.irq_asserted());
    assert_eq!(r.next_deadline(), None, "line already asserted");
    assert_eq!(
        read(&mut r, REG_C, S),
        C_IRQF | C_PF | C_UF,
        "PF too: 1024 Hz rate"
    );
    assert!(!r.irq_asserted());
    assert_eq!(read(&mut r, REG_C, S), 0, "read clears");
}

#[test]
fn periodic_flag_and_interrupt() {
    let mut r = rtc();
    // Rate 6: 1024 Hz. PF is set even with PIE off; IRQF needs PIE.
    assert_eq!(read(&mut r, REG_C, 2_000_000), C_PF);
    write(&mut r, REG_B, B_24H | B_PIE, 2_000_000);
    let deadline = r.next_deadline().unwrap();
    assert!(deadline > 2_000_000 && deadline <= 2_000_000 + 976_563);
    r.advance(deadline);
    assert!(r.irq_asserted());
    assert_eq!(read(&mut r, REG_C, deadline), C_IRQF | C_PF);
    write(&mut r, REG_A, 0x20, deadline);
    assert_eq!(r.next_deadline(), None, "rate 0 disables");
}

#[test]
fn alarm_matches_once_a_day_with_dont_care() {
    let mut r = rtc();
    write(&mut r, REG_SECONDS_ALARM, 0x15, 0);
    write(&mut r, REG_MINUTES_ALARM, 0xc0, 0);
    write(&mut r, REG_HOURS_ALARM, 0xff, 0);
    write(&mut r, REG_B, B_24H | B_AIE, 0);
    r.advance(S);
    assert!(!r.irq_asserted(), "14:16:14 does not match :15");
    r.advance(2 * S);
    assert!(r.irq_asserted());
    assert_eq!(read(&mut r, REG_C, 2 * S), C_IRQF | C_PF | C_AF | C_UF);
}

#[test]
fn set_freezes_and_sets_the_time() {
    let mut r = rtc();
    write(&mut r, REG_B, B_SET | B_24H | B_UIE, 0);
    assert_eq!(read(&mut r, REG_B, 0), B_SET | B_24H, "SET clears UIE");
    write(&mut r, REG_HOURS, 0x23, 0);
    write(&mut r, REG_MINUTES, 0x59, 0);
    write(&mut r, REG_SECONDS, 0x58, 0);
    assert_eq!(read(&mut r, REG_SECONDS, 10 * S), 0x58, "frozen");
    assert_eq!(read(&mut r, REG_A, S - 1) & A_UIP, 0, "no update while SET");
    write(&mut r, REG_B, B_24H, 10 * S);
    assert_eq!(read(&mut r, REG_SECONDS, 12 * S), 0x00);
    assert_eq!(read(&mut r, REG_HOURS, 12 * S), 0x00);
    assert_eq!(
        read(&mut r, REG_DAY, 12 * S),
        0x05,
        "rolled into Saturday the 5th"
    );
    assert_eq!(read(&mut r, REG_WEEKDAY, 12 * S), 0x07);
}

#[test]
fn nmi_disable_bit_and_memory_bytes() {
    let mut r = rtc();
    r.write(INDEX_PORT, 0x80 | 0x34, 0);
    assert!(r.nmi_disabled());
    assert_eq!(r.read(INDEX_PORT, 0), 0xff);
    // (3 GiB - 16 MiB) / 64 KiB = 0xbf00.
    assert_eq!(r.read(DATA_PORT, 0), 0x00);
    assert_eq!(read(&mut r, 0x35, 0), 0xbf);
    assert!(!r.nmi_disabled());
    assert_eq!(read(&mut r, 0x5b, 0), 0x00);
    assert_eq!(read(&mut r, 0x5c, 0), 0x40, "1 GiB / 64 KiB = 0x4000");
    assert_eq!(read(&mut r, 0x5d, 0), 0x00);
    assert_eq!((read(&mut r, 0x15, 0), read(&mut r, 0x16, 0)), (0x80, 0x02));
    assert_eq!((read(&mut r, 0x30, 0), read(&mut r, 0x31, 0)), (0xff, 0xff));
    assert_eq!(read(&mut r, REG_D, 0), D_VRT);
    write(&mut r, 0x40, 0x5a, 0);
    assert_eq!(read(&mut r, 0x40, 0), 0x5a, "plain CMOS byte");
}

#[test]
fn restore_rejects_invalid_states() {
    let mut r = rtc();
    write(&mut r, REG_B, B_24H | B_UIE, 0);
    r.advance(S);
    let good = r.save().encode();
    let restore = |b: &[u8]| RtcState::decode(b).and_then(|s| Rtc::restore(&s));
    assert_eq!(restore(&good).unwrap(), r);
    let cmos = 8;
    let mut bad = good.clone();
    bad[cmos + usize::from(REG_C)] = C_UF;
    assert!(restore(&bad).is_err(), "UF with UIE but no IRQF");
    let mut bad = good.clone();
    bad[cmos + usize::from(REG_D)] = 0;
    assert!(restore(&bad).is_err());
    let mut bad = good.clone();
    bad[6] = 0x80;
    assert!(restore(&bad).is_err(), "index");
    let mut bad = good.clone();
    bad[7] = 2;
    assert!(restore(&bad).is_err(), "bool");
    assert!(restore(&good[..good.len() - 3]).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_safe_and_canonical(
        bytes in proptest::collection::vec(any::<u8>(), 150..170)
    ) {
        if let Ok(r) = RtcState::decode(&bytes).and_then(|s| Rtc::restore(&s)) {
            prop_assert_eq!(r.save().encode(), bytes);
        }
    }

    #[test]
    fn decoded_states_never_panic_when_driven(
        mut bytes in proptest::collection::vec(any::<u8>(), 160..161),
        ops in proptest::collection::vec((0u8..0x80, any::<u8>(), any::<u32>()), 0..16)
    ) {
        // A valid header so that the body (including wild CMOS time bytes and clock
        // references) gets exercised.
        bytes[..6].copy_from_slice(&rtc().save().encode()[..6]);
        if let Ok(mut r) = RtcState::decode(&bytes).and_then(|s| Rtc::restore(&s)) {
            let mut now = 0u64;
            for (index, value, dt) in ops {
                now = now.saturating_add(u64::from(dt) * 1000);
                write(&mut r, index, value, now);
                read(&mut r, index, now);
                r.next_deadline();
            }
        }
    }

    #[test]
    fn any_sequence_round_trips(
        ops in proptest::collection::vec((0u8..0x80, any::<u8>(), any::<bool>(), 0u64..3_000_000_000), 0..48)
    ) {
        let mut r = rtc();
        let mut now = 0;
        for (index, value, is_write, dt) in ops {
            now += dt;
            if is_write { write(&mut r, index, value, now); } else { read(&mut r, index, now); }
            r.advance(now);
        }
        let s = RtcState::decode(&r.save().encode()).expect("own encoding decodes");
        prop_assert_eq!(Rtc::restore(&s).expect("reachable state restores"), r);
    }
}
