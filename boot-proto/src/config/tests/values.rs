//! Boundaries of the typed value parsers.

use super::super::value;

#[test]
fn names() {
    assert!(value::name("a").is_ok());
    assert!(value::name(&"z".repeat(32)).is_ok());
    assert!(value::name("A-z_09").is_ok());
    for bad in ["", &"z".repeat(33), "a.b", "a b", "é", "a/b"] {
        assert!(value::name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn numbers_ports_and_booleans() {
    assert_eq!(value::port("1"), Ok(1));
    assert_eq!(value::port("65535"), Ok(65535));
    for bad in [
        "0",
        "65536",
        "",
        "+1",
        "-1",
        "1_000",
        " 1",
        "0x10",
        "99999999999999999999999",
    ] {
        assert!(value::port(bad).is_err(), "{bad:?}");
    }
    assert_eq!(value::u32_at_least("4294967295", 0, "x"), Ok(u32::MAX));
    assert_eq!(value::u32_at_least("4294967296", 0, "x"), Err("x"));
    assert_eq!(value::u32_at_least("0", 1, "x"), Err("x"));
    assert_eq!(value::u32_at_least("007", 1, "x"), Ok(7));
    assert_eq!(value::boolean("yes"), Ok(true));
    assert_eq!(value::boolean("true"), Ok(true));
    assert_eq!(value::boolean("no"), Ok(false));
    assert_eq!(value::boolean("false"), Ok(false));
    for bad in ["Yes", "1", "on", ""] {
        assert!(value::boolean(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn ipv4_and_prefix() {
    assert_eq!(value::ipv4("255.255.255.255"), Ok([255; 4]));
    assert_eq!(
        value::ipv4_with_prefix("10.0.0.1/1"),
        Ok(([10, 0, 0, 1], 1))
    );
    assert_eq!(
        value::ipv4_with_prefix("10.0.0.1/32"),
        Ok(([10, 0, 0, 1], 32))
    );
    for bad in [
        "10.0.0",
        "10.0.0.256",
        "010.0.0.1",
        "10.0.0.1.",
        "",
        "1.2.3.4/24",
    ] {
        assert!(value::ipv4(bad).is_err(), "{bad:?}");
    }
    for bad in [
        "10.0.0.1",
        "10.0.0.1/0",
        "10.0.0.1/33",
        "10.0.0.1/",
        "/24",
        "10.0.0.1/2/4",
        "1.2.3/8",
    ] {
        assert!(value::ipv4_with_prefix(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn mac_addresses() {
    assert_eq!(
        value::mac("52:54:00:12:34:56"),
        Ok([0x52, 0x54, 0, 0x12, 0x34, 0x56])
    );
    assert_eq!(
        value::mac("fe:FF:00:00:00:00"),
        Ok([0xfe, 0xff, 0, 0, 0, 0])
    );
    for bad in [
        "53:54:00:12:34:56", // multicast bit
        "52:54:00:12:34",
        "52:54:00:12:34:56:78",
        "52-54-00-12-34-56",
        "5:54:00:12:34:56",
        "525:4:00:12:34:56",
        "52:54:00:12:34:5g",
        "52:54:00:12:34:é",
        "",
    ] {
        assert!(value::mac(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn keys() {
    let hex = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";
    let key = value::key256(hex).expect("valid");
    assert_eq!(key[0], 0);
    assert_eq!(key[31], 0x1f);
    assert!(value::key256(&hex[..62]).is_err());
    assert!(value::key256(&alloc::format!("{hex}00")).is_err());
    assert!(value::key256(&hex.replace('A', "g")).is_err());
    // 64 bytes but multi-byte characters: must not split a char or panic.
    assert!(value::key256(&"é".repeat(32)).is_err());
}

#[test]
fn memory_sizes() {
    assert_eq!(value::memory_size("1M"), Ok(1 << 20));
    assert_eq!(value::memory_size("1024k"), Ok(1 << 20));
    assert_eq!(value::memory_size("1048576"), Ok(1 << 20));
    assert_eq!(value::memory_size("64G"), Ok(64 << 30));
    assert_eq!(value::memory_size("65536m"), Ok(64 << 30));
    assert_eq!(value::memory_size("1028K"), Ok(1028 << 10));
    assert_eq!(value::memory_size("1025K"), Err("a multiple of 4K"));
    assert_eq!(value::memory_size("1048577"), Err("a multiple of 4K"));
    assert_eq!(value::memory_size("1020K"), Err("a size from 1M to 64G"));
    assert_eq!(value::memory_size("65G"), Err("a size from 1M to 64G"));
    assert_eq!(value::memory_size("0"), Err("a size from 1M to 64G"));
    let syntax = "a size like 64M: bytes, or a number with a K, M or G suffix";
    for bad in [
        "",
        "M",
        "64 M",
        "64MB",
        "64MiB",
        "1.5G",
        "-1M",
        "99999999999999999999G",
        "18014398509481984G",
        "é",
    ] {
        assert_eq!(value::memory_size(bad), Err(syntax), "{bad:?}");
    }
}

#[test]
fn image_paths() {
    for ok in [
        "a",
        "tern/guests/hb.elf",
        "\\tern\\guests\\hb.elf",
        "/x/y",
        "a b/c d.elf",
        "..a/b..",
        "ünï/cödé",
    ] {
        assert_eq!(value::image_path(ok).as_deref(), Ok(ok));
    }
    for bad in [
        "", "/", "\\", "a/../b", "..", "./a", "a//b", "a/", "a\\", "//a", "c:/a", "a*b", "a?b",
        "a<b", "a|b",
    ] {
        assert!(value::image_path(bad).is_err(), "{bad:?}");
    }
}
