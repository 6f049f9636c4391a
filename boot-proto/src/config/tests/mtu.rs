//! `[net] mtu`: its range, its default, and errors that name the line.

use super::super::*;
use super::errors::{check, invalid, net};
use super::{MINIMAL, error_of};

const EXPECTED: &str = "an MTU in bytes from 576 to 9000";

#[test]
fn mtu_accepts_its_range_and_defaults_to_1500() {
    for (text, mtu) in [
        ("576", 576),
        ("1500", 1500),
        ("9000", 9000),
        ("04000", 4000),
    ] {
        let config = parse(&net(&alloc::format!("mode = dhcp\nmtu = {text}\n"))).expect(text);
        assert_eq!(config.net.mtu, mtu, "{text}");
    }
    let config = parse(&net("mode = dhcp\n")).expect("parses");
    assert_eq!(config.net.mtu, DEFAULT_MTU);
    assert_eq!(parse(MINIMAL).expect("parses").net.mtu, 1500);
    // Like `mac`, the MTU applies whatever the mode.
    assert_eq!(parse(&net("mtu = 600\n")).expect("parses").net.mtu, 600);
    assert_eq!(MTU_RANGE, 576..=9000);
}

#[test]
fn mtu_outside_the_range_is_refused_with_its_line() {
    for bad in [
        "575", "9001", "0", "65536", "1500B", "-1500", "", "jumbo", "1_500",
    ] {
        check(
            &net(&alloc::format!("mode = dhcp\nmtu = {bad}\n")),
            5,
            invalid("net", "mtu", bad, EXPECTED),
            &alloc::format!("line 5: [net] mtu = {bad}: expected {EXPECTED}"),
        );
    }
}

#[test]
fn mtu_given_twice_is_refused() {
    let error = error_of(&net("mtu = 1500\nmtu = 9000\n"));
    assert_eq!(error.line, 5);
    assert_eq!(
        alloc::format!("{error}"),
        "line 5: [net] mtu is set again (first on line 4)"
    );
}
