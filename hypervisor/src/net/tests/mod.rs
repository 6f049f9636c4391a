//! Tests of the network stack as a whole (driver, smoltcp interface, console commands)
//! over the fake e1000s of `net::testbed`: DHCP against a fake server, and TCP/ICMP between
//! two hosts.

mod dhcp;
mod stack;
