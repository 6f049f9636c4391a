//! Errors of file structure (lines, sections, keys): the exact variant, its line, and the
//! operator's message. [`super::value_errors`] has the errors about values.

use alloc::format;
use alloc::string::{String, ToString};

use super::super::*;
use super::{MINIMAL, error_of};

/// Asserts that `text` fails with `kind` on `line`, displayed as `message`.
pub(super) fn check(text: &str, line: u32, kind: ConfigErrorKind, message: &str) {
    let err = error_of(text);
    assert_eq!(err, ConfigError { line, kind }, "for {text:?}");
    assert_eq!(err.to_string(), message, "for {text:?}");
}

pub(super) fn s(text: &str) -> String {
    text.to_string()
}

/// `MINIMAL` followed by a `[vm v]` section holding `body`; the body starts on line 4.
pub(super) fn vm(body: &str) -> String {
    format!("{MINIMAL}[vm v]\n{body}")
}

/// `MINIMAL` followed by `[net]` (line 3) and `body`, which starts on line 4.
pub(super) fn net(body: &str) -> String {
    format!("{MINIMAL}[net]\n{body}")
}

/// `MINIMAL` followed by `[migration]` (line 3) and `body`, which starts on line 4.
pub(super) fn migration(body: &str) -> String {
    format!("{MINIMAL}[migration]\n{body}")
}

pub(super) fn invalid(
    section: &str,
    key: &'static str,
    value: &str,
    expected: &'static str,
) -> ConfigErrorKind {
    ConfigErrorKind::InvalidValue {
        section: s(section),
        key,
        value: s(value),
        expected,
    }
}

#[test]
fn control_character() {
    check(
        "[host]\nname = a\x00b\n",
        2,
        ConfigErrorKind::ControlCharacter { code: 0 },
        "line 2: control character U+0000 in line: only printable text and tabs are allowed",
    );
    // A lone CR is not a line ending.
    let err = error_of("[host]\rname = a\n");
    assert_eq!(err.kind, ConfigErrorKind::ControlCharacter { code: 13 });
    // Also inside comments.
    assert_eq!(error_of("# \x1b[31m\n").line, 1);
}

#[test]
fn malformed_line() {
    check(
        "[host]\nname alpha  # no equals\n",
        2,
        ConfigErrorKind::MalformedLine {
            text: s("name alpha"),
        },
        "line 2: `name alpha`: expected `key = value`, a `[section]` header, a `#` comment or nothing",
    );
    check(
        "= 3\n",
        1,
        ConfigErrorKind::MalformedLine { text: s("= 3") },
        "line 1: `= 3`: expected `key = value`, a `[section]` header, a `#` comment or nothing",
    );
}

#[test]
fn bad_section_headers() {
    let bad = |header: &str, expected| ConfigErrorKind::BadSectionHeader {
        header: s(header),
        expected,
    };
    check(
        "[host\n",
        1,
        bad("[host", "a closing `]`"),
        "line 1: bad section header `[host`: expected a closing `]`",
    );
    check(
        "[host] name = a\n",
        1,
        bad("[host] name = a", "nothing after `]` but a comment"),
        "line 1: bad section header `[host] name = a`: expected nothing after `]` but a comment",
    );
    check(
        "[  ]\n",
        1,
        bad("[  ]", "a section name between the brackets"),
        "line 1: bad section header `[  ]`: expected a section name between the brackets",
    );
    check(
        "[vm a b]\n",
        1,
        bad("[vm a b]", "[NAME] or [vm NAME], without more words"),
        "line 1: bad section header `[vm a b]`: expected [NAME] or [vm NAME], without more words",
    );
    check(
        "[vm]\n",
        1,
        bad("[vm]", "[vm NAME]"),
        "line 1: bad section header `[vm]`: expected [vm NAME]",
    );
    check(
        "[host x]\n",
        1,
        bad("[host x]", "[host], without a name"),
        "line 1: bad section header `[host x]`: expected [host], without a name",
    );
    assert_eq!(
        error_of("[net x]").kind,
        bad("[net x]", "[net], without a name")
    );
    assert_eq!(
        error_of("[migration x]").kind,
        bad("[migration x]", "[migration], without a name")
    );
    let name_expected = "[vm NAME] with a NAME of 1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'";
    check(
        &format!("{MINIMAL}[vm bad.name]\n"),
        3,
        bad("[vm bad.name]", name_expected),
        "line 3: bad section header `[vm bad.name]`: expected [vm NAME] with a NAME of 1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'",
    );
    let long = "n".repeat(33);
    assert_eq!(
        error_of(&format!("[vm {long}]")).kind,
        bad(&format!("[vm {long}]"), name_expected)
    );
}

#[test]
fn unknown_section() {
    check(
        "[hots]\n",
        1,
        ConfigErrorKind::UnknownSection { name: s("hots") },
        "line 1: unknown section [hots]: expected [host], [net], [migration] or [vm NAME]",
    );
    // Section names are case-sensitive.
    assert_eq!(
        error_of("[Host]").kind,
        ConfigErrorKind::UnknownSection { name: s("Host") }
    );
}

#[test]
fn duplicate_section() {
    check(
        "[host]\nname = a\n\n[host]\n",
        4,
        ConfigErrorKind::DuplicateSection {
            section: s("host"),
            first_line: 1,
        },
        "line 4: [host] appears again (first on line 1)",
    );
    assert_eq!(error_of(&format!("{MINIMAL}[net]\n[net]")).line, 4);
    assert_eq!(
        error_of(&format!("{MINIMAL}[migration]\n[migration]")).line,
        4
    );
}

#[test]
fn key_outside_section() {
    check(
        "# header comment\nname = a\n[host]\n",
        2,
        ConfigErrorKind::KeyOutsideSection { key: s("name") },
        "line 2: `name` is outside any section: put a [section] header before it",
    );
}

#[test]
fn unknown_keys_in_every_section() {
    check(
        "[host]\nnmae = a\n",
        2,
        ConfigErrorKind::UnknownKey {
            section: s("host"),
            key: s("nmae"),
        },
        "line 2: [host] has no key `nmae`",
    );
    assert_eq!(
        error_of(&net("ip = 1.2.3.4")).to_string(),
        "line 4: [net] has no key `ip`"
    );
    assert_eq!(
        error_of(&migration("Port = 1")).to_string(),
        "line 4: [migration] has no key `Port`"
    );
    assert_eq!(
        error_of(&vm("ram = 1M")).to_string(),
        "line 4: [vm v] has no key `ram`"
    );
}

#[test]
fn duplicate_key() {
    check(
        "[host]\nname = a\nname = b\n",
        3,
        ConfigErrorKind::DuplicateKey {
            section: s("host"),
            key: "name",
            first_line: 2,
        },
        "line 3: [host] name is set again (first on line 2)",
    );
    // Reported even when the second value is itself invalid.
    assert_eq!(
        error_of(&vm("memory = 1M\nmemory = x")).kind,
        ConfigErrorKind::DuplicateKey {
            section: s("vm v"),
            key: "memory",
            first_line: 4
        }
    );
}

#[test]
fn duplicate_vm_ignores_ascii_case() {
    check(
        &format!("{MINIMAL}[vm hb]\nimage=a\nmemory=1M\n[vm HB]\n"),
        6,
        ConfigErrorKind::DuplicateVm {
            name: s("HB"),
            first_line: 3,
        },
        "line 6: [vm HB]: a VM of that name is already defined on line 3",
    );
}

#[test]
fn too_many_vms() {
    let mut text = MINIMAL.to_string();
    for i in 0..=MAX_VMS {
        text.push_str(&format!("[vm v{i}]\nimage=v.elf\nmemory=1M\n"));
    }
    let line = u32::try_from(3 + 3 * MAX_VMS).expect("small");
    check(
        &text,
        line,
        ConfigErrorKind::TooManyVms { max: MAX_VMS },
        &format!("line {line}: too many [vm NAME] sections: at most {MAX_VMS}"),
    );
}
