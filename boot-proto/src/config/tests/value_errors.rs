//! Errors about values and required keys: the exact variant, its line, and the operator's
//! message.

use alloc::format;

use super::super::*;
use super::error_of;
use super::errors::{check, invalid, migration, net, s, vm};

#[test]
fn missing_keys() {
    let missing = |section: &str, key| ConfigErrorKind::MissingKey {
        section: s(section),
        key,
    };
    check(
        "",
        0,
        missing("host", "name"),
        "[host] name is required but missing",
    );
    check(
        "[net]\nmode = dhcp\n",
        0,
        missing("host", "name"),
        "[host] name is required but missing",
    );
    check(
        "\n[host]\n",
        2,
        missing("host", "name"),
        "line 2: [host] name is required but missing",
    );
    check(
        &vm("memory = 1M"),
        3,
        missing("vm v", "image (a PVH ELF) or kernel (a Linux bzImage)"),
        "line 3: [vm v] image (a PVH ELF) or kernel (a Linux bzImage) is required but missing",
    );
    check(
        &vm("image = a"),
        3,
        missing("vm v", "memory"),
        "line 3: [vm v] memory is required but missing",
    );
    check(
        &net("\nmode = static\n"),
        5,
        missing("net", "address"),
        "line 5: [net] address is required but missing",
    );
}

#[test]
fn net_keys_need_static_mode() {
    check(
        &net("address = 10.0.0.1/8\nmode = dhcp"),
        4,
        ConfigErrorKind::NetKeyNeedsStaticMode { key: "address" },
        "line 4: [net] address is only allowed with mode = static",
    );
    check(
        &net("gateway = 10.0.0.1"),
        4,
        ConfigErrorKind::NetKeyNeedsStaticMode { key: "gateway" },
        "line 4: [net] gateway is only allowed with mode = static",
    );
}

#[test]
fn unsupported_vcpus() {
    check(
        &vm("image=a\nmemory=1M\nvcpus = 2"),
        6,
        ConfigErrorKind::UnsupportedVcpus {
            section: s("vm v"),
            count: 2,
        },
        "line 6: [vm v] vcpus = 2: only 1 vCPU per VM is supported yet",
    );
    check(
        &vm("vcpus = 0"),
        4,
        invalid("vm v", "vcpus", "0", "a vCPU count of at least 1"),
        "line 4: [vm v] vcpus = 0: expected a vCPU count of at least 1",
    );
}

#[test]
fn value_too_long() {
    let cmdline = "x".repeat(MAX_CMDLINE_LEN + 1);
    check(
        &vm(&format!("cmdline = \"{cmdline}\"")),
        4,
        ConfigErrorKind::ValueTooLong {
            section: s("vm v"),
            key: "cmdline",
            len: 1025,
            max: 1024,
        },
        "line 4: [vm v] cmdline is 1025 bytes long: at most 1024 bytes are allowed",
    );
    // Exactly at the limit is fine.
    let ok = vm(&format!(
        "image=a\nmemory=1M\ncmdline = {}",
        "x".repeat(MAX_CMDLINE_LEN)
    ));
    assert_eq!(
        parse(&ok).expect("parses").vms[0].cmdline.len(),
        MAX_CMDLINE_LEN
    );
    let image = "d/".repeat(128);
    assert_eq!(
        error_of(&vm(&format!("image = {image}"))).kind,
        ConfigErrorKind::ValueTooLong {
            section: s("vm v"),
            key: "image",
            len: 256,
            max: 255
        }
    );
}

#[test]
fn invalid_values_name_section_key_value_and_expectation() {
    check(
        &net("mode = bogus"),
        4,
        invalid("net", "mode", "bogus", "none, dhcp or static"),
        "line 4: [net] mode = bogus: expected none, dhcp or static",
    );
    check(
        "[host]\nname = \"al pha\"\n",
        2,
        invalid(
            "host",
            "name",
            "al pha",
            "1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'",
        ),
        "line 2: [host] name = al pha: expected 1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'",
    );
    check(
        "[host]\nname =\n",
        2,
        invalid(
            "host",
            "name",
            "",
            "1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'",
        ),
        "line 2: [host] name = : expected 1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'",
    );
    check(
        &migration("port = 0"),
        4,
        invalid(
            "migration",
            "port",
            "0",
            "a TCP port number from 1 to 65535",
        ),
        "line 4: [migration] port = 0: expected a TCP port number from 1 to 65535",
    );
    check(
        &vm("memory = 1000000"),
        4,
        invalid("vm v", "memory", "1000000", "a size from 1M to 64G"),
        "line 4: [vm v] memory = 1000000: expected a size from 1M to 64G",
    );
}

#[test]
fn quote_errors() {
    let unterminated = "a closing double quote at the end of the value";
    check(
        &vm("cmdline = \"abc"),
        4,
        invalid("vm v", "cmdline", "\"abc", unterminated),
        "line 4: [vm v] cmdline = \"abc: expected a closing double quote at the end of the value",
    );
    assert_eq!(
        error_of(&vm("cmdline = \"a\"b\"")).kind,
        invalid(
            "vm v",
            "cmdline",
            "\"a\"b\"",
            "no double quote inside a quoted value"
        )
    );
    assert_eq!(
        error_of(&vm("cmdline = a\"b\"")).kind,
        invalid(
            "vm v",
            "cmdline",
            "a\"b\"",
            "double quotes only around the whole value, like \"a b\""
        )
    );
    // A lone quote: the opening one has no closing one.
    assert_eq!(
        error_of(&vm("cmdline = \"")).kind,
        invalid("vm v", "cmdline", "\"", unterminated)
    );
}

#[test]
fn long_values_are_cut_in_messages_only() {
    let value = "é".repeat(100);
    let err = error_of(&net(&format!("mode = {value}")));
    assert_eq!(
        err.kind,
        invalid("net", "mode", &value, "none, dhcp or static")
    );
    let shown = "é".repeat(48);
    assert_eq!(
        err.to_string(),
        format!("line 4: [net] mode = {shown}...: expected none, dhcp or static")
    );
}
