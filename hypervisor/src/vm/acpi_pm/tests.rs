use super::*;
use crate::vm::device_state_codec::StateError;

fn read16(pm: &AcpiPm, port: u16) -> u16 {
    u16::from_le_bytes([pm.read(port).unwrap(), pm.read(port + 1).unwrap()])
}

fn write16(pm: &mut AcpiPm, port: u16, value: u16) {
    let [lo, hi] = value.to_le_bytes();
    assert!(pm.write(port, lo));
    assert!(pm.write(port + 1, hi));
}

#[test]
fn linux_disabling_the_rtc_event_reads_back_disabled() {
    let mut pm = AcpiPm::default();
    // acpi_enable_event / acpi_disable_event: read-modify-write of PM1_EN, then read back.
    write16(&mut pm, PM1A_EVT_PORT + 2, 1 << 10);
    assert_eq!(read16(&pm, PM1A_EVT_PORT + 2), 1 << 10);
    write16(&mut pm, PM1A_EVT_PORT + 2, 0);
    assert_eq!(read16(&pm, PM1A_EVT_PORT + 2), 0);
    // Bits the register does not implement read 0.
    write16(&mut pm, PM1A_EVT_PORT + 2, 0xffff);
    assert_eq!(read16(&pm, PM1A_EVT_PORT + 2), PM1_EN_IMPLEMENTED);
}

#[test]
fn status_reads_zero_and_clearing_it_is_harmless() {
    let mut pm = AcpiPm::default();
    write16(&mut pm, PM1A_EVT_PORT, 0xffff);
    assert_eq!(read16(&pm, PM1A_EVT_PORT), 0);
}

#[test]
fn control_is_always_in_acpi_mode_and_keeps_the_sleep_type() {
    let mut pm = AcpiPm::default();
    assert_eq!(read16(&pm, PM1A_CNT_PORT) & PM1_CNT_SCI_EN, PM1_CNT_SCI_EN);
    write16(&mut pm, PM1A_CNT_PORT, 0);
    assert_eq!(
        read16(&pm, PM1A_CNT_PORT),
        PM1_CNT_SCI_EN,
        "SCI_EN cannot be cleared"
    );
    assert_eq!(pm.take_sleep_request(), None);
    // S5 as Linux writes it: SLP_TYP = 5 with SLP_EN; SLP_EN reads 0.
    write16(&mut pm, PM1A_CNT_PORT, (5 << 10) | PM1_CNT_SLP_EN);
    assert_eq!(read16(&pm, PM1A_CNT_PORT), (5 << 10) | PM1_CNT_SCI_EN);
    assert_eq!(pm.take_sleep_request(), Some(5));
    assert_eq!(pm.take_sleep_request(), None);
}

#[test]
fn other_ports_are_not_decoded() {
    let mut pm = AcpiPm::default();
    for port in [PM1A_EVT_PORT - 1, PM1A_CNT_PORT + 2, 0x3f8] {
        assert!(!AcpiPm::handles_port(port));
        assert_eq!(pm.read(port), None);
        assert!(!pm.write(port, 0));
    }
    for port in PM1A_EVT_PORT..PM1A_CNT_PORT + 2 {
        assert!(AcpiPm::handles_port(port), "{port:#x}");
    }
}

#[test]
fn state_round_trips_and_refuses_unimplemented_bits() {
    let mut pm = AcpiPm::default();
    write16(&mut pm, PM1A_EVT_PORT + 2, (1 << 8) | (1 << 10));
    write16(&mut pm, PM1A_CNT_PORT, 3 << 10);
    let bytes = pm.save().encode();
    let back = AcpiPm::restore(&state::AcpiPmState::decode(&bytes).unwrap()).unwrap();
    assert_eq!(back, pm);
    // pm1_en with bit 1 (not implemented) set.
    let mut bad = bytes.clone();
    bad[6] |= 1 << 1;
    let decoded = state::AcpiPmState::decode(&bad).unwrap();
    assert!(matches!(
        AcpiPm::restore(&decoded),
        Err(StateError::InvalidField { .. })
    ));
    assert!(state::AcpiPmState::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn linux_poweroff_is_a_power_off_and_other_sleep_types_are_not() {
    let mut pm = AcpiPm::default();
    assert_eq!(pm.take_sleep_action(), None);
    // acpi_hw_legacy_sleep: SLP_TYP written first without SLP_EN, then with it.
    write16(&mut pm, PM1A_CNT_PORT, 5 << 10);
    assert_eq!(pm.take_sleep_action(), None, "no SLP_EN, no request");
    write16(&mut pm, PM1A_CNT_PORT, (5 << 10) | PM1_CNT_SLP_EN);
    assert_eq!(pm.take_sleep_action(), Some(SleepAction::PowerOff));
    assert_eq!(pm.take_sleep_action(), None, "taken once");
    // S3 (suspend to RAM) is not announced nor implemented.
    write16(&mut pm, PM1A_CNT_PORT, (1 << 10) | PM1_CNT_SLP_EN);
    assert_eq!(pm.take_sleep_action(), Some(SleepAction::Unsupported(1)));
}
