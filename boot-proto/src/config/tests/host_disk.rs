//! `[host] host_disk` and `[vm] host_disk`: the drive and the regions as written, with their
//! lines; bad drives and bad regions refused with what was expected.

use alloc::format;

use super::super::host_disk::*;
use super::super::*;
use super::errors::{check, invalid, vm};

#[test]
fn drive_and_region_keep_their_lines() {
    let text = "[host]\nname = h\nhost_disk = ata1-master\n[vm v]\nimage = a\nmemory = 1M\n\
                host_disk = 16M@64M\n";
    let config = parse(text).expect("parses");
    assert_eq!(
        config.host.host_disk,
        Some(HostDiskDrive {
            drive: "ata1-master".into(),
            line: 3
        })
    );
    assert_eq!(
        config.vms[0].host_disk,
        Some(HostDiskRegionConfig {
            region: HostRegion {
                offset: 64 << 20,
                size: 16 << 20
            },
            line: 7
        })
    );
}

#[test]
fn none_by_default() {
    let config = parse(&vm("image = a\nmemory = 1M\n")).expect("parses");
    assert_eq!(config.host.host_disk, None);
    assert_eq!(config.vms[0].host_disk, None);
}

#[test]
fn bad_drives_are_refused_with_their_line() {
    check(
        "[host]\nname = h\nhost_disk = hda\n",
        3,
        invalid("host", "host_disk", "hda", DRIVE_SYNTAX),
        &format!("line 3: [host] host_disk = hda: expected {DRIVE_SYNTAX}"),
    );
}

#[test]
fn bad_regions_are_refused_with_their_line() {
    for bad in ["16M", "0M@0M", "16K@1M", "16M@"] {
        check(
            &vm(&format!("image = a\nmemory = 1M\nhost_disk = {bad}\n")),
            6,
            invalid("vm v", "host_disk", bad, REGION_SYNTAX),
            &format!("line 6: [vm v] host_disk = {bad}: expected {REGION_SYNTAX}"),
        );
    }
}
