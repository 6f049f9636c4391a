//! `bxhub`: Bochs' user-space Ethernet hub. Bochs instance k joins it with
//! `e1000: ethmod=socket, ethdev=localhost:BASE+2k` (bxhub uses two UDP ports per session),
//! which makes up to six emulated hosts one Ethernet segment (measured: frames both ways).

use crate::machine::{Nic, NicAttachment};
use crate::process::ProcessGroup;
use crate::{HarnessError, net};
use std::path::Path;
use std::process::Command;

/// The most ports bxhub supports.
pub const MAX_PORTS: u8 = 6;

/// A running hub, killed on drop.
pub struct BxHub {
    base: u16,
    ports: u8,
    _process: ProcessGroup,
}

impl BxHub {
    /// Start a hub with `ports` ports (2..=6), logging into `dir/bxhub.log`.
    pub fn start(ports: u8, dir: &Path) -> Result<BxHub, HarnessError> {
        if !(2..=MAX_PORTS).contains(&ports) {
            return Err(HarnessError::Unsupported("bxhub joins 2 to 6 hosts"));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
        let base = net::free_udp_range(2 * u16::from(ports))?;
        let mut cmd = Command::new("bxhub");
        cmd.arg(format!("-ports={ports}"))
            .arg(format!("-base={base}"));
        let process = ProcessGroup::spawn(cmd, &dir.join("bxhub.log"))?;
        Ok(BxHub {
            base,
            ports,
            _process: process,
        })
    }

    /// The hub's UDP base port (port k: the hub receives on `base + 2k + 1`, sends to
    /// `base + 2k`), for a host-side member such as `gateway::Gateway`.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// The NIC for host `index` (0-based): its MAC and hub port.
    pub fn nic(&self, index: u8) -> Result<Nic, HarnessError> {
        if index >= self.ports {
            return Err(HarnessError::Unsupported("more hosts than hub ports"));
        }
        Ok(Nic {
            mac: Nic::mac_for_host(index),
            attachment: NicAttachment::BxHubPort(self.base + 2 * u16::from(index)),
        })
    }
}
