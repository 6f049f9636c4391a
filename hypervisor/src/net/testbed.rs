//! Two network stacks on fake e1000s joined by a fake wire, with a simulated clock: the
//! host-side stand-in for two hypervisors on one Ethernet segment.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use super::e1000::fake_device::FakeE1000;
use super::e1000::fake_dma::FakeDma;
use super::e1000::{E1000, E1000Config};
use super::nic::STANDARD_MTU;
use super::stack::{NetConfig, NetMode, NetStack};

/// One simulated hypervisor.
pub struct Host {
    pub stack: NetStack,
    pub device: FakeE1000,
    pub lines: Vec<String>,
}

impl Host {
    /// A host whose NIC is configured for `mtu`.
    pub fn with_mtu(mac: [u8; 6], address: Ipv4Addr, seed: u64, mtu: usize) -> Self {
        let mode = NetMode::Static {
            address,
            prefix_len: 24,
            gateway: None,
        };
        let config = NetConfig {
            mode,
            mac: None,
            mtu,
        };
        Self::with_config(mac, &config, seed)
    }

    pub fn with_config(mac: [u8; 6], config: &NetConfig, seed: u64) -> Self {
        let memory = FakeDma::new();
        let device = FakeE1000::new(mac, memory.clone());
        let e1000_config = E1000Config {
            mtu: config.mtu,
            ..E1000Config::default()
        };
        let nic = E1000::new(device.clone(), memory, e1000_config).expect("nic");
        let stack = NetStack::new(Box::new(nic), config, seed, 0).expect("stack");
        Self {
            stack,
            device,
            lines: Vec::new(),
        }
    }

    /// Poll the stack at `now_us` and collect its output.
    pub fn poll(&mut self, now_us: u64) {
        self.stack.poll(now_us);
        self.collect();
    }

    fn collect(&mut self) {
        let mut text = String::new();
        self.stack.drain_output(&mut text).expect("string output");
        self.lines.extend(text.lines().map(String::from));
    }

    /// Whether any output line contains `needle`.
    pub fn said(&self, needle: &str) -> bool {
        self.lines.iter().any(|line| line.contains(needle))
    }
}

/// What the wire does with frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Carries everything, both directions.
    Connected,
    /// Everything lost (a peer vanished or a cable was pulled).
    Cut,
    /// Each frame lost with probability `percent`/100, from a seeded generator.
    Lossy {
        /// Loss probability in percent.
        percent: u64,
    },
}

/// Host A (10.0.0.1) and host B (10.0.0.2).
pub struct Testbed {
    pub a: Host,
    pub b: Host,
    pub now_us: u64,
    pub wire: Wire,
    /// Frames carried across the wire so far.
    pub carried: u64,
    /// Frames the wire lost.
    pub lost: u64,
    /// Length of the longest frame carried.
    pub longest: usize,
    rng: u64,
}

pub const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

impl Testbed {
    pub fn new() -> Self {
        Self::with_mtus(STANDARD_MTU, STANDARD_MTU)
    }

    /// Host A with NIC MTU `mtu_a`, host B with `mtu_b`.
    pub fn with_mtus(mtu_a: usize, mtu_b: usize) -> Self {
        Self {
            a: Host::with_mtu([0x52, 0x54, 0, 0, 0, 0xa], A_IP, 1, mtu_a),
            b: Host::with_mtu([0x52, 0x54, 0, 0, 0, 0xb], B_IP, 2, mtu_b),
            now_us: 0,
            wire: Wire::Connected,
            carried: 0,
            lost: 0,
            longest: 0,
            rng: 0x2545_f491_4f6c_dd1d,
        }
    }

    fn carries(&mut self) -> bool {
        match self.wire {
            Wire::Connected => true,
            Wire::Cut => false,
            Wire::Lossy { percent } => {
                // xorshift64: the same loss pattern on every run.
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                self.rng % 100 >= percent
            }
        }
    }

    /// Advance simulated time by `dt_us`, poll both stacks, carry frames both ways.
    pub fn step(&mut self, dt_us: u64) {
        self.now_us += dt_us;
        self.a.stack.poll(self.now_us);
        self.b.stack.poll(self.now_us);
        let directions = [
            (self.a.device.clone(), self.b.device.clone()),
            (self.b.device.clone(), self.a.device.clone()),
        ];
        for (from, to) in directions {
            for frame in from.take_sent() {
                if self.carries() {
                    to.deliver(&frame);
                    self.carried += 1;
                    self.longest = self.longest.max(frame.len());
                } else {
                    self.lost += 1;
                }
            }
        }
        self.a.collect();
        self.b.collect();
    }

    /// Step until `done` holds or `limit_us` of simulated time passed; returns `done`.
    pub fn run_until(&mut self, limit_us: u64, dt_us: u64, done: impl Fn(&Self) -> bool) -> bool {
        let end = self.now_us + limit_us;
        while self.now_us < end {
            if done(self) {
                return true;
            }
            self.step(dt_us);
        }
        done(self)
    }
}
