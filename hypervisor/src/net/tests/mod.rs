//! Tests of the network stack as a whole (driver, smoltcp interface, console commands)
//! over the fake e1000s of `net::testbed`: DHCP against a fake server, TCP/ICMP between two
//! hosts, and jumbo frames (`[net] mtu`) between hosts of equal and different MTUs.

mod dhcp;
mod jumbo;
mod stack;
