//! The initramfs's `/init`: a busybox shell script, PID 1 of the test Linux guest.
//!
//! What it does and why:
//! - installs busybox's applet links, mounts /proc, /sys, devtmpfs on /dev and a tmpfs on
//!   /tmp (the kernel mounts nothing for an initramfs init: `CONFIG_DEVTMPFS_MOUNT` is off);
//! - loads the modules the Debian cloud kernel has as modules for tern's devices (virtio
//!   core, ring, the MMIO transport and virtio-blk; 8250 serial and ext4 are built in), in
//!   dependency order with busybox `insmod`, saying which failed;
//! - prints a banner with the kernel release (`tern-linux: ...`);
//! - with `tern.workload=1` on the kernel command line, starts the workload in the
//!   background (see below);
//! - runs a shell on the console with job control (`setsid cttyhack`), restarted if it exits,
//!   since PID 1 must never exit.
//!
//! The workload is the Linux counterpart of the heartbeat guest: every second it checks that
//! the tmpfs file written a second earlier still holds exactly the pattern of that round
//! (64 lines naming the round and the line), prints `CORRUPT seq=N line=I ...` for every
//! line that does not, writes the next round's pattern and prints `LHB seq=N`. A page of
//! guest memory lost or damaged (for example by a migration) shows up as `CORRUPT`, a stall
//! as a gap in the sequence.

/// The `/init` script.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=16m tmpfs /tmp
release=$(uname -r)
for m in virtio virtio_ring virtio_mmio virtio_blk; do
    path=$(find /lib/modules/$release -name "$m.ko" | head -n 1)
    if [ -z "$path" ]; then
        echo "tern-linux: module $m is not in the initramfs"
    elif ! insmod "$path" 2>/dev/null && ! grep -q "^$m " /proc/modules; then
        echo "tern-linux: insmod $m failed"
    fi
done
echo "tern-linux: initramfs of tern, kernel $release, $(grep -c ^processor /proc/cpuinfo) cpu(s), $(sed -n 's/MemTotal: *//p' /proc/meminfo)"

pattern() {
    i=1
    while [ $i -le 64 ]; do
        echo "tern-lhb round=$1 line=$i 0123456789abcdefghijklmnopqrstuvwxyz"
        i=$((i + 1))
    done
}

workload() {
    file=/tmp/lhb.dat
    seq=0
    while true; do
        if [ $seq -gt 0 ]; then
            pattern $seq > /tmp/lhb.expected
            if ! cmp -s /tmp/lhb.expected $file; then
                i=1
                while [ $i -le 64 ]; do
                    want=$(sed -n "${i}p" /tmp/lhb.expected)
                    got=$(sed -n "${i}p" $file)
                    [ "$want" = "$got" ] || echo "CORRUPT seq=$seq line=$i expected=\"$want\" got=\"$got\""
                    i=$((i + 1))
                done
            fi
        fi
        seq=$((seq + 1))
        pattern $seq > $file
        echo "LHB seq=$seq uptime=$(cut -d' ' -f1 /proc/uptime)"
        sleep 1
    done
}

if grep -qw 'tern.workload=1' /proc/cmdline; then
    echo "tern-linux: workload started (LHB lines every second)"
    workload > /dev/console 2>&1 &
fi

export PS1='tern-linux# '
while true; do
    setsid cttyhack sh -l
    echo "tern-linux: shell exited; starting another"
done
"#;
