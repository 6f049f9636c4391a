//! The `tern-snapshot` binary itself: `info` on a good, an altered and a truncated file,
//! and command-line mistakes (exit codes 0, 1 and 2).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn tern_snapshot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tern-snapshot"))
        .args(args)
        .output()
        .expect("run tern-snapshot")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tern-snapshot-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join(name)
}

#[test]
fn info_prints_a_verified_header_and_refuses_damaged_files() {
    let file = common::snapshot().to_bytes().expect("encode");
    let good = scratch("good.snap");
    std::fs::write(&good, &file).expect("write");
    let out = tern_snapshot(&["info", good.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("vm:       hb1") && text.contains("digest verified"),
        "{text}"
    );

    let mut altered = file.clone();
    altered[100] ^= 4;
    let bad = scratch("altered.snap");
    std::fs::write(&bad, &altered).expect("write");
    let out = tern_snapshot(&["info", bad.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("snapshot digest mismatch"), "{err}");

    let cut = scratch("cut.snap");
    std::fs::write(&cut, &file[..file.len() - 1000]).expect("write");
    let out = tern_snapshot(&["info", cut.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("snapshot is truncated"), "{err}");

    // `send` verifies the file before it connects anywhere.
    let key = scratch("key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).expect("key");
    let out = tern_snapshot(&[
        "send",
        cut.to_str().expect("utf-8"),
        "127.0.0.1:9",
        "--key-file",
        key.to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn info_lists_the_disks() {
    let good = scratch("disk.snap");
    std::fs::write(
        &good,
        common::snapshot_with_disk().to_bytes().expect("encode"),
    )
    .expect("write");
    let out = tern_snapshot(&["info", good.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("disks:    vda (id 0, 1 MiB = 1050112 bytes, 512-byte blocks)"),
        "{text}"
    );
}

#[test]
fn usage_mistakes_exit_with_2_and_the_usage() {
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["receive", "--listen", "127.0.0.1:0"][..],
        &["send", "only-a-file"][..],
        &["receive", "--bogus", "x"][..],
        &[
            "receive",
            "--listen",
            "127.0.0.1:0",
            "--key-file",
            "k",
            "-o",
            "f",
            "--max-disk",
            "lots",
        ][..],
    ] {
        let out = tern_snapshot(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("usage:"), "{args:?}: {err}");
    }
}
