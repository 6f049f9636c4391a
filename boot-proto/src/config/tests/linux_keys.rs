//! `kernel = ...` and `initrd = ...` (Linux guests, issue 9): the either/or rule with
//! `image`, and their lines in messages.

use alloc::string::ToString;

use super::super::*;
use super::errors::{check, s, vm};

#[test]
fn a_linux_vm_has_kernel_initrd_and_their_lines() {
    let config = parse(&vm(
        "memory = 128M\nkernel = tern/linux/vmlinuz\ninitrd = \"tern/linux/initrd.cpio\"\ncmdline = \"console=ttyS0\"",
    ))
    .unwrap();
    let vm = &config.vms[0];
    assert_eq!(
        vm.boot,
        GuestBoot::Linux {
            kernel: "tern/linux/vmlinuz".to_string(),
            kernel_line: 5,
            initrd: Some("tern/linux/initrd.cpio".to_string()),
            initrd_line: 6,
        }
    );
    assert_eq!(vm.boot.main_path(), "tern/linux/vmlinuz");
    assert_eq!(vm.cmdline, "console=ttyS0");
}

#[test]
fn the_initrd_is_optional() {
    let config = parse(&vm("memory = 128M\nkernel = k")).unwrap();
    assert!(matches!(
        &config.vms[0].boot,
        GuestBoot::Linux {
            initrd: None,
            initrd_line: 0,
            ..
        }
    ));
}

#[test]
fn image_and_kernel_together_are_refused_on_the_second_line() {
    check(
        &vm("image = a.elf\nmemory = 1M\nkernel = k"),
        6,
        ConfigErrorKind::ImageAndKernel {
            section: s("vm v"),
            image_line: 4,
        },
        "line 6: [vm v] has both image (line 4) and kernel: a VM boots a PVH image or a Linux kernel, remove one",
    );
}

#[test]
fn an_initrd_without_kernel_is_refused() {
    check(
        &vm("image = a.elf\ninitrd = i\nmemory = 1M"),
        5,
        ConfigErrorKind::InitrdWithoutKernel { section: s("vm v") },
        "line 5: [vm v] initrd needs kernel = PATH (a PVH image takes no initrd)",
    );
}

#[test]
fn kernel_and_initrd_are_paths_set_once() {
    check(
        &vm("kernel = a\nkernel = b"),
        5,
        ConfigErrorKind::DuplicateKey {
            section: s("vm v"),
            key: "kernel",
            first_line: 4,
        },
        "line 5: [vm v] kernel is set again (first on line 4)",
    );
    let long = "k".repeat(MAX_IMAGE_PATH_LEN + 1);
    let err = parse(&vm(&alloc::format!("memory = 1M\ninitrd = {long}"))).unwrap_err();
    assert!(
        matches!(
            err.kind,
            ConfigErrorKind::ValueTooLong { key: "initrd", .. }
        ),
        "{err}"
    );
}
