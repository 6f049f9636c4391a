//! `[vm] disk`: the path as written with the line of its key, no disk by default, and the
//! errors of a bad path, a long path and a repeated key.

use alloc::format;
use alloc::string::ToString;

use super::super::*;
use super::error_of;
use super::errors::{check, invalid, vm};

const EXPECTED: &str =
    "a file path on the ESP like tern/disks/hb.img, without '..', '.' or empty components";

#[test]
fn disk_keeps_its_path_and_line() {
    let config = parse(&vm("image = a\nmemory = 1M\ndisk = tern/disks/v.img\n")).expect("parses");
    assert_eq!(
        config.vms[0].disk,
        Some(DiskConfig {
            path: "tern/disks/v.img".into(),
            line: 6,
        })
    );
    let config = parse(&vm("disk = \"\\d i\\v.img\"\nimage = a\nmemory = 1M\n")).expect("parses");
    assert_eq!(
        config.vms[0].disk,
        Some(DiskConfig {
            path: "\\d i\\v.img".into(),
            line: 4,
        })
    );
}

#[test]
fn no_disk_by_default() {
    let config = parse(&vm("image = a\nmemory = 1M\n")).expect("parses");
    assert_eq!(config.vms[0].disk, None);
}

#[test]
fn bad_disk_paths_are_refused_with_their_line() {
    for bad in [
        "", "/", "a//b", "../x.img", "d/./x", "c:x.img", "x?.img", "x.img/",
    ] {
        check(
            &vm(&format!("image = a\nmemory = 1M\ndisk = \"{bad}\"\n")),
            6,
            invalid("vm v", "disk", bad, EXPECTED),
            &format!("line 6: [vm v] disk = {bad}: expected {EXPECTED}"),
        );
    }
}

#[test]
fn long_disk_path_and_repeated_key_are_refused() {
    let long = "d/".repeat(128);
    let err = error_of(&vm(&format!("disk = {long}x\n")));
    assert_eq!(err.line, 4);
    assert_eq!(
        err.kind,
        ConfigErrorKind::ValueTooLong {
            section: "vm v".into(),
            key: "disk",
            len: 257,
            max: MAX_IMAGE_PATH_LEN,
        }
    );
    let err = error_of(&vm("disk = a.img\ndisk = b.img\n"));
    assert_eq!(err.line, 5);
    assert_eq!(
        format!("{err}"),
        "line 5: [vm v] disk is set again (first on line 4)"
    );
}

#[test]
fn disk_module_names_cannot_collide_with_vm_names() {
    assert_eq!(disk_module_name("hb1"), "hb1.disk");
    // VM names are [A-Za-z0-9_-]: never with a '.'.
    assert!(
        parse(&format!(
            "{}[vm a.disk]\nimage=a\nmemory=1M\n",
            super::MINIMAL
        ))
        .is_err()
    );
}

#[test]
fn disk_image_lengths_are_whole_sectors_up_to_the_limit() {
    assert_eq!(check_disk_image_len(512), Ok(()));
    assert_eq!(check_disk_image_len(MAX_DISK_BYTES), Ok(()));
    assert_eq!(check_disk_image_len(0), Err(DiskImageError::Empty));
    assert_eq!(
        check_disk_image_len(513),
        Err(DiskImageError::PartialSector { len: 513 })
    );
    assert_eq!(
        check_disk_image_len(MAX_DISK_BYTES + 512),
        Err(DiskImageError::TooLarge {
            len: MAX_DISK_BYTES + 512
        })
    );
    assert_eq!(
        DiskImageError::PartialSector { len: 1000 }.to_string(),
        "the image is 1000 bytes, not a multiple of 512-byte sectors"
    );
    assert_eq!(
        DiskImageError::TooLarge { len: 1 << 30 }.to_string(),
        "the image is 1073741824 bytes, more than the 16 MiB a RAM disk may have"
    );
}
