//! End-to-end tests of the stack: two hosts on fake e1000s talking TCP and ICMP through
//! smoltcp, with a simulated clock and a wire that can be cut.

use alloc::string::String;
use alloc::vec;

use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::net::commands::{CmdError, cmd_net, cmd_netbench, cmd_nettest, cmd_ping};
use crate::net::nettest::{self, wire};
use crate::net::stack::NetError;
use crate::net::testbed::{A_IP, B_IP, Testbed, Wire};

const STEP: u64 = 200;

fn endpoint(port: u16) -> IpEndpoint {
    IpEndpoint::new(IpAddress::Ipv4(B_IP), port)
}

#[test]
fn nettest_transfers_and_both_sides_verify() {
    let mut bed = Testbed::new();
    bed.b.stack.nettest_listen(5001).unwrap();
    bed.a.stack.nettest_send(endpoint(5001), 3 << 20).unwrap();
    let finished = bed.run_until(60_000_000, STEP, |bed| {
        bed.a.said("receiver reports") && bed.b.said("nettest: received")
    });
    assert!(finished, "a: {:?}\nb: {:?}", bed.a.lines, bed.b.lines);
    assert!(bed.a.said("nettest: sent 3.00 MiB in"), "{:?}", bed.a.lines);
    assert!(
        bed.a.said("receiver reports checksum ok"),
        "{:?}",
        bed.a.lines
    );
    assert!(
        bed.b.said("nettest: received 3.00 MiB in"),
        "{:?}",
        bed.b.lines
    );
    assert!(bed.b.said("checksum ok"));
    assert!(bed.b.said("nettest: connection from 10.0.0.1:"));
    assert!(!bed.a.stack.sending());
    let counters = bed.b.stack.counters();
    assert!(counters.rx_bytes > 3 << 20, "{counters:?}");

    // The listener is ready for the next transfer.
    bed.a.lines.clear();
    bed.b.lines.clear();
    bed.a.stack.nettest_send(endpoint(5001), 1 << 20).unwrap();
    assert!(bed.run_until(60_000_000, STEP, |bed| bed.b.said("checksum ok")));
    assert!(bed.run_until(1_000_000, STEP, |bed| bed.a.said("checksum ok")));
}

#[test]
fn a_vanished_peer_ends_the_transfer_with_an_error_on_both_sides() {
    let mut bed = Testbed::new();
    bed.b.stack.nettest_listen(5001).unwrap();
    bed.a.stack.nettest_send(endpoint(5001), 64 << 20).unwrap();
    assert!(bed.run_until(60_000_000, STEP, |bed| bed.b.said("connection from")));
    bed.run_until(200_000, STEP, |_| false);
    bed.wire = Wire::Cut;
    let cut_at = bed.now_us;
    let ended = bed.run_until(30_000_000, 1000, |bed| {
        bed.a.said("nettest: error") && bed.b.said("nettest: error")
    });
    assert!(ended, "a: {:?}\nb: {:?}", bed.a.lines, bed.b.lines);
    assert!(
        bed.a.said("peer stopped responding after"),
        "{:?}",
        bed.a.lines
    );
    assert!(
        bed.b.said("peer stopped responding after"),
        "{:?}",
        bed.b.lines
    );
    assert!(bed.now_us - cut_at >= nettest::PROGRESS_TIMEOUT_US);
    assert!(!bed.a.stack.sending());
    // The listener survives and listens again.
    assert!(bed.b.stack.listening());
}

#[test]
fn connecting_to_a_closed_port_or_a_silent_host_fails_cleanly() {
    let mut bed = Testbed::new();
    bed.a.stack.nettest_send(endpoint(5999), 1 << 20).unwrap();
    assert!(bed.run_until(5_000_000, STEP, |bed| bed.a.said("nettest: error")));
    assert!(
        bed.a.said("connection refused by 10.0.0.2:5999"),
        "{:?}",
        bed.a.lines
    );

    bed.wire = Wire::Cut;
    bed.a.stack.nettest_send(endpoint(5001), 1 << 20).unwrap();
    assert!(bed.run_until(20_000_000, 1000, |bed| bed.a.said("could not connect")));
}

#[test]
fn a_corrupted_stream_is_reported_as_a_mismatch() {
    let mut bed = Testbed::new();
    bed.b.stack.nettest_listen(5001).unwrap();
    // A hand-made sender whose trailer carries the wrong checksum.
    let socket = nettest::tcp_socket(1024, 4096);
    let handle = bed.a.stack.tcp_connect(socket, endpoint(5001)).unwrap();
    let mut payload = vec![0u8; 1000];
    nettest::stream::PayloadStream::new(7).fill(&mut payload);
    let mut message = wire::Header {
        length: 1000,
        seed: 7,
    }
    .emit()
    .to_vec();
    message.extend_from_slice(&payload);
    message.extend_from_slice(&wire::emit_trailer(0x1234_5678));
    let mut sent = 0;
    let mut verdict = vec![];
    for _ in 0..5000 {
        bed.step(STEP);
        let socket = bed.a.stack.sockets().get_mut::<tcp::Socket>(handle);
        if socket.can_send() && sent < message.len() {
            sent += socket.send_slice(&message[sent..]).unwrap();
        }
        let mut buf = [0u8; 8];
        if let Ok(n) = socket.recv_slice(&mut buf) {
            verdict.extend_from_slice(&buf[..n]);
        }
        if verdict.len() == wire::RESULT_LEN {
            break;
        }
    }
    let verdict: [u8; wire::RESULT_LEN] = verdict.try_into().expect("a verdict");
    assert_eq!(wire::parse_result(&verdict), Ok(false));
    assert!(
        bed.b.said("checksum MISMATCH (sender 12345678"),
        "{:?}",
        bed.b.lines
    );
}

#[test]
fn ping_reports_replies_and_a_summary() {
    let mut bed = Testbed::new();
    bed.a.stack.start_ping(B_IP, 3).unwrap();
    assert_eq!(
        bed.a.stack.start_ping(B_IP, 1),
        Err(NetError::PingRunning(B_IP))
    );
    assert!(bed.run_until(10_000_000, STEP, |bed| bed.a.said("packet loss")));
    let lines = &bed.a.lines;
    assert!(
        lines[0].starts_with("PING 10.0.0.2: 56 data bytes"),
        "{lines:?}"
    );
    for seq in 0..3 {
        let needle = alloc::format!("64 bytes from 10.0.0.2: icmp_seq={seq} time=");
        assert!(bed.a.said(&needle), "{lines:?}");
    }
    assert!(
        bed.a
            .said("3 packets transmitted, 3 received, 0% packet loss"),
        "{lines:?}"
    );
    assert!(bed.a.said("rtt min/avg/max = "));
    // Requests go out one second apart.
    assert!(bed.now_us >= 2_000_000);
}

#[test]
fn ping_into_a_cut_wire_times_out() {
    let mut bed = Testbed::new();
    bed.wire = Wire::Cut;
    bed.a.stack.start_ping(B_IP, 2).unwrap();
    assert!(bed.run_until(10_000_000, 1000, |bed| bed.a.said("packet loss")));
    assert!(
        bed.a.said("ping: no reply for icmp_seq=0"),
        "{:?}",
        bed.a.lines
    );
    assert!(
        bed.a
            .said("2 packets transmitted, 0 received, 100% packet loss")
    );
    assert!(!bed.a.said("rtt"));
}

#[test]
fn malformed_frames_are_counted_and_ignored() {
    let mut bed = Testbed::new();
    let garbage = [0x5au8; 100];
    bed.b.device.deliver(&garbage);
    bed.b
        .device
        .deliver_errored(&[0u8; 80], crate::net::e1000::rx_errors::CE);
    bed.b.device.deliver(&[0u8; 4000]);
    bed.step(STEP);
    let counters = bed.b.stack.counters();
    assert_eq!(counters.rx_errors, 1);
    assert_eq!(counters.rx_dropped, 2, "{counters:?}");
    // The stack still works afterwards.
    bed.a.stack.start_ping(B_IP, 1).unwrap();
    assert!(bed.run_until(5_000_000, STEP, |bed| bed.a.said("1 received")));
}

#[test]
fn link_down_is_reported_and_refuses_new_work() {
    let mut bed = Testbed::new();
    bed.a.device.with(|s| s.link_up = false);
    bed.run_until(300_000, STEP, |_| false);
    assert!(bed.a.said("net: link is down"));
    assert_eq!(bed.a.stack.start_ping(B_IP, 1), Err(NetError::LinkDown));
    let mut out = String::new();
    let error = cmd_ping(Some(&mut bed.a.stack), &mut out, &["10.0.0.2"]).unwrap_err();
    assert_eq!(
        alloc::format!("{error}"),
        "link is down (check the cable / emulator netdev)"
    );
    bed.a.device.with(|s| s.link_up = true);
    bed.run_until(300_000, STEP, |_| false);
    assert!(bed.a.said("net: link is up"));
}

#[test]
fn console_commands_answer() {
    let mut bed = Testbed::new();
    bed.a.stack.start_ping(B_IP, 1).unwrap();
    bed.run_until(3_000_000, STEP, |bed| bed.a.said("packet loss"));
    let mut out = String::new();
    cmd_net(Some(&mut bed.a.stack), &mut out, &[]).unwrap();
    assert!(
        out.starts_with("e1000 (82540EM)  mac 52:54:00:00:00:0a  link up  mtu 1500\n"),
        "{out}"
    );
    assert!(out.contains("  ipv4 10.0.0.1/24 (static)\n"), "{out}");
    // ARP reply and echo reply, plus B's ARP announcements (up to two in 3 s).
    let rx_packets: u64 = out
        .split("  rx ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((2..=4).contains(&rx_packets), "{out}");

    let mut out = String::new();
    assert_eq!(cmd_net(None, &mut out, &[]), Err(CmdError::NoNic));
    assert_eq!(
        alloc::format!("{}", CmdError::NoNic),
        "no network interface (no supported NIC was found)"
    );
    assert!(matches!(
        cmd_ping(Some(&mut bed.a.stack), &mut out, &[]),
        Err(CmdError::Usage(_))
    ));
    assert!(matches!(
        cmd_ping(Some(&mut bed.a.stack), &mut out, &["10.0.0.300"]),
        Err(CmdError::Usage(_))
    ));
    assert!(matches!(
        cmd_nettest(Some(&mut bed.a.stack), &mut out, &["send", "10.0.0.2", "5"]),
        Err(CmdError::Usage(_))
    ));
    assert!(matches!(
        cmd_nettest(
            Some(&mut bed.a.stack),
            &mut out,
            &["send", "10.0.0.2:5001", "0"]
        ),
        Err(CmdError::Usage(_))
    ));
    assert_eq!(
        cmd_nettest(Some(&mut bed.a.stack), &mut out, &["stop"]),
        Err(CmdError::Net(NetError::NettestIdle))
    );
    cmd_nettest(Some(&mut bed.b.stack), &mut out, &["listen", "5001"]).unwrap();
    cmd_nettest(Some(&mut bed.b.stack), &mut out, &["status"]).unwrap();
    assert!(
        out.contains("nettest: listening on port 5001, waiting for a sender"),
        "{out}"
    );
    cmd_nettest(
        Some(&mut bed.a.stack),
        &mut out,
        &["send", "10.0.0.2:5001", "1"],
    )
    .unwrap();
    assert!(bed.run_until(30_000_000, STEP, |bed| bed.a.said("checksum ok")));
    let _ = A_IP;
}

#[test]
fn stopping_the_receiver_resets_the_sender() {
    let mut bed = Testbed::new();
    bed.b.stack.nettest_listen(5001).unwrap();
    bed.a.stack.nettest_send(endpoint(5001), 64 << 20).unwrap();
    assert!(bed.run_until(60_000_000, STEP, |bed| bed.b.said("connection from")));
    bed.run_until(100_000, STEP, |_| false);
    let started = bed.now_us;
    bed.b.stack.nettest_stop().unwrap();
    assert!(!bed.b.stack.listening());
    assert!(bed.run_until(5_000_000, STEP, |bed| bed.a.said("nettest: error")));
    assert!(
        bed.a.said("connection reset by peer after"),
        "{:?}",
        bed.a.lines
    );
    // The reset arrives at once; no waiting for the progress timeout.
    assert!(bed.now_us - started < 1_000_000);
}

#[test]
fn netbench_reports_throughput() {
    let mut bed = Testbed::new();
    let mut clock = 0u64;
    let mut now = || {
        clock += 5;
        clock
    };
    let mut out = String::new();
    cmd_netbench(Some(&mut bed.a.stack), &mut out, &["200"], &mut now).unwrap();
    assert!(out.starts_with("bench: 200 frames, 0.28 MiB in "), "{out}");
    assert!(out.contains("frames/s"), "{out}");
    // B counts what arrives (the testbed's wire carries A's frames on the next steps).
    bed.run_until(1_000_000, STEP, |_| false);
    let mut rx = String::new();
    cmd_netbench(Some(&mut bed.b.stack), &mut rx, &["rx"], &mut now).unwrap();
    // All 200 land in one step, so B's receive ring (128) keeps only part of the burst.
    let received: u64 = rx
        .strip_prefix("bench rx: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((100..=200).contains(&received), "{rx}");
    let mut again = String::new();
    cmd_netbench(Some(&mut bed.b.stack), &mut again, &["rx"], &mut now).unwrap();
    assert!(again.starts_with("bench rx: 0 frames"), "{again}");
    assert!(matches!(
        cmd_netbench(Some(&mut bed.a.stack), &mut out, &["0"], &mut now),
        Err(CmdError::Usage(_))
    ));
}

#[test]
fn nettest_survives_a_lossy_wire() {
    let mut bed = Testbed::new();
    bed.wire = Wire::Lossy { percent: 3 };
    bed.b.stack.nettest_listen(5001).unwrap();
    bed.a.stack.nettest_send(endpoint(5001), 1 << 20).unwrap();
    let done = bed.run_until(120_000_000, 1000, |bed| {
        bed.a.said("nettest: sent") || bed.a.said("nettest: error")
    });
    assert!(done, "a: {:?}\nb: {:?}", bed.a.lines, bed.b.lines);
    assert!(bed.lost > 0, "the wire must actually lose frames");
    assert!(
        bed.a.said("receiver reports checksum ok"),
        "{:?}",
        bed.a.lines
    );
    assert!(bed.b.said("checksum ok"), "{:?}", bed.b.lines);
}
