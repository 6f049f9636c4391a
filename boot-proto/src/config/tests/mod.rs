//! Host tests of the config parser: the documented example, defaults, every error kind and
//! its message, and a deterministic fuzz run that checks nothing panics.

mod disk;
mod errors;
mod fuzz;
mod host_disk;
mod linux_keys;
mod mtu;
mod value_errors;
mod values;

use alloc::string::ToString;
use alloc::vec;

use super::*;

/// The complete example of `docs/config.md` (keep the two identical).
pub(super) const FULL_EXAMPLE: &str = r#"# tern host configuration
[host]
name = alpha                  # 1-32 characters of A-Z a-z 0-9 _ -

[net]
mode = static                 # none (default) | dhcp | static
address = 10.0.0.1/24
gateway = 10.0.0.254
mac = 52:54:00:12:34:56
mtu = 9000                    # 576-9000, default 1500

[migration]
port = 4444
key = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
downtime_limit_ms = 300
max_bandwidth_mib = 0         # 0 = unlimited

[vm hb1]
image = tern/guests/heartbeat.elf
memory = 64M
cmdline = "hb.interval_ms=100 hb.wss_mib=8 # not a comment"
vcpus = 1
autostart = yes
disk = tern/disks/hb1.img     # raw image, whole 512-byte sectors, at most 16 MiB

[vm hb2]
image = \tern\guests\heartbeat.elf
memory = 1048576
autostart = false
"#;

/// Smallest valid config, to which error tests append.
pub(super) const MINIMAL: &str = "[host]\nname = a\n";

/// Parses `text` and returns the error, failing the test if it parsed.
pub(super) fn error_of(text: &str) -> ConfigError {
    match parse(text) {
        Ok(config) => panic!("expected an error, parsed {config:?}"),
        Err(err) => err,
    }
}

#[test]
fn full_example_parses_to_every_field() {
    let config = parse(FULL_EXAMPLE).expect("example parses");
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::try_from(i).expect("small");
    }
    assert_eq!(
        config,
        Config {
            host: HostConfig {
                name: "alpha".to_string(),
                host_disk: None,
            },
            net: NetConfig {
                mode: NetMode::Static {
                    address: [10, 0, 0, 1],
                    prefix_len: 24,
                    gateway: Some([10, 0, 0, 254]),
                },
                mac: Some([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
                mtu: 9000,
            },
            migration: MigrationConfig {
                port: 4444,
                key: Some(key),
                downtime_limit_ms: Some(300),
                max_bandwidth_mib: Some(0),
            },
            vms: vec![
                VmConfig {
                    name: "hb1".to_string(),
                    boot: GuestBoot::Pvh {
                        image: "tern/guests/heartbeat.elf".to_string(),
                    },
                    memory_bytes: 64 << 20,
                    cmdline: "hb.interval_ms=100 hb.wss_mib=8 # not a comment".to_string(),
                    vcpus: 1,
                    autostart: true,
                    cpu: "host".to_string(),
                    line: 18,
                    disk: Some(DiskConfig {
                        path: "tern/disks/hb1.img".to_string(),
                        line: 24,
                    }),
                    host_disk: None,
                },
                VmConfig {
                    name: "hb2".to_string(),
                    boot: GuestBoot::Pvh {
                        image: "\\tern\\guests\\heartbeat.elf".to_string(),
                    },
                    memory_bytes: 1 << 20,
                    cmdline: "".to_string(),
                    vcpus: 1,
                    autostart: false,
                    cpu: "host".to_string(),
                    line: 26,
                    disk: None,
                    host_disk: None,
                },
            ],
        }
    );
}

#[test]
fn docs_show_the_tested_example() {
    let docs = include_str!("../../../../docs/config.md");
    let fenced = alloc::format!("```ini\n{FULL_EXAMPLE}```");
    assert!(
        docs.contains(&fenced),
        "docs/config.md no longer shows FULL_EXAMPLE verbatim"
    );
}

#[test]
fn minimal_config_gets_all_defaults() {
    let config = parse(MINIMAL).expect("minimal parses");
    assert_eq!(config.host.name, "a");
    assert_eq!(
        config.net,
        NetConfig {
            mode: NetMode::None,
            mac: None,
            mtu: DEFAULT_MTU,
        }
    );
    assert_eq!(
        config.migration,
        MigrationConfig {
            port: DEFAULT_MIGRATION_PORT,
            key: None,
            downtime_limit_ms: None,
            max_bandwidth_mib: None,
        }
    );
    assert!(config.vms.is_empty());
}

#[test]
fn crlf_bom_tabs_quotes_and_key_order_are_accepted() {
    let text = "\u{feff}# comment\r\n\r\n[vm x]\r\n\tmemory\t=\t4G\t\r\nimage=\"/a b/c.elf\"\r\n\
                [ host ]  # trailing comment\r\nname=\"h-1_Z\"\r\n[net]\r\nmode = dhcp\r\n\
                mac = 02:AB:cd:00:00:01";
    let config = parse(text).expect("parses");
    assert_eq!(config.host.name, "h-1_Z");
    assert_eq!(config.net.mode, NetMode::Dhcp);
    assert_eq!(config.net.mac, Some([2, 0xab, 0xcd, 0, 0, 1]));
    assert_eq!(config.vms.len(), 1);
    assert_eq!(config.vms[0].boot.main_path(), "/a b/c.elf");
    assert_eq!(config.vms[0].memory_bytes, 4 << 30);
    assert_eq!(config.vms[0].line, 3);
}

#[test]
fn static_without_gateway_and_empty_quoted_cmdline() {
    let text = "[host]\nname=a\n[net]\nmode=static\naddress=192.168.1.7/32\n\
                [vm v]\nimage=v.elf\nmemory=256m\ncmdline=\"\"\nautostart=no\nvcpus=1";
    let config = parse(text).expect("parses");
    assert_eq!(
        config.net.mode,
        NetMode::Static {
            address: [192, 168, 1, 7],
            prefix_len: 32,
            gateway: None
        }
    );
    assert_eq!(config.vms[0].cmdline, "");
    assert!(!config.vms[0].autostart);
    assert_eq!(config.vms[0].cpu, "host", "the default CPU model");
}

#[test]
fn cpu_model_key() {
    let vm = |cpu: &str| alloc::format!("{MINIMAL}[vm v]\nimage=v.elf\nmemory=1M\ncpu={cpu}\n");
    let config = parse(&vm("TigerLake")).expect("parses");
    assert_eq!(config.vms[0].cpu, "tigerlake");
    assert_eq!(parse(&vm("host")).expect("parses").vms[0].cpu, "host");
    for bad in ["", "tiger lake", "a.b", "x".repeat(33).as_str()] {
        let e = parse(&vm(bad)).expect_err(bad);
        assert!(
            e.to_string()
                .contains("host or a CPU model name like tigerlake"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn max_vms_are_accepted() {
    let mut text = MINIMAL.to_string();
    for i in 0..MAX_VMS {
        text.push_str(&alloc::format!("[vm v{i}]\nimage=v.elf\nmemory=1M\n"));
    }
    assert_eq!(parse(&text).expect("parses").vms.len(), MAX_VMS);
}

#[test]
fn parse_bytes_accepts_utf8_and_reports_the_line_of_bad_bytes() {
    assert_eq!(parse_bytes(MINIMAL.as_bytes()), parse(MINIMAL));
    let bytes = b"[host]\nname = a\n# caf\xe9\n";
    assert_eq!(
        parse_bytes(bytes),
        Err(ConfigError {
            line: 3,
            kind: ConfigErrorKind::InvalidUtf8
        })
    );
    assert_eq!(
        parse_bytes(bytes).unwrap_err().to_string(),
        "line 3: not valid UTF-8 text"
    );
}
