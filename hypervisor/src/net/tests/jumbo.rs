//! TCP between hosts whose NICs have different MTUs: smoltcp advertises the MSS of its own
//! MTU in every SYN and sends the smaller of the two, so jumbo frames are used exactly when
//! both hosts are configured for them, and a jumbo host still talks to a standard one.

use smoltcp::wire::{IpAddress, IpEndpoint};

use super::super::testbed::{B_IP, Testbed};

const STEP: u64 = 200;

fn transfer(bed: &mut Testbed, mib: u64) {
    bed.b.stack.nettest_listen(5001).unwrap();
    let to = IpEndpoint::new(IpAddress::Ipv4(B_IP), 5001);
    bed.a.stack.nettest_send(to, mib << 20).unwrap();
    let finished = bed.run_until(60_000_000, STEP, |bed| {
        bed.a.said("receiver reports") && bed.b.said("nettest: received")
    });
    assert!(finished, "a: {:?}\nb: {:?}", bed.a.lines, bed.b.lines);
    assert!(
        bed.a.said("receiver reports checksum ok"),
        "{:?}",
        bed.a.lines
    );
    assert!(bed.b.said("checksum ok"), "{:?}", bed.b.lines);
}

#[test]
fn two_jumbo_hosts_move_tcp_in_9014_byte_frames() {
    let mut bed = Testbed::with_mtus(9000, 9000);
    transfer(&mut bed, 3);
    // MSS 8960 + 40 bytes of TCP/IP + 14 of Ethernet.
    assert_eq!(bed.longest, 9014);
    assert_eq!(bed.a.stack.counters().tx_dropped, 0);
    assert_eq!(bed.b.stack.counters().rx_dropped, 0);
}

#[test]
fn a_jumbo_host_and_a_standard_host_agree_on_standard_frames() {
    for (mtu_a, mtu_b) in [(9000, 1500), (1500, 9000)] {
        let mut bed = Testbed::with_mtus(mtu_a, mtu_b);
        transfer(&mut bed, 1);
        // The 1500-MTU host would drop anything longer (no LPE): nothing longer was sent.
        assert_eq!(bed.longest, 1514, "{mtu_a} -> {mtu_b}");
        assert_eq!(bed.b.stack.counters().rx_dropped, 0, "{mtu_a} -> {mtu_b}");
        assert_eq!(bed.a.stack.counters().rx_dropped, 0, "{mtu_a} -> {mtu_b}");
    }
}

#[test]
fn netbench_sends_frames_of_the_configured_mtu() {
    let mut bed = Testbed::with_mtus(9000, 9000);
    let mut clock = 0u64;
    let mut now = || {
        clock += 5;
        clock
    };
    let mut out = alloc::string::String::new();
    crate::net::commands::cmd_netbench(Some(&mut bed.a.stack), &mut out, &["10"], &mut now)
        .unwrap();
    assert!(out.starts_with("bench: 10 frames, 0.08 MiB in "), "{out}");
    let sent = bed.a.device.take_sent();
    assert_eq!(sent.len(), 10);
    assert!(sent.iter().all(|f| f.len() == 9014));
}
